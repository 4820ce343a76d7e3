"""A 100-class head trains on the QEMU twin (Cortex-M7) exactly as the host reference says.

Usage: .venv/bin/python -m pytest tests/test_head_twin.py

firmware/tests/et_head_twin.c is cross-compiled for mps2-an500 with a
100-class head (small D so the check stays quick: the size rows belong in
benchmarks/bench_backprop_memory.py) and run under QEMU. Every step's loss
must match entropi_tiny/head_reference.py to 1e-5 relative and the final
weights bit for bit, for float32 storage and for bfloat16 weights and
momentum with stochastic rounding over a mini-batch.
"""
import shutil
import struct

import numpy as np
import pytest

from entropi_tiny.boards import get_board
from entropi_tiny.codegen.head import HeadSpec, generate_head_sources
from entropi_tiny.head_reference import HeadReference
from entropi_tiny.toolchain.build import compile_firmware
from entropi_tiny.toolchain.qemu import run_qemu

from head_data import ROOT, cifar_features

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None
                                or shutil.which("qemu-system-arm") is None,
                                reason="arm-none-eabi-gcc or qemu-system-arm not installed")
C, D, N, EPOCHS = 100, 16, 40, 3
CASES = {"f32_b1": dict(lr=2e-4),
         "bf16_stochastic_momentum_b8": dict(lr=2e-4, momentum=0.9, weight_decay=0.01, batch_size=8,
                                             weight_bits=16, momentum_bits=16,
                                             rounding="stochastic")}


def f32(bits: str) -> np.float32:
    return np.frombuffer(struct.pack("<I", int(bits, 16)), "<f4")[0]


@pytest.mark.parametrize("case", list(CASES))
def test_100_class_head_on_twin_matches_reference(tmp_path, case):
    f = cifar_features()
    q = np.ascontiguousarray(f["train_q"][:N, :D])
    y = np.random.default_rng(0).integers(0, C, N).astype(np.uint8)   # random 100-class labels
    spec = HeadSpec(feature_dim=D, num_classes=C, num_samples=N, feature_scale=f["scale"],
                    feature_zero_point=f["zero_point"], cache=False, **CASES[case])
    generate_head_sources(tmp_path, spec)
    rows = ",\n".join("{" + ",".join(str(int(v)) for v in r) + "}" for r in q)
    (tmp_path / "et_head_twin_data.h").write_text(
        f"#define ET_TWIN_EPOCHS {EPOCHS}u\nstatic const int8_t et_twin_q[{N}][{D}] = {{\n{rows}}};\n"
        f"static const uint8_t et_twin_y[{N}] = {{{','.join(map(str, y))}}};\n")
    build = compile_firmware(get_board("mps2-an500"),
                             [ROOT / "firmware/src/et_head.c", tmp_path / "et_head_data.c",
                              ROOT / "firmware/tests/et_head_twin.c"], [tmp_path], tmp_path / "fw")
    run = run_qemu(build.elf, timeout=120)
    assert run.exit_code == 0 and "ET_DONE" in run.text, run.text[-2000:]
    lines = [ln.split() for ln in run.text.splitlines()]
    losses = [f32(ln[2]) for ln in lines if ln[0] == "ET_STEP"]
    weight = np.zeros((C, D), np.float32)
    bias = np.zeros(C, np.float32)
    for ln in lines:
        if ln[0] == "ET_W":
            weight[int(ln[1]), int(ln[2])] = f32(ln[3])
        elif ln[0] == "ET_B":
            bias[int(ln[1])] = f32(ln[2])

    ref, b, want = HeadReference(spec), spec.batch_size, []
    for _ in range(EPOCHS):
        for i in range(0, N, b):
            total = np.float32(0)
            for j in range(i, min(i + b, N)):
                x = ref.dequantize(q[j])
                loss = ref.accumulate(x, int(y[j]), q[j]) if b > 1 else ref.sgd_step(x, int(y[j]), ref.lr)
                total = np.float32(total + loss)
            if b > 1:
                ref.apply(ref.lr)
            want.append(total / np.float32(min(b, N - i)))
    assert len(losses) == len(want)
    np.testing.assert_allclose(losses, want, rtol=1e-5)
    per_epoch = np.array(losses).reshape(EPOCHS, -1).mean(axis=1)
    assert per_epoch[-1] < per_epoch[0]          # it learns the (random) labels
    assert np.array_equal(weight, ref.weight) and np.array_equal(bias, ref.bias)
