"""A nearly dead HARD_SWISH (tiny scales, as at very low alpha) is folded, not refused, and equals TFLM.

Usage: .venv/bin/python -m pytest tests/test_hswish_fold.py

MobileNetV3 pruned to alpha 0.0038 has layers whose activations span about
1e-6, so HARD_SWISH's relu-ish exponent falls below -15. TFLM then divides an
int16 by 2^16 or more, which is exactly 0; codegen/quant_params.py folds that
term to a zero multiplier with a shift the kernel supports. The generated C
must still equal TFLM byte for byte on such a model.
"""
import shutil

import numpy as np
import pytest

from entropi_tiny.codegen.quant_params import hard_swish_params
from entropi_tiny.errors import UserError

from runtime_harness import build_runtime, run_runtime, run_tflm
from tf_ops import op_names, tflite_of


def test_vanishing_relu_term_folds_to_zero():
    p = hard_swish_params((7.84314e-09, -1), (7.84314e-09, -1))
    assert p["relu_multiplier"] == 0 and p["relu_exponent"] == -15
    normal = hard_swish_params((0.02, 3), (0.015, -100))
    assert normal["relu_multiplier"] != 0
    with pytest.raises(UserError, match="HARD_SWISH"):     # a positive output exponent: still refused
        hard_swish_params((1.0, 0), (1e-4, 0))


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_tiny_scale_hswish_equals_tflm(tmp_path, objs):
    data = tflite_of("hswish", (1, 6, 7, 5), 1.0, calib=(-2e-6, 2e-6))
    assert op_names(data) == ["HARD_SWISH"]
    path = tmp_path / "hswish.tflite"
    path.write_bytes(data)
    exe, _ = build_runtime(path, tmp_path, objs)
    x = np.random.default_rng(0).integers(-128, 128, (6, 1, 6, 7, 5)).astype(np.int8)
    rc, out = run_runtime(exe, x)
    assert rc == 0
    ref = run_tflm(path, x)
    assert np.array_equal(out, ref), f"{(out != ref).mean():.1%} of bytes differ"
    assert len(np.unique(ref)) > 1      # not a constant output: the x/2 term survives
