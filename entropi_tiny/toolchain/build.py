"""Compile and link a firmware image for one board, and report its size.

Usage:
    build = compile_firmware(get_board("nucleo-f746"), [Path("firmware/apps/selftest/main.c")],
                             include_dirs=[], out_dir=Path("build/f746"),
                             defines={"ET_SELFTEST_EXIT_CODE": 3})
    build.flash_used, build.ram_static, build.stack_bytes

Writes firmware.elf, .bin, .hex, .map and size.json to out_dir, each by an
atomic rename, so a killed build leaves old files or new ones. The board's
startup, board.c and the shared platform sources are added to `sources`.
An image over the F746's budgets fails to link; that becomes a one-line
UserError naming the region, the overflow and its likely cause: the stack
setting, the embedded samples (measured by compiling their source alone) or
the encoder.

Every path reaches the compiler absolute, as its own argument and never
inside a comma-split `-Wl,` list, so a folder named `-oINJ` or `a,-Map=x`
stays a path. A build works in a `.build-*` folder of out_dir that it holds
an flock on; one that nobody holds (left by a killed build) is removed by the
next build into the same folder.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_bytes, write_json, write_text
from ..boards import FIRMWARE_DIR, Board
from ..errors import UserError, printable
from .tools import find_tool

CFLAGS = ("-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion",
          "-ffunction-sections", "-fdata-sections", "-fno-common")
LDFLAGS = ("-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections")

ARTIFACTS = ("firmware.elf", "firmware.bin", "firmware.hex", "firmware.map")
_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Generated sources whose size a user setting controls: stem -> (what, setting).
SIZE_CAUSES = {"et_samples": ("the embedded samples", "lower firmware.train_per_class "
                              "(and firmware.test_per_class)")}
ALPHA_HINT = "choose a smaller alpha (a sparser encoder) or a smaller model"
MIN_STACK = 2048
LOCK_NAME = ".lock"


class FirmwareBuildError(UserError):
    """The compiler or linker refused the sources; the full log is in build.log."""


@dataclass
class BuildResult:
    board: str
    elf: Path
    bin: Path
    hex: Path
    map: Path
    size_report: Path
    flash_used: int      # flash occupied: vectors, code, constants, .data's initial values, padding
    ram_static: int      # RAM occupied by .data and .bss, with padding
    stack_bytes: int     # the stack region, also in RAM
    flash_budget: int
    ram_budget: int
    sections: dict[str, int] = field(default_factory=dict)

    @property
    def ram_used(self) -> int:
        """Static RAM plus the stack region: what the linker fits into the RAM budget."""
        return self.ram_static + self.stack_bytes


def compile_firmware(board: Board, sources: list[Path], include_dirs: list[Path] | tuple = (),
                     out_dir: Path = Path("build"), defines: dict | None = None,
                     stack_bytes: int | None = None, keep_symbols: tuple[str, ...] = ()) -> BuildResult:
    """Build firmware.elf/.bin/.hex/.map and size.json for `board` in `out_dir`.

    defines: {"NAME": value or None} for -D; stack_bytes: the stack region (default
    the board's); keep_symbols: symbols linked even when nothing references them
    (the link drops unreferenced functions and data)."""
    gcc = find_tool("arm-none-eabi-gcc")
    objcopy = find_tool("arm-none-eabi-objcopy")
    objdump = find_tool("arm-none-eabi-objdump")
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    stack = board.stack_bytes if stack_bytes is None else int(stack_bytes)
    if not MIN_STACK <= stack < board.ram_bytes or stack % 8:
        raise UserError(f"stack of {stack} bytes for the {board.name}: must be a multiple of 8 "
                        f"in [{MIN_STACK}, {board.ram_bytes}) (firmware.stack_bytes)")
    for sym in keep_symbols:
        if not _IDENT.match(sym):
            raise UserError(f"not a C symbol name: {sym!r}")
    sources = [_abs(s) for s in sources]
    for src in sources:
        if not src.is_file():
            raise UserError(f"firmware source not found: {printable(src)}")
    remove_stale_build_dirs(out_dir)

    with tempfile.TemporaryDirectory(prefix=".build-", dir=out_dir) as tmp_name:
        tmp = Path(tmp_name)
        lock = _hold(tmp)
        elf, map_file = tmp / "firmware.elf", tmp / "firmware.map"
        flags = [*board.cpu_flags, *CFLAGS, f"-I{_abs(FIRMWARE_DIR / 'include')}",
                 *(f"-I{_abs(d)}" for d in include_dirs),
                 *(_define(k, v) for k, v in (defines or {}).items())]
        cmd = [str(gcc), *flags, *LDFLAGS, f"-L{_abs(FIRMWARE_DIR / 'boards')}",
               "-T", str(_abs(board.linker_script)),
               f"-Wl,--defsym=et_stack_bytes={stack}", "-Xlinker", f"-Map={map_file}",
               *(f"-Wl,--undefined={sym}" for sym in keep_symbols),
               *(str(_abs(s)) for s in board.sources()), *(str(s) for s in sources),
               "-lm", "-o", str(elf)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            for name in ARTIFACTS + ("size.json",):  # no stale image may outlive a failed build
                (out_dir / name).unlink(missing_ok=True)
            log = " ".join(cmd) + "\n\n" + proc.stdout + proc.stderr
            write_text(out_dir / "build.log", log)
            causes = _size_causes(gcc, objdump, flags, sources, tmp) \
                if "overflowed by" in proc.stderr else {}
            raise _build_error(board, proc.stderr, stack, out_dir / "build.log", causes)
        _run([str(objcopy), "-O", "binary", str(elf), str(tmp / "firmware.bin")])
        _run([str(objcopy), "-O", "ihex", str(elf), str(tmp / "firmware.hex")])
        headers = _section_headers(objdump, elf)
        sections = {name: size for name, (size, _, _, _) in headers.items()}
        flash = _extent(headers, board.flash_origin, board.flash_bytes, by_lma=True)
        ram_static = _extent({k: v for k, v in headers.items() if k != ".stack"},
                             board.ram_origin, board.ram_bytes, by_lma=False)
        for name in ARTIFACTS:
            write_bytes(out_dir / name, (tmp / name).read_bytes())
        lock.close()

    result = BuildResult(
        board=board.name, elf=out_dir / "firmware.elf", bin=out_dir / "firmware.bin",
        hex=out_dir / "firmware.hex", map=out_dir / "firmware.map",
        size_report=out_dir / "size.json", flash_used=flash, ram_static=ram_static,
        stack_bytes=sections.get(".stack", stack), flash_budget=board.flash_bytes,
        ram_budget=board.ram_bytes, sections=sections)
    report = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(result).items()}
    report["ram_used"] = result.ram_used
    write_json(result.size_report, report)
    (out_dir / "build.log").unlink(missing_ok=True)
    return result


def _abs(path) -> Path:
    """An absolute path: it starts with '/', so no tool can read it as an option."""
    return Path(os.path.abspath(path))


def _hold(folder: Path):
    """An exclusive flock on folder/.lock, held while the build works there."""
    f = open(folder / LOCK_NAME, "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def remove_stale_build_dirs(out_dir: Path, grace_s: float = 60.0) -> list[Path]:
    """Remove `.build-*` folders no build holds any more: their lock file can be
    taken (its process died), or, without one, they are older than `grace_s`
    (a build that just created its folder takes the lock at once)."""
    removed = []
    for d in Path(out_dir).glob(".build-*"):
        if not d.is_dir() or d.is_symlink():
            continue
        lock = d / LOCK_NAME
        try:
            if lock.is_file():
                with open(lock) as f:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)   # held: a live build
            elif time.time() - d.stat().st_mtime < grace_s:
                continue
        except (BlockingIOError, FileNotFoundError):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _define(name: str, value) -> str:
    if not _IDENT.match(str(name)) or any(c in str(value) for c in "\n\r\0"):
        raise UserError(f"bad preprocessor define {printable(name)}={printable(value)}")
    return f"-D{name}" if value is None else f"-D{name}={value}"


def _size_causes(gcc: Path, objdump: Path, flags: list[str], sources: list[Path],
                 tmp: Path) -> dict[str, tuple[str, str, int]]:
    """Flash bytes of each generated source in SIZE_CAUSES, compiled alone (only
    after a link overflowed): stem -> (what, setting, bytes)."""
    found = {}
    for src in sources:
        if src.stem not in SIZE_CAUSES:
            continue
        obj = tmp / f"{src.stem}.o"
        proc = subprocess.run([str(gcc), *flags, "-c", str(src), "-o", str(obj)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            continue
        size = sum(sz for name, (sz, _, _, loaded) in _section_headers(objdump, obj).items()
                   if loaded and not name.startswith(".bss"))
        found[src.stem] = (*SIZE_CAUSES[src.stem], size)
    return found


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"{Path(cmd[0]).name} failed: {(proc.stderr or proc.stdout).strip()[:300]}")
    return proc.stdout


def _section_headers(objdump: Path, elf: Path) -> dict[str, tuple[int, int, int, bool]]:
    """Allocated sections from `objdump -h`: name -> (size, VMA, LMA, has contents)."""
    headers = {}
    lines = _run([str(objdump), "-h", str(elf)]).splitlines()
    for line, flags in zip(lines, lines[1:]):
        parts = line.split()
        if len(parts) >= 7 and parts[0].isdigit() and "ALLOC" in flags:
            headers[parts[1]] = (int(parts[2], 16), int(parts[3], 16), int(parts[4], 16),
                                 "LOAD" in flags)
    return headers


def _extent(headers: dict, origin: int, length: int, by_lma: bool) -> int:
    """Bytes from `origin` to the end of the last section inside [origin, origin + length):
    by load address for flash (only sections with contents), by run address for RAM."""
    end = origin
    for size, vma, lma, loaded in headers.values():
        addr = lma if by_lma else vma
        if (loaded or not by_lma) and origin <= addr < origin + length:
            end = max(end, addr + size)
    return end - origin


def _build_error(board: Board, stderr: str, stack: int, log: Path,
                 causes: dict | None = None) -> UserError:
    overflows = [(region, int(n)) for region, n in _OVERFLOW.findall(stderr)]
    if overflows:
        parts, hints = [], []
        for region, n in overflows:
            if region == "RAM":
                budget = f"{board.ram_bytes // 1024} KiB of RAM for data, bss and a {stack}-byte stack"
                hints.append(_ram_hint(board, stack, n))
            else:
                budget = f"{board.flash_bytes // 1024} KiB of {region}"
                hints.append(_flash_hint(board, n, causes or {}))
            parts.append(f"{region} overflowed by {n} bytes (budget {budget})")
        return UserError(f"firmware does not fit the {board.name}: {'; '.join(parts)}; "
                         f"{'; '.join(dict.fromkeys(hints))}")
    if "undefined reference to `_sbrk'" in stderr:
        return UserError("firmware needs malloc (called directly or by a libc function such as "
                         "printf), but there is no heap; use et_printf and static buffers")
    stderr = "".join(c if c.isprintable() or c == "\n" else "?" for c in stderr)
    errors = [ln for ln in stderr.splitlines() if re.search(r":\d+: (fatal )?error:|: error:", ln)]
    first = (errors or stderr.strip().splitlines() or ["(no output)"])[0].strip()
    return FirmwareBuildError(f"firmware build for {board.name} failed: {first[:300]} (full log: {log})")


def _ram_hint(board: Board, stack: int, overflow: int) -> str:
    """RAM holds data + bss + the stack, so data + bss = RAM + overflow - stack.
    The stack setting is the cause when a stack the board's default size would fit."""
    static = board.ram_bytes + overflow - stack
    fits = stack - overflow
    if static > board.ram_bytes:
        return f"data and bss alone need {static} bytes: {ALPHA_HINT}"
    if stack > board.stack_bytes and fits >= board.stack_bytes:
        return (f"the cause is the stack setting: lower firmware.stack_bytes from {stack} "
                f"to at most {fits}")
    lower = f", or lower firmware.stack_bytes to at most {fits}" if fits >= MIN_STACK else ""
    return f"{ALPHA_HINT}{lower}"


def _flash_hint(board: Board, overflow: int, causes: dict) -> str:
    for what, setting, size in causes.values():
        if size > board.flash_bytes:
            return (f"{what} alone take {size} bytes, more than the whole flash: {setting}")
        if size >= overflow:
            return f"{what} take {size} bytes: {setting}, or {ALPHA_HINT}"
    return ALPHA_HINT
