"""The compiled C head (firmware/src/et_head.c) against the float32 reference, on real features.

Usage: .venv/bin/python -m pytest tests/test_head_c.py

For several configurations (batch 1 and mini-batches, with and without
momentum and weight decay, seeded, zero and table init, lr decay) the
generated config is compiled with -Wall -Wextra -Werror -Wdouble-promotion
and trained on int8 CIFAR features from a frozen encoder; weights, losses
and the top-1 count must match entropi_tiny/head_reference.py (1e-5
relative), and training from the cache must equal training with the
extractor rerun every epoch, bit for bit, with N instead of N * epochs
extractor calls. The unit checks (firmware/tests/et_head_unit.c) run under
the address and undefined-behaviour sanitizers for every configuration.
"""
import shutil
import struct
import subprocess

import numpy as np
import pytest

from entropi_tiny.codegen.head import HeadSpec, head_memory
from entropi_tiny.head_reference import HeadReference

from head_data import build_head, cifar_features

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
EPOCHS = 3
RTOL = 1e-5

# The frozen encoder is a random init, so its features are large and unnormalised
# (mean squared norm ~2500): stable learning rates are small. Weight decays
# are large enough to move the weights measurably within 3 epochs.
CASES = {
    "sgd_b1": dict(lr=1e-4),
    "momentum_wd_b1": dict(lr=2e-5, momentum=0.9, weight_decay=0.5),
    "sgd_b8": dict(lr=3e-4, batch_size=8),
    "momentum_wd_b7_table_decay": dict(lr=5e-5, momentum=0.9, weight_decay=0.1, batch_size=7,
                                       lr_decay=0.8, init="table"),
    "zero_init_noshuffle_b16": dict(lr=2e-4, momentum=0.5, batch_size=16, init="zero",
                                    shuffle=False, seed=7),
    "bf16_nearest_b1": dict(lr=1e-4, weight_bits=16),
    "bf16_stochastic_bf16_momentum_b8": dict(lr=5e-5, momentum=0.9, weight_decay=0.1,
                                              batch_size=8, weight_bits=16, momentum_bits=16,
                                              rounding="stochastic", seed=3),
}


def make_spec(feats, **kw) -> HeadSpec:
    if kw.get("init") == "table":
        rng = np.random.default_rng(1)
        kw["init_weight"] = rng.normal(0, 0.05, (5, feats["train_q"].shape[1]))
        kw["init_bias"] = rng.normal(0, 0.05, 5)
    return HeadSpec(feature_dim=feats["train_q"].shape[1], num_classes=5,
                    num_samples=len(feats["train_q"]), feature_scale=feats["scale"],
                    feature_zero_point=feats["zero_point"], epochs=EPOCHS, **kw)


def run_driver(exe, feats, mode: int, tmp_path, epochs=EPOCHS) -> dict:
    tq, ty, sq, sy = (feats[k] for k in ("train_q", "train_y", "test_q", "test_y"))
    blob = struct.pack("<4I", len(tq), len(sq), epochs, mode) + tq.tobytes() + ty.tobytes() \
        + sq.tobytes() + sy.tobytes()
    (tmp_path / "in.bin").write_bytes(blob)
    r = subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
                       capture_output=True, text=True)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    raw = (tmp_path / "out.bin").read_bytes()
    n = struct.unpack_from("<I", raw)[0]
    c, d = 5, tq.shape[1]
    vals = np.frombuffer(raw, "<f4", n + c * d + c, 4)
    correct, calls, size = struct.unpack_from("<3I", raw, 4 + 4 * (n + c * d + c))
    return {"losses": vals[:n], "weight": vals[n:n + c * d].reshape(c, d), "bias": vals[n + c * d:],
            "correct": correct, "calls": calls, "sizeof": size}


def assert_close(got, want, what):
    """Relative 1e-5, against the largest magnitude (weights near 0 have no relative scale)."""
    want = np.asarray(want, np.float32)
    err = np.max(np.abs(np.asarray(got) - want)) / max(np.max(np.abs(want)), 1e-30)
    assert err <= RTOL, f"{what}: max relative error {err:.2e}"


@pytest.fixture(scope="module")
def feats():
    return cifar_features()


