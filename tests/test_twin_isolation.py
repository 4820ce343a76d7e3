"""The twin gives the guest no host file access, and the frame parser's fuzz target builds and runs.

Usage: .venv/bin/python -m pytest tests/test_twin_isolation.py
"""
from __future__ import annotations

import subprocess

import pytest

from entropi_tiny.boards import get_board
from entropi_tiny.toolchain import compile_firmware, run_qemu
from entropi_tiny.toolchain import frames_fuzz
from entropi_tiny.toolchain.qemu import qemu_command

PROBE = r"""
#include <stdint.h>
#include "et_board.h"

/* A semihosting call: r0 = operation, r1 = argument block, BKPT 0xAB. */
static int32_t probe_semihost(uint32_t op, const void *block) {
    register uint32_t r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

int main(void) {
    et_board_init();
    static const char path[] = "@PATH@";
    static const char text[] = "written by the guest\n";
    const uint32_t open_block[3] = {(uint32_t)path, 4u /* "w" */, sizeof path - 1u};
    et_printf("probe: SYS_OPEN\n");
    int32_t h = probe_semihost(0x01u, open_block);
    et_printf("probe: SYS_OPEN returned %d\n", (int)h);
    if (h >= 0) {
        const uint32_t write_block[3] = {(uint32_t)h, (uint32_t)text, sizeof text - 1u};
        const uint32_t close_block[1] = {(uint32_t)h};
        probe_semihost(0x05u, write_block);
        probe_semihost(0x02u, close_block);
    }
    et_board_exit(h >= 0 ? 0 : 1);
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("semihost")
    marker = folder / "guest-was-here.txt"
    src = folder / "probe.c"
    src.write_text(PROBE.replace("@PATH@", str(marker)))
    build = compile_firmware(get_board("mps2-an500"), [src], out_dir=folder / "fw")
    return build.elf, marker


def test_guest_sys_open_fails_on_the_twin(probe):
    elf, marker = probe
    result = run_qemu(elf, timeout=30)
    assert not marker.exists()
    assert "probe: SYS_OPEN\n" in result.text and "returned" not in result.text
    assert result.exit_code == 99          # the BKPT faults: no semihosting at all
    assert "-semihosting" not in " ".join(qemu_command(elf))


def test_the_probe_would_write_with_native_semihosting(probe):
    """The control: under the old `-semihosting-config target=native` the same image
    creates the host file, so the test above can fail."""
    elf, marker = probe
    cmd = [*qemu_command(elf), "-semihosting-config", "enable=on,target=native"]
    r = subprocess.run(cmd, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert marker.read_text() == "written by the guest\n", r.stdout[-500:]
    marker.unlink()


def test_frames_fuzz_seeds_replay_clean(tmp_path):
    """The fuzz target on its seed corpus, built with gcc (no libFuzzer needed)."""
    exe = frames_fuzz.build_fuzzer(tmp_path, mode="replay")
    seeds = frames_fuzz.write_seed_corpus(tmp_path / "corpus")
    r = subprocess.run([str(exe), *map(str, seeds)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"replayed {len(seeds)} inputs", r.stderr


# The libFuzzer run of the frame target is tests/test_fuzz.py's (firmware/fuzz/fuzz_targets.py).
