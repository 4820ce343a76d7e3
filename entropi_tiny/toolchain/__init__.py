"""Building firmware, checking it, and running it on the QEMU twin.

Usage:
    from entropi_tiny.boards import get_board
    from entropi_tiny.toolchain import compile_firmware, check_no_double_precision, run_qemu
    build = compile_firmware(get_board("mps2-an500"), [Path("firmware/apps/selftest/main.c")],
                             include_dirs=[], out_dir=Path("build/selftest"))
    check_no_double_precision(build.elf)
    result = run_qemu(build.elf, timeout=10)

Modules: tools (finding the executables), build (compile, link, size report),
checks (no double precision), qemu (run the twin), frames (the UART frame
protocol, host side).
"""
from .build import BuildResult, compile_firmware
from .checks import check_no_double_precision, find_double_precision
from .qemu import QemuTimeout, RunResult, run_qemu
from .tools import find_tool

__all__ = ["BuildResult", "compile_firmware", "check_no_double_precision", "find_double_precision",
           "QemuTimeout", "RunResult", "run_qemu", "find_tool"]
