"""Golden tests of the fast planar conv kernels (firmware/src/et_kernels_fast.c), host and twin.

Usage: .venv/bin/python -m pytest tests/test_kernels_fast.py

The per-op goldens of test_kernels_ops.py already run every conv case
through the planar kernels (the model input is converted by TO_PLANAR).
These add what a single op cannot show: a ResNet stage (conv -> conv with
the residual ADD fused, written in place -> stride-2 conv with its PAD
fused -> MEAN), where PLANAR tensors flow from conv to conv and the fused
ADD's output border must hold the ADD's zero point; the choice of kernels
in the ops table; and the layout refused by the runtime when a schedule
asks an NHWC-only op to read a PLANAR tensor. The same stage also runs on
the Cortex-M7 twin (QEMU, the ACLE DSP path), bit-exact with TFLM.
"""
import re
import shutil

import numpy as np
import pytest

from runtime_harness import build_runtime, compile_model, run_runtime, run_tflm
from tf_ops import tflite_of

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
ASYM = (-0.5, 2.0)


@pytest.mark.parametrize("density", [1.0, 0.3, 0.05])
def test_resnet_stage_planar_bit_exact(tmp_path, objs, density):
    data = tflite_of("block_chain", (1, 8, 8, 6), density, calib=ASYM, cout=6)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    exe, report = build_runtime(path, tmp_path, objs)
    kinds = [(o["kind"], o["kernel"]) for o in report["ops"]]
    assert kinds[0] == ("TO_PLANAR", "to_planar") and kinds[-1][0] == "MEAN"
    convs = [k for kind, k in kinds if kind == "CONV_2D"]
    assert len(convs) == 3 and all(k in ("sparse", "dense") for k in convs)
    assert ("dense" in convs) == (density == 1.0)
    x = np.random.default_rng(3).integers(-128, 128, (5, 1, 8, 8, 6)).astype(np.int8)
    rc, out = run_runtime(exe, x)
    assert rc == 0 and np.array_equal(out, run_tflm(path, x))


def test_runtime_refuses_planar_operand_of_an_nhwc_op(tmp_path, objs):
    data = tflite_of("block_chain", (1, 8, 8, 6), 0.3, calib=ASYM, cout=6)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    build_runtime(path, tmp_path, objs)
    src = tmp_path / "gen/et_model.c"
    text = src.read_text()
    # MEAN's output becomes PLANAR: no kernel writes that, init must refuse (ET_ERR_MODEL).
    bad = re.sub(r"(\.kind = ET_OP_MEAN.*?\.out = \{[^}]*\}[^}]*)\}", r"\1, .layout = ET_PLANAR, .pad = 1}", text,
                 count=1, flags=re.S)
    assert bad != text
    src.write_text(bad)
    exe = compile_model(tmp_path / "gen", tmp_path / "bad", objs)
    rc, _ = run_runtime(exe, np.zeros((1, 1, 8, 8, 6), np.int8))
    assert rc == 10 + 8


def test_fast_requantization_equals_tflm_double_rounding(tmp_path):
    """et_fq_apply / et_fq_mode0 (one SMLAL and a shift) against et_mbqm, edge and random cases."""
    import subprocess

    from runtime_harness import CFLAGS, ROOT
    exe = tmp_path / "rq"
    subprocess.run(["gcc", *CFLAGS, "-O2", f"-I{ROOT / 'firmware/include'}", f"-I{ROOT / 'firmware/src'}",
                    str(ROOT / "firmware/tests/et_requant_check.c"), "-o", str(exe)], check=True)
    r = subprocess.run([str(exe), "2000000"], capture_output=True, text=True)
    assert r.returncode == 0 and "mismatches 0" in r.stdout, r.stdout[-2000:]
