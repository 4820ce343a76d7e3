"""Whole-encoder tests: ResNet18 and MobileNetV3-small, dense and pruned, on real images.

Usage: .venv/bin/python -m pytest tests/test_kernels_models.py

Encoders come from entropi_tiny.models (torchvision modules, width 0.25),
pruned by one global magnitude threshold, exported to full-int8 .tflite
(tests/torch_to_tflite.py, calibrated on real images) and run by TFLM and by
the generated C runtime on 80 real images of the built-in CIFAR-10 subset
(50 of the source classes, 30 of the target classes; 50 more from the shared
CIFAR-10 folder when it sits beside the repository): every output byte must
be equal. Also: the sanitizer build on a whole model, corrupt weight images
(an error code, never a memory error), and the arena plan of full-width
ResNet18 against TFLM's measured arena.
"""
import shutil
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from entropi_tiny.codegen.model import generate_model_sources
from entropi_tiny.config import DataConfig
from entropi_tiny.data import load_task, normalize
from entropi_tiny.export import sparse_format as fmt
from entropi_tiny.export.sparse_image import encode_model
from entropi_tiny.export.tflite_model import read_tflite
from entropi_tiny.models import build_model
from helpers import SHARED_CIFAR
from runtime_harness import build_runtime, run_runtime, run_tflm
from torch_to_tflite import encoder_tflite, prune_global, quantize_input, randomize_bn

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
TFLM_RESNET18_ARENA = 316_638          # DESIGN.md section 3, measured with TFLM on this machine
SUPPORTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "MEAN", "PAD", "HARD_SWISH",
             "RESHAPE"}


