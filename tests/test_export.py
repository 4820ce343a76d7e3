"""Export of the three encoder families, and bad input.

Usage: .venv/bin/python -m pytest tests/test_export.py

Each architecture is exported once (module-scoped fixture) at width 0.25,
after its BatchNorm statistics were recomputed on real source images so the
activations are in a realistic range (random BN stats make MobileNetV3's
features ~1e-8). Calibration and checks use real CIFAR-10 target images.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from entropi_tiny.errors import UserError
from entropi_tiny.export.convert import ONNX_NAME, REPORT_NAME, TFLITE_NAME, export_encoder
from entropi_tiny.export.tflite_ops import ALLOWED_OPS, parse_tflite
from entropi_tiny.export.tflm import quantize_images, run_litert_ref, run_tflm
from entropi_tiny.models import build_model, split_model

from export_helpers import SOURCE_CLASSES, TARGET_CLASSES, load_cifar

ARCHS = ["resnet18", "mobilenet_v3_small", "mobilenet_v3_large"]


@pytest.fixture(scope="module")
def images():
    calib, _ = load_cifar("train", TARGET_CLASSES, per_class=20)
    check, _ = load_cifar("test", TARGET_CLASSES, per_class=5)
    source, _ = load_cifar("train", SOURCE_CLASSES, per_class=40)
    return calib, check, source


def recalibrated_encoder(arch: str, source: np.ndarray, width: float = 0.25) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=5, width=width)
    model.train()
    with torch.no_grad():                         # BN running stats from real images
        for i in range(0, len(source), 50):
            model(torch.from_numpy(source[i:i + 50]))
    return split_model(model)[0].eval()


@pytest.fixture(scope="module", params=ARCHS)
def exported(request, images, tmp_path_factory):
    calib, check, source = images
    out = tmp_path_factory.mktemp(request.param)
    encoder = recalibrated_encoder(request.param, source)
    report = export_encoder(encoder, calib, check, out)
    return request.param, encoder, out, report


def test_onnx_matches_pytorch(exported):
    _, _, out, report = exported
    assert report["onnx_max_abs_err"] < 1e-4
    assert report["tf_max_abs_err"] < 1e-4
    assert (out / ONNX_NAME).stat().st_size == report["onnx_bytes"]


def test_int8_runs_in_tflm_bit_exact_with_litert_ref(exported, images):
    _, _, out, report = exported
    _, check, _ = images
    assert report["int8_images"] >= 20
    assert report["tflm_bitexact_litert_ref"], report["tflm_litert_ref_max_lsb"]
    # Independently of the report: run both interpreters here too.
    path = out / TFLITE_NAME
    q = quantize_images(check[:20], parse_tflite(path))
    a, b = run_tflm(path, q), run_litert_ref(path, q)
    assert a.dtype == np.int8 and a.shape[0] == 20
    np.testing.assert_array_equal(a, b)
    assert report["tflm_arena_bytes"] > 10_000


def test_int8_uses_only_allowed_ops(exported):
    arch, _, out, report = exported
    ops = set(report["tflite_ops"])
    assert ops <= set(ALLOWED_OPS), ops
    assert {"CONV_2D", "MEAN", "RESHAPE"} <= ops
    if arch.startswith("mobilenet"):
        assert {"DEPTHWISE_CONV_2D", "HARD_SWISH", "MUL", "ADD"} <= ops
    io = report["io_quant"]
    assert io["input"]["dtype"] == io["output"]["dtype"] == "int8"
    assert io["input"]["shape"] == [1, 32, 32, 3]
    saved = json.loads((out / REPORT_NAME).read_text())
    assert saved["tflite_ops"] == report["tflite_ops"]


def test_int8_features_close_to_float(exported):
    # Untrained (BN-recalibrated) encoders: a loose bound; the trained test is strict.
    _, _, _, report = exported
    assert report["int8_cosine_mean"] > 0.98


# -- bad input ---------------------------------------------------------------

def test_truncated_or_corrupt_tflite_is_user_error(exported, tmp_path):
    _, _, out, _ = exported
    data = (out / TFLITE_NAME).read_bytes()
    cases = {"truncated.tflite": data[: len(data) // 2], "head.tflite": data[:200],
             "tiny.tflite": data[:10], "noid.tflite": b"\0" * 4 + b"XXXX" + data[8:],
             "garbage.tflite": data[:8] + bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8))}
    q = np.zeros((1, 32, 32, 3), np.int8)
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        for fn in (parse_tflite, lambda p: run_tflm(p, q), lambda p: run_litert_ref(p, q)):
            with pytest.raises(UserError) as e:
                fn(p)
            assert "\n" not in str(e.value)
    with pytest.raises(UserError):
        parse_tflite(tmp_path / "missing.tflite")


class GeluEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        x = nn.functional.gelu(self.bn(self.conv(x)))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def test_unsupported_op_is_user_error_naming_it(images, tmp_path):
    calib, check, _ = images
    out = tmp_path / "gelu"
    with pytest.raises(UserError) as e:
        export_encoder(GeluEncoder(), calib[:4], check[:4], out)
    msg = str(e.value)
    assert "unsupported ONNX op" in msg and ("Gelu" in msg or "Erf" in msg) and "node" in msg
    assert "\n" not in msg
    assert not out.exists() or not any(out.iterdir())


def test_empty_calibration_set_is_user_error(images, tmp_path):
    _, check, source = images
    out = tmp_path / "empty"
    encoder = split_model(build_model("resnet18", 5, 0.25))[0]
    with pytest.raises(UserError, match="calibration set is empty"):
        export_encoder(encoder, np.zeros((0, 3, 32, 32), np.float32), check, out)
    assert not out.exists() or not any(out.iterdir())
