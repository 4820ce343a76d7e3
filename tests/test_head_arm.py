"""The head cross-compiled for the Cortex-M7 (single-precision FPU): no double anywhere.

Usage: .venv/bin/python -m pytest tests/test_head_arm.py

Compiles et_head.c and a generated config with arm-none-eabi-gcc (hard
float, fpv5-sp-d16, -O2, -Werror -Wdouble-promotion -Wfloat-conversion),
checks with objdump that neither the object nor a program linked with
newlib's libm (logf) contains a .f64 instruction or a soft-double
call, that the checker does catch both in a snippet that uses double, and
that sizeof(et_head_t) on the target equals the footprint formula.
"""
import shutil
import subprocess

import numpy as np
import pytest

from entropi_tiny.codegen.fpcheck import double_precision_uses
from entropi_tiny.codegen.head import HeadSpec, generate_head_sources, head_memory

from head_data import GCC_WARNINGS, ROOT

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                reason="arm-none-eabi-gcc not installed")
CPU = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"]
# A deployment-sized head: ResNet18's 512 features, 10 classes, 200 cached samples.
SPEC = HeadSpec(feature_dim=512, num_classes=10, num_samples=200, feature_scale=0.05,
                feature_zero_point=-128, lr=0.01, momentum=0.9, weight_decay=1e-4,
                batch_size=16, epochs=5, init="table",
                init_weight=np.random.default_rng(0).normal(0, 0.04, (10, 512)))

MAIN = r"""
#include "et_head.h"
_Static_assert(sizeof(et_head_t) == %d, "footprint formula");
static uint8_t labels[ET_HEAD_TRAIN_N];
static int extract(void *ctx, uint32_t i, int8_t *out) {
    (void)ctx;
    for (uint32_t d = 0; d < ET_HEAD_D; d++) out[d] = (int8_t)(i * 7u + d);
    return 0;
}
int main(void) {
    float loss[ET_HEAD_EPOCHS];
    et_head_reset(&et_head_state);
    et_head_cache_fill(&et_head_cache[0][0], ET_HEAD_TRAIN_N, extract, 0);
    et_head_samples_t s = {&et_head_cache[0][0], 0, 0, labels, ET_HEAD_TRAIN_N};
    et_head_fit(&et_head_state, &s, ET_HEAD_EPOCHS, loss);
    return (int)et_head_evaluate(&et_head_state, &et_head_cache[0][0], labels, ET_HEAD_TRAIN_N);
}
"""


def arm_gcc(*args, check=True):
    return subprocess.run(["arm-none-eabi-gcc", "-O2", *CPU, *args], capture_output=True,
                          text=True, check=check)


def objdump(path) -> str:
    return subprocess.run(["arm-none-eabi-objdump", "-dr", str(path)], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("arm")
    generate_head_sources(out, SPEC)
    inc = [f"-I{ROOT / 'firmware/include'}", f"-I{out}"]
    arm_gcc(*GCC_WARNINGS, *inc, "-c", str(ROOT / "firmware/src/et_head.c"), "-o", str(out / "et_head.o"))
    (out / "main.c").write_text(MAIN % head_memory(SPEC)["state_bytes"])
    arm_gcc(*GCC_WARNINGS, *inc, "--specs=nosys.specs", str(ROOT / "firmware/src/et_head.c"),
            str(out / "et_head_data.c"), str(out / "main.c"), "-lm", "-o", str(out / "head.elf"))
    return out


def test_object_is_single_precision(build):
    listing = objdump(build / "et_head.o")
    assert "et_head_sgd_step" in listing and "expf" in listing and "logf" in listing
    assert double_precision_uses(listing) == []


def test_linked_program_with_libm_is_single_precision(build):
    """newlib's logf for a single-precision FPU is float code too (__ieee754_logf); exp is
    the head's own et_head_expf (float operations, mirrored on the host), not libm's."""
    listing = objdump(build / "head.elf")
    assert "<logf>:" in listing and "<et_head_expf>:" in listing and "<expf>:" not in listing
    assert double_precision_uses(listing) == []


def test_checker_catches_double(tmp_path):
    src = tmp_path / "bad.c"
    src.write_text("float scale(float x) { return x * 0.1; }\n")
    # -Wdouble-promotion refuses it at compile time ...
    assert arm_gcc("-std=c11", "-Wdouble-promotion", "-Werror", "-c", str(src), "-o",
                   str(tmp_path / "x.o"), check=False).returncode != 0
    # ... and without the warning, objdump shows soft-double calls on the sp FPU
    arm_gcc("-std=c11", "-c", str(src), "-o", str(tmp_path / "sp.o"))
    hits = double_precision_uses(objdump(tmp_path / "sp.o"))
    assert any("__aeabi_dmul" in h for h in hits) and any("__aeabi_f2d" in h for h in hits)
    # ... and .f64 instructions on a double-capable FPU (what QEMU's M7 would run)
    arm_gcc("-std=c11", "-mfpu=fpv5-d16", "-c", str(src), "-o", str(tmp_path / "dp.o"))
    assert any(".f64" in h for h in double_precision_uses(objdump(tmp_path / "dp.o")))


def test_checker_ignores_integer_helpers():
    listing = "bl 0 <__aeabi_uidiv>\n R_ARM_THM_CALL\t__aeabi_idiv\n bl <__aeabi_ldivmod>\n" \
              "<__aeabi_div0>:\n vmul.f32 s0, s0, s1\n"
    assert double_precision_uses(listing) == []


def test_size_and_footprint(build):
    size = subprocess.run(["arm-none-eabi-size", str(build / "et_head.o")], capture_output=True,
                          text=True, check=True).stdout.splitlines()[1].split()
    text, data, bss = map(int, size[:3])
    assert 1000 < text < 4096 and data == 0 and bss == 0      # measured: ~2.2 KB of code
