"""Per-op golden tests: the C runtime's output bytes equal TFLM's, op by op.

Usage: .venv/bin/python -m pytest tests/test_kernels_ops.py

Each case is a one- or few-op full-int8 .tflite (tests/tf_ops.py) run by
TFLM's Python interpreter (reference kernels) and by the generated C
(gcc -O2 -Wall -Wextra -Werror -pedantic) on random int8 inputs; 100% of
the output bytes must be equal. Conv-family ops run at weight densities
100%, 10%, 1% and 0% with odd shapes, strides, paddings and fused
activations; calibration on an asymmetric range gives non-zero input zero
points, which exercises the padding correction of the folded bias. A
sample of the cases also runs under the address and undefined-behaviour
sanitizers.
"""
import shutil

import numpy as np
import pytest

from runtime_harness import build_runtime, run_runtime, run_tflm
from tf_ops import op_names, tflite_of

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")

DENSITIES = [1.0, 0.1, 0.01, 0.0]
ASYM = (-0.5, 2.0)
SYM = (-1.0, 1.0)


def check(tmp_path, objs, kind, shape, density=1.0, calib=SYM, expect_ops=None, gen=None, n=6, **kw):
    """Build, run both, assert byte equality; returns the codegen report."""
    data = tflite_of(kind, shape, density, calib=calib, **kw)
    if expect_ops is not None:
        assert op_names(data) == expect_ops
    path = tmp_path / f"{kind}.tflite"
    path.write_bytes(data)
    exe, report = build_runtime(path, tmp_path, objs, sanitize="asan" in objs[0].parent.name, **(gen or {}))
    x = np.random.default_rng(hash((kind, shape, density)) % 2**32).integers(-128, 128, (n,) + shape).astype(np.int8)
    rc, out = run_runtime(exe, x)
    assert rc == 0
    ref = run_tflm(path, x)
    assert out.shape == ref.shape
    assert np.array_equal(out, ref), f"{(out != ref).mean():.1%} of bytes differ, max {np.abs(out.astype(int) - ref).max()}"
    return report


CONV_CASES = {  # name: (input shape, kwargs, calibration)
    "3x3_same_relu": ((1, 9, 7, 5), dict(k=3, stride=1, padding="SAME", act="RELU"), ASYM),
    "3x3_s2_same": ((1, 9, 7, 5), dict(k=3, stride=2, padding="SAME"), SYM),
    "1x1_valid_relu6": ((1, 8, 8, 3), dict(k=1, stride=1, padding="VALID", act="RELU6", cout=7), ASYM),
    "3x3_s2_valid": ((1, 10, 9, 4), dict(k=3, stride=2, padding="VALID", act="RELU"), ASYM),
    "1x1_s2_same": ((1, 7, 7, 16), dict(k=1, stride=2, padding="SAME", cout=9), SYM),
    "5x5_same_odd": ((1, 5, 6, 3), dict(k=5, stride=1, padding="SAME", act="RELU", cout=5), ASYM),
}


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv2d(tmp_path, objs, case, density):
    shape, kw, calib = CONV_CASES[case]
    check(tmp_path, objs, "conv", shape, density, calib, ["CONV_2D"], **kw)


DW_CASES = {
    "3x3_same_relu6": ((1, 9, 7, 6), dict(k=3, stride=1, padding="SAME", act="RELU6"), ASYM),
    "3x3_s2_same": ((1, 8, 9, 5), dict(k=3, stride=2, padding="SAME", act="RELU"), SYM),
    "5x5_s2_valid": ((1, 11, 10, 3), dict(k=5, stride=2, padding="VALID"), ASYM),
}


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("case", list(DW_CASES))
def test_depthwise_conv2d(tmp_path, objs, case, density):
    shape, kw, calib = DW_CASES[case]
    check(tmp_path, objs, "dw", shape, density, calib, ["DEPTHWISE_CONV_2D"], **kw)


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("shape,act,calib", [((1, 37), "RELU", ASYM), ((1, 64), "NONE", SYM)])
def test_fully_connected(tmp_path, objs, shape, act, calib, density):
    check(tmp_path, objs, "fc", shape, density, calib, ["FULLY_CONNECTED"], act=act, cout=11)


