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


SMLAD_CASES = {  # dense convs with input channels in fours: the SMLAD kernel and its pack buffer
    "stage_s1_s2_fused_add": ("block_chain", (1, 8, 8, 8), dict(cout=8)),
    "rows_cross_tiles": ("conv", (1, 9, 11, 4), dict(k=3, stride=1, padding="VALID", cout=5)),
    "pointwise": ("conv", (1, 5, 13, 16), dict(k=1, stride=1, padding="SAME", act="RELU6", cout=7)),
    "stage_pointwise_s2": ("block_chain", (1, 8, 8, 8), dict(cout=8, k=1)),
}


@pytest.mark.parametrize("case", list(SMLAD_CASES))
def test_dense_smlad_kernel_bit_exact(tmp_path, objs, case):
    """Dense CONV_2D with channels in fours runs the SMLAD kernel on a pack buffer, bit-exact."""
    kind, shape, kw = SMLAD_CASES[case]
    data = tflite_of(kind, shape, 1.0, calib=ASYM, **kw)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    exe, report = build_runtime(path, tmp_path, objs)
    smlad = [o for o in report["ops"] if "SMLAD" in o["kernel_reason"]]
    assert smlad and all(o["pack_bytes"] > 0 and o["kernel"] == "dense" for o in smlad)
    x = np.random.default_rng(4).integers(-128, 128, (4,) + shape).astype(np.int8)
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


TWIN_CASES = {  # name: (kind, input shape, density, kwargs)
    "conv3x3_sparse": ("conv", (1, 9, 7, 5), 0.1, dict(k=3, stride=1, padding="SAME", act="RELU")),
    "conv3x3_s2_dense": ("pad_conv", (1, 8, 7, 4), 1.0, dict(stride=2, act="RELU")),
    "dw3x3_s2": ("dw", (1, 8, 9, 5), 0.3, dict(k=3, stride=2, padding="SAME", act="RELU")),
    "resnet_stage": ("block_chain", (1, 8, 8, 6), 0.3, dict(cout=6)),
    "smlad_stage": ("block_chain", (1, 8, 8, 8), 1.0, dict(cout=8)),
    "smlad_rows": ("conv", (1, 9, 11, 4), 1.0, dict(k=3, stride=1, padding="VALID", cout=5)),
}


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-gcc or qemu-system-arm not installed")
@pytest.mark.parametrize("case", list(TWIN_CASES))
def test_per_op_goldens_on_the_cortex_m7_twin(tmp_path, case):
    """The DSP build of the kernels, run in QEMU's Cortex-M7, gives TFLM's bytes."""
    from runtime_harness import ROOT, RUNTIME_SOURCES

    from entropi_tiny.boards import get_board
    from entropi_tiny.codegen.model import generate_model_sources
    from entropi_tiny.toolchain import compile_firmware, run_qemu

    kind, shape, density, kw = TWIN_CASES[case]
    data = tflite_of(kind, shape, density, calib=ASYM, **kw)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    gen = tmp_path / "gen"
    report = generate_model_sources(path, None, gen)
    assert any(o["kernel"] in ("sparse", "dense") for o in report["ops"])
    x = np.random.default_rng(5).integers(-128, 128, (3,) + shape).astype(np.int8)
    rows = ",\n".join("    {" + ", ".join(str(int(v)) for v in xi.reshape(-1)) + "}" for xi in x)
    (gen / "et_golden_inputs.h").write_text(
        f"#include <stdint.h>\n#define ET_GOLDEN_N {len(x)}u\n"
        f"static const int8_t et_golden_inputs[{len(x)}][{x[0].size}] = {{\n{rows}\n}};\n")
    sources = [ROOT / "firmware/tests/et_twin_golden.c", gen / "et_model.c",
               *(ROOT / "firmware/src" / f for f in RUNTIME_SOURCES if f != "et_crc32.c")]
    build = compile_firmware(get_board("mps2-an500"), sources, include_dirs=[gen, ROOT / "firmware/src"],
                             out_dir=tmp_path / "fw")
    result = run_qemu(build.elf, timeout=60)
    assert result.exit_code == 0, result.text[-2000:]
    got = [np.array(line.split()[2:], dtype=np.int64).astype(np.int8)
           for line in result.text.splitlines() if line.startswith("ET_GOLDEN ")]
    ref = run_tflm(path, x)
    assert len(got) == len(x) and np.array_equal(np.stack(got), ref)