@pytest.mark.parametrize("case", list(CASES))
def test_c_matches_reference(feats, tmp_path, case):
    spec = make_spec(feats, **CASES[case])
    exe = build_head(tmp_path, spec, "firmware/tests/et_head_driver.c")
    cached = run_driver(exe, feats, 0, tmp_path)
    ref = HeadReference(spec)
    losses = ref.fit(feats["train_q"], feats["train_y"])
    assert_close(cached["weight"], ref.weight, "weights")
    assert_close(cached["bias"], ref.bias, "bias")
    # every operation that carries state is mirrored, so the state is bit-identical
    assert np.array_equal(cached["weight"], ref.weight) and np.array_equal(cached["bias"], ref.bias)
    np.testing.assert_allclose(cached["losses"], losses, rtol=RTOL)
    assert cached["correct"] == ref.evaluate(feats["test_q"], feats["test_y"])
    assert losses[-1] < losses[0]          # it learns something
    assert cached["sizeof"] == head_memory(spec)["state_bytes"]

    # The cache skips the extractor after the first pass and changes nothing else.
    rerun = run_driver(exe, feats, 1, tmp_path)
    assert cached["calls"] == spec.num_samples and rerun["calls"] == spec.num_samples * EPOCHS
    for key in ("losses", "weight", "bias"):
        assert np.array_equal(cached[key], rerun[key]), key
    assert cached["correct"] == rerun["correct"]


@pytest.mark.parametrize("case", ["momentum_wd_b1", "momentum_wd_b7_table_decay"])
def test_step_apis_match_reference(feats, tmp_path, case):
    """et_head_sgd_step per sample and et_head_batch_step per chunk, in file order."""
    spec = make_spec(feats, **CASES[case])
    exe = build_head(tmp_path, spec, "firmware/tests/et_head_driver.c")
    q, y = feats["train_q"], feats["train_y"]
    got = run_driver(exe, feats, 2, tmp_path)
    ref = HeadReference(spec)
    want = [ref.sgd_step(ref.dequantize(q[i]), int(y[i]), ref.lr) for i in range(len(q))]
    np.testing.assert_allclose(got["losses"], want, rtol=RTOL)
    assert_close(got["weight"], ref.weight, "sgd_step weights")

    got = run_driver(exe, feats, 3, tmp_path)
    ref, b, want = HeadReference(spec), spec.batch_size, []
    for i in range(0, len(q), b):
        total = np.float32(0)
        for j in range(i, min(i + b, len(q))):
            x = ref.dequantize(q[j])
            loss = ref.accumulate(x, int(y[j]), q[j]) if b > 1 else ref.sgd_step(x, int(y[j]), ref.lr)
            total = np.float32(total + loss)
        if b > 1:
            ref.apply(ref.lr)
        want.append(total / np.float32(min(b, len(q) - i)))
    np.testing.assert_allclose(got["losses"], want, rtol=RTOL)
    assert_close(got["weight"], ref.weight, "batch_step weights")


@pytest.mark.parametrize("case", list(CASES))
def test_c_unit_checks_sanitized(feats, tmp_path, case):
    exe = build_head(tmp_path, make_spec(feats, **CASES[case]), "firmware/tests/et_head_unit.c",
                     sanitize=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr[-2000:]


def test_c_driver_sanitized(feats, tmp_path):
    spec = make_spec(feats, **CASES["momentum_wd_b7_table_decay"])
    exe = build_head(tmp_path, spec, "firmware/tests/et_head_driver.c", sanitize=True)
    for mode in range(4):
        out = run_driver(exe, feats, mode, tmp_path, epochs=1)
        assert np.all(np.isfinite(out["weight"]))


def test_reference_is_checked(feats, tmp_path):
    """The comparison can fail: a different weight decay in C shows up in the weights."""
    spec = make_spec(feats, **CASES["momentum_wd_b1"])
    exe = build_head(tmp_path, make_spec(feats, **{**CASES["momentum_wd_b1"], "weight_decay": 0.55}),
                     "firmware/tests/et_head_driver.c")
    got, ref = run_driver(exe, feats, 0, tmp_path), HeadReference(spec)
    ref.fit(feats["train_q"], feats["train_y"])
    with pytest.raises(AssertionError):
        assert_close(got["weight"], ref.weight, "weights")


@pytest.mark.parametrize("dims", [
    dict(feature_dim=1, num_classes=256, num_samples=1, cache=False, init="zero", shuffle=False),
    dict(feature_dim=1280, num_classes=2, num_samples=3, batch_size=3, momentum=0.9),
])
def test_c_edge_configs_sanitized(tmp_path, dims):
    spec = HeadSpec(feature_scale=0.5, **dims)
    exe = build_head(tmp_path, spec, "firmware/tests/et_head_unit.c", sanitize=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr[-2000:]