ELTWISE = {  # name: (kind, input shape, kwargs, expected ops)
    "add_same_shape": ("add_hswish", (1, 6, 5, 7), {}, ["HARD_SWISH", "ADD"]),
    "add_broadcast_relu": ("add_mean", (1, 5, 7, 3), {"act": "RELU"}, ["MEAN", "ADD"]),
    "add_const_relu6": ("add_const", (1, 4, 3, 5), {}, ["ADD"]),
    "mul_broadcast": ("mul_mean", (1, 6, 4, 5), {}, ["MEAN", "MUL"]),
    "mul_scalar_const": ("mul_const", (1, 3, 5, 4), {}, ["MUL"]),
    "mul_same_shape_relu6": ("mul_hswish", (1, 4, 4, 6), {"act": "RELU6"}, ["HARD_SWISH", "MUL"]),
    "mean": ("mean", (1, 7, 5, 6), {"keep_dims": False}, ["MEAN"]),
    "mean_keep_dims": ("mean", (1, 4, 4, 9), {"keep_dims": True}, ["MEAN"]),
    "pad": ("pad", (1, 5, 4, 3), {}, ["PAD"]),
    "hard_swish": ("hswish", (1, 6, 7, 5), {}, ["HARD_SWISH"]),
    "reshape": ("reshape", (1, 5, 5, 3), {}, ["CONV_2D", "RESHAPE"]),
}


@pytest.mark.parametrize("calib", [SYM, ASYM], ids=["sym", "asym"])
@pytest.mark.parametrize("case", list(ELTWISE))
def test_eltwise_and_data_ops(tmp_path, objs, case, calib):
    kind, shape, kw, ops = ELTWISE[case]
    check(tmp_path, objs, kind, shape, 1.0, calib, ops, **kw)


@pytest.mark.parametrize("fuse_ops", [True, False])
@pytest.mark.parametrize("density", [1.0, 0.1])
def test_pad_fused_into_conv(tmp_path, objs, density, fuse_ops):
    report = check(tmp_path, objs, "pad_conv", (1, 8, 7, 4), density, ASYM, ["PAD", "CONV_2D"],
                   gen={"fuse_ops": fuse_ops}, stride=2, act="RELU")
    assert report["nodes"] == (["TO_PLANAR", "CONV_2D"] if fuse_ops else ["PAD", "CONV_2D"])


@pytest.mark.parametrize("fuse_ops,inplace", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("density", [1.0, 0.1, 0.0])
def test_residual_add_fused_into_conv(tmp_path, objs, density, fuse_ops, inplace):
    report = check(tmp_path, objs, "block", (1, 6, 6, 4), density, ASYM, ["CONV_2D", "CONV_2D", "ADD"],
                   gen={"fuse_ops": fuse_ops, "inplace": inplace}, cout=5)
    assert report["nodes"] == (["TO_PLANAR", "CONV_2D", "CONV_2D"] if fuse_ops else ["CONV_2D", "CONV_2D", "ADD"])


@pytest.mark.parametrize("case", ["conv_3x3_same_relu", "conv_1x1_s2_same", "dw", "fc", "eltwise", "block"])
def test_sanitizer_build(tmp_path, asan_objs, case):
    """The same golden checks with -fsanitize=address,undefined and an exactly-sized arena."""
    if case.startswith("conv_"):
        shape, kw, calib = CONV_CASES[case[5:]]
        for d in (1.0, 0.01):
            check(tmp_path, asan_objs, "conv", shape, d, calib, **kw)
    elif case == "dw":
        shape, kw, calib = DW_CASES["3x3_s2_same"]
        check(tmp_path, asan_objs, "dw", shape, 0.1, calib, **kw)
    elif case == "fc":
        check(tmp_path, asan_objs, "fc", (1, 37), 0.1, ASYM, act="RELU", cout=11)
    elif case == "eltwise":
        for name in ("add_broadcast_relu", "mul_scalar_const", "mean", "pad", "hard_swish"):
            kind, shape, kw, _ = ELTWISE[name]
            (tmp_path / name).mkdir()
            check(tmp_path / name, asan_objs, kind, shape, 1.0, ASYM, **kw)
    else:
        check(tmp_path, asan_objs, "block", (1, 6, 6, 4), 0.1, ASYM, cout=5)
