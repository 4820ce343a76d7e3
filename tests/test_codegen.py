"""Code generator tests: refusals, banners and identifiers, the arena plan, schedule validation, Cortex-M7 build.

Usage: .venv/bin/python -m pytest tests/test_codegen.py
"""
import dataclasses
import re
import shutil
import subprocess

import numpy as np
import pytest

from entropi_tiny.codegen.model import generate_model_sources
from entropi_tiny.codegen.fuse import fuse
from entropi_tiny.codegen.graph import build_graph
from entropi_tiny.codegen.plan import plan_arena
from entropi_tiny.errors import UserError
from entropi_tiny.export.sparse_image import encode_model
from entropi_tiny.export.tflite_model import read_tflite
from runtime_harness import ROOT, RUNTIME_SOURCES, compile_model, run_runtime, runtime_objects
from tf_ops import _tf, tflite_of
from test_kernels_models import encoder, images  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def _convert_plain(fn, shape, int8=True) -> bytes:
    tf = _tf()
    concrete = tf.function(fn).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([np.random.default_rng(i).uniform(-1, 1, shape).astype(np.float32)]
                                               for i in range(4))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def _refused(tmp_path, data: bytes, needle: str):
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    with pytest.raises(UserError, match=needle) as e:
        generate_model_sources(path, None, tmp_path / "gen")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "gen").exists()          # nothing written on refusal


def test_refuses_unsupported_op(tmp_path):
    tf = _tf()
    _refused(tmp_path, _convert_plain(lambda x: tf.nn.softmax(x), (1, 10)), "SOFTMAX, which the runtime does not")


def test_refuses_float_model(tmp_path):
    tf = _tf()
    w = tf.constant(np.ones((3, 3, 2, 4), np.float32))
    _refused(tmp_path, _convert_plain(lambda x: tf.nn.conv2d(x, w, 1, "SAME"), (1, 5, 5, 2), int8=False),
             "FLOAT32")


def test_refuses_dynamic_shape_and_bad_name(tmp_path):
    data = tflite_of("conv", (1, 6, 6, 3), 0.5, k=3)
    model = read_tflite(data)
    t = model.tensors[model.inputs[0]]
    model.tensors[t.index] = dataclasses.replace(t, shape=(-1, 6, 6, 3))
    entries = {model.operators[0].inputs[1]: 0}
    with pytest.raises(UserError, match="dynamic"):
        build_graph(model, entries)
    (tmp_path / "m.tflite").write_bytes(data)
    with pytest.raises(UserError, match="et_ prefix"):
        generate_model_sources(tmp_path / "m.tflite", None, tmp_path / "gen", name="model")


def test_banner_identifiers_and_cortex_m7_build(tmp_path):
    data = tflite_of("block", (1, 6, 6, 4), 0.1, calib=(-0.5, 2.0), cout=5)
    path = tmp_path / "block.tflite"
    path.write_bytes(data)
    report = generate_model_sources(path, None, tmp_path / "gen", name="et_block")
    import hashlib
    sha = hashlib.sha256(data).hexdigest()
    for f in report["files"]:
        assert sha in open(f).read().splitlines()[0]
    obj = tmp_path / "m.o"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c",
                    f"-I{ROOT / 'firmware/include'}", str(tmp_path / "gen/et_block.c"), "-o", str(obj)], check=True)
    symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout.split()
    names = [s for s in symbols[2::3] if not s.startswith(".")]
    assert names and all(n.startswith("et_") for n in names), names
    arm = shutil.which("arm-none-eabi-gcc")
    if arm is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    srcs = [str(ROOT / "firmware/src" / f) for f in RUNTIME_SOURCES] + [str(tmp_path / "gen/et_block.c")]
    for src in srcs:
        out = tmp_path / (src.split("/")[-1] + ".arm.o")
        subprocess.run([arm, "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard", "-std=c11",
                        "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffreestanding",
                        f"-I{ROOT / 'firmware/include'}", f"-I{ROOT / 'firmware/src'}", "-c", src, "-o", str(out)],
                       check=True)
        dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(out)], capture_output=True, text=True).stdout
        assert ".f64" not in dis and "__aeabi_d" not in dis and "__aeabi_ldivmod" not in dis, src


def test_plan_never_overlaps_live_buffers(images):  # noqa: F811
    calib, _ = images
    for arch in ("resnet18", "mobilenet_v3_small"):
        data = encoder(arch, 0.1, calib)
        image = encode_model(data)[0]
        from entropi_tiny.codegen.model import _entries

        graph = build_graph(read_tflite(data), _entries(image))
        fuse(graph)
        plan = plan_arena(graph)
        for a in plan.buffers:
            assert a.offset % 4 == 0 and a.offset + a.size <= plan.arena_size
            for b in plan.buffers:
                if a is not b and a.start <= b.end and b.start <= a.end:
                    assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)
        unfused = build_graph(read_tflite(data), _entries(image))
        assert plan.arena_size < plan_arena(unfused, inplace=False).arena_size


@pytest.mark.parametrize("mutation,code", [
    (lambda s: re.sub(r"\.arena_size = \d+", ".arena_size = 64", s, count=1), 10 + 9),          # ET_ERR_ARENA
    (lambda s: s.replace(".kind = ET_OP_CONV_2D", ".kind = 77", 1), 10 + 10),                   # ET_ERR_OP
    (lambda s: s.replace(".weights = 0,", ".weights = 999,", 1), 10 + 8),                       # ET_ERR_MODEL
    (lambda s: re.sub(r"\.kernel_h = 3", ".kernel_h = 5", s, count=1), 10 + 8),                 # ET_ERR_MODEL
    (lambda s: s, 0),
])
def test_runtime_refuses_inconsistent_schedule(tmp_path, mutation, code):
    data = tflite_of("block", (1, 6, 6, 4), 0.1, calib=(-0.5, 2.0), cout=5)
    path = tmp_path / "block.tflite"
    path.write_bytes(data)
    generate_model_sources(path, None, tmp_path / "gen")
    src = tmp_path / "gen/et_model.c"
    src.write_text(mutation(src.read_text()))
    exe = compile_model(tmp_path / "gen", tmp_path / "run", runtime_objects(tmp_path / "obj", sanitize=True),
                        sanitize=True)
    rc, _ = run_runtime(exe, np.zeros((1, 1, 6, 6, 4), np.int8))
    assert rc == code


def test_codegen_reads_the_etsw_and_checks_it_against_the_tflite(tmp_path):
    """The device weights come from the .etsw; one made from another model is refused in one line."""
    data = tflite_of("conv", (1, 6, 6, 3), 0.5, k=3)
    other = tflite_of("conv", (1, 6, 6, 3), 0.5, seed=7, k=3)
    path, etsw = tmp_path / "m.tflite", tmp_path / "m.etsw"
    path.write_bytes(data)
    etsw.write_bytes(encode_model(data)[0])
    report = generate_model_sources(path, etsw, tmp_path / "gen")
    assert report["image_size"] == etsw.stat().st_size
    etsw.write_bytes(encode_model(other)[0])
    with pytest.raises(UserError, match="differ from the .tflite") as e:
        generate_model_sources(path, etsw, tmp_path / "gen2")
    assert "\n" not in str(e.value) and not (tmp_path / "gen2").exists()
    with pytest.raises(UserError, match="cannot read the weight image"):
        generate_model_sources(path, tmp_path / "missing.etsw", tmp_path / "gen3")