def round_robin(images: torch.Tensor, labels: torch.Tensor, n: int) -> np.ndarray:
    """n images (uint8 NCHW), taking the classes in turn."""
    by_class = [torch.nonzero(labels == c).flatten() for c in labels.unique()]
    idx = [int(by_class[i % len(by_class)][i // len(by_class)]) for i in range(n)]
    return images[idx].numpy()


def shared_cifar(n: int) -> np.ndarray:
    """n more CIFAR-10 test images from the shared folder, or none when it is absent:
    an extra case, never the only cover."""
    if not (SHARED_CIFAR / "test").is_dir():
        return np.zeros((0, 3, 32, 32), np.uint8)
    classes = sorted(p for p in (SHARED_CIFAR / "test").iterdir() if p.is_dir())
    files = [sorted(c.glob("*.png"))[100 + i // len(classes)]
             for i, c in zip(range(n), classes * n)]
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).transpose(0, 3, 1, 2)


@pytest.fixture(scope="module")
def images():
    source = load_task("builtin", "source", DataConfig())
    target = load_task("builtin", "target", DataConfig())
    calib = normalize(target.train.images[:32]).numpy()
    real = np.concatenate([round_robin(source.test.images, source.test.labels, 50),
                           target.test.images[:30].numpy(), shared_cifar(50)])
    return calib, normalize(torch.from_numpy(real)).numpy()


def encoder(arch: str, alpha: float, calib: np.ndarray, width: float = 0.25) -> bytes:
    torch.manual_seed(0)
    model = build_model(arch, 10, width)
    randomize_bn(model)
    if alpha < 1:
        prune_global(model, alpha)
    return encoder_tflite(model, calib)


def inputs_for(data: bytes, x: np.ndarray) -> np.ndarray:
    model = read_tflite(data)
    q = model.tensors[model.inputs[0]].quantization
    return quantize_input(x, float(q.scale[0]), int(q.zero_point[0]))


@pytest.mark.parametrize("alpha", [1.0, 0.1, 0.01])
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
def test_encoder_bit_exact(tmp_path, objs, images, arch, alpha):
    calib, real = images
    data = encoder(arch, alpha, calib)
    assert {op.opcode for op in read_tflite(data).operators} <= SUPPORTED
    path = tmp_path / "encoder.tflite"
    path.write_bytes(data)
    exe, report = build_runtime(path, tmp_path, objs)
    x = inputs_for(data, real)
    rc, out = run_runtime(exe, x)
    assert rc == 0
    ref = run_tflm(path, x)
    assert len(x) >= 80 and np.array_equal(out, ref), f"{(out != ref).mean():.2%} of bytes differ"
    assert any("fused" in n for n in report["notes"])


def test_encoder_sanitizer_build(tmp_path, asan_objs, images):
    calib, real = images
    data = encoder("mobilenet_v3_small", 0.1, calib)
    path = tmp_path / "encoder.tflite"
    path.write_bytes(data)
    exe, _ = build_runtime(path, tmp_path, asan_objs, sanitize=True)
    x = inputs_for(data, real[:8])
    rc, out = run_runtime(exe, x)
    assert rc == 0 and np.array_equal(out, run_tflm(path, x))


def resign(image: bytes) -> bytes:
    return image[:24] + struct.pack("<I", fmt.crc32(image[32:])) + image[28:]


def test_corrupt_image_is_an_error_code_not_a_crash(tmp_path, asan_objs, images):
    calib, real = images
    data = encoder("resnet18", 0.05, calib)
    path = tmp_path / "encoder.tflite"
    path.write_bytes(data)
    exe, _ = build_runtime(path, tmp_path, asan_objs, sanitize=True)
    image = encode_model(data)[0]
    x = inputs_for(data, real[:1])
    assert run_runtime(exe, x, image=image)[0] == 0
    flipped = bytearray(image)
    flipped[len(image) // 2] ^= 4
    expect = {10 + 5: bytes(flipped),                                 # ET_ERR_CRC
              10 + 1: image[:-8],                                     # ET_ERR_SIZE
              10 + 2: b"ETSX" + image[4:],                            # ET_ERR_MAGIC
              10 + 3: image[:4] + b"\x01\x00" + image[6:]}            # ET_ERR_VERSION
    for code, bad in expect.items():
        assert run_runtime(exe, x, image=bad)[0] == code
    rng = np.random.default_rng(0)
    codes = set()
    for i in range(40):                         # valid CRC, random damage behind it
        bad = bytearray(image)
        end = fmt.HEADER_SIZE + 21 * fmt.ENTRY_SIZE if i % 2 else len(bad)
        for pos in rng.integers(32, end, 3):
            bad[pos] = int(rng.integers(0, 256))
        rc, _ = run_runtime(exe, x, image=resign(bytes(bad)))
        codes.add(rc)
    # ok, ET_ERR_ENTRY, ET_ERR_WEIGHTS (found at init), ET_ERR_MODEL, ET_ERR_RANGE, ET_ERR_WEIGHTS (invoke)
    assert codes <= {0, 10 + 6, 10 + 7, 10 + 8, 10 + 11, 40 + 7}, codes
    assert codes - {0}


def test_resnet18_full_width_arena_is_at_most_half_of_tflm(tmp_path, images):
    calib, _ = images
    data = encoder("resnet18", 0.01, calib, width=1.0)
    path = tmp_path / "resnet18.tflite"
    path.write_bytes(data)
    report = generate_model_sources(path, None, tmp_path / "gen")
    print(f"\nresnet18 full width: arena {report['arena_size']} B vs TFLM {TFLM_RESNET18_ARENA} B "
          f"({report['arena_size'] / TFLM_RESNET18_ARENA:.1%})")
    assert report["arena_size"] <= TFLM_RESNET18_ARENA // 2
    # Two 32x32x64 activations plus one int32 accumulator plane is the floor for a residual block.
    assert report["arena_size"] >= 2 * 32 * 32 * 64 + 4 * 32 * 32


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
def test_project_exporter_encoder_bit_exact(tmp_path, objs, images, arch):
    """The project's own ONNX -> int8 TFLite exporter's output runs bit-exact too."""
    from entropi_tiny.export.convert import TFLITE_NAME, export_encoder
    from entropi_tiny.models import split_model

    calib, real = images
    torch.manual_seed(1)
    model = build_model(arch, 10, 0.25)
    randomize_bn(model, seed=1)
    prune_global(model, 0.05)
    enc, _ = split_model(model)
    export_encoder(enc.eval(), calib, real[:8], tmp_path / "export", find_arena=False)
    path = tmp_path / "export" / TFLITE_NAME
    exe, _ = build_runtime(path, tmp_path, objs)
    x = inputs_for(path.read_bytes(), real)
    rc, out = run_runtime(exe, x)
    assert rc == 0 and np.array_equal(out, run_tflm(path, x))
