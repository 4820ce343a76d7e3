"""Writing a board image with whatever probe is there: the ST-LINK drive, st-flash, openocd, pyocd.

Usage:
    result = flash_image(Path("export/default/firmware/nucleo-f746/stream/firmware.bin"),
                         probe="auto")
    result["probe"], result["command"]

`auto` tries, in order: the ST-LINK's USB drive (a mounted NODE_F746ZG
volume under /media, /run/media or /mnt: the .bin is copied onto it and the
ST-LINK programs and resets the board itself), `st-flash` (Debian
stlink-tools: writes, reads back to verify, resets), `openocd` (Debian
openocd, board/st_nucleo_f7.cfg: program, verify, reset). A probe whose tool
exists but fails (no board on the cable) lets auto go on to the next; when
none is there or all fail, one line says what was looked for and how to get
it. `pyocd` is used only when asked for. The drive search roots can be set
with ENTROPI_TINY_MOUNT_ROOTS (colon-separated), which the tests use.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

FLASH_BASE = 0x0800_0000
VOLUME_NAME = "NODE_F746ZG"
MOUNT_ROOTS = ("/media", "/run/media", "/mnt")
PROBES = ("auto", "drive", "st-flash", "openocd", "pyocd")
AUTO_ORDER = ("drive", "st-flash", "openocd")
INSTALL_HINT = ("plug the Nucleo-F746ZG in (its ST-LINK drive NODE_F746ZG mounts under /media), "
                "or install a probe tool: `sudo apt-get install stlink-tools` (st-flash) or "
                "`sudo apt-get install openocd`")
TOOL_TIMEOUT_S = 120


@dataclass(frozen=True)
class Attempt:
    probe: str
    found: bool
    ok: bool = False
    detail: str = ""
    command: tuple[str, ...] = ()


def mount_roots() -> list[Path]:
    env = os.environ.get("ENTROPI_TINY_MOUNT_ROOTS")
    return [Path(p) for p in (env.split(":") if env else MOUNT_ROOTS) if p]


def find_drive() -> Path | None:
    """A mounted NODE_F746ZG volume: ROOT/NODE_F746ZG or ROOT/<user>/NODE_F746ZG."""
    for root in mount_roots():
        for cand in (root / VOLUME_NAME, *sorted(root.glob(f"*/{VOLUME_NAME}"))):
            if cand.is_dir() and os.access(cand, os.W_OK):
                return cand
    return None


def _drive(image: Path, wait_s: float) -> Attempt:
    """Copy onto the ST-LINK drive; it flashes, resets, and reports failure in FAIL.TXT."""
    drive = find_drive()
    if drive is None:
        return Attempt("drive", False)
    target = drive / image.name
    data = image.read_bytes()
    try:
        with open(target, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return Attempt("drive", True, False, f"copying to {drive} failed: {e.strerror or e}")
    deadline = time.monotonic() + wait_s
    while True:
        fail = drive / "FAIL.TXT"
        if fail.is_file():
            lines = fail.read_text(errors="replace").strip().splitlines() or ["a failure"]
            return Attempt("drive", True, False, f"the ST-LINK wrote {fail}: {lines[0][:200]}")
        if not target.exists() or time.monotonic() >= deadline:
            break   # programmed (the ST-LINK drops the file and remounts), or waited enough
        time.sleep(0.1)
    return Attempt("drive", True, True, f"copied {len(data):,} B to {drive}; the ST-LINK "
                                        "programs the flash and resets the board",
                   ("cp", str(image), str(target)))


def tool_command(probe: str, tool: str, image: Path) -> list[str]:
    base = f"0x{FLASH_BASE:08x}"
    if probe == "st-flash":          # write, read back and compare, then reset
        return [tool, "--reset", "write", str(image), base]
    if probe == "openocd":
        return [tool, "-f", "board/st_nucleo_f7.cfg", "-c",
                f"program {image} {base} verify reset exit"]
    if probe == "pyocd":
        return [tool, "flash", "--target", "stm32f746zgtx", "--base-address", base,
                "--format", "bin", str(image)]
    raise ValueError(probe)


def _tool(probe: str, image: Path) -> Attempt:
    tool = shutil.which(probe)
    if tool is None:
        return Attempt(probe, False)
    cmd = tool_command(probe, tool, image)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Attempt(probe, True, False, f"{probe} did not finish in {TOOL_TIMEOUT_S} s",
                       tuple(cmd))
    if r.returncode != 0:
        lines = (r.stderr.strip() or r.stdout.strip() or f"exit {r.returncode}").splitlines()
        return Attempt(probe, True, False, f"{probe} failed: {lines[-1][:200]}", tuple(cmd))
    return Attempt(probe, True, True, f"{probe}: written, verified and reset", tuple(cmd))


def flash_image(image: Path, probe: str = "auto", drive_wait_s: float = 10.0) -> dict:
    if probe not in PROBES:
        raise UserError(f"unknown probe '{probe}'; choose one of {', '.join(PROBES)}")
    if not image.is_file():
        raise UserError(f"{image} is missing: run `entropi-tiny build` for this board first")
    attempts = []
    for name in AUTO_ORDER if probe == "auto" else (probe,):
        a = _drive(image, drive_wait_s) if name == "drive" else _tool(name, image)
        attempts.append(a)
        if a.ok:
            data = image.read_bytes()
            return {"probe": a.probe, "image": str(image), "bytes": len(data),
                    "crc32": f"{zlib.crc32(data):08x}", "command": list(a.command),
                    "detail": a.detail, "verified": True, "reset": True,
                    "tried": [t.probe for t in attempts]}
    found = [a for a in attempts if a.found]
    if not found:
        looked = {"drive": f"a mounted {VOLUME_NAME} volume under "
                           f"{', '.join(map(str, mount_roots()))}",
                  "st-flash": "st-flash on PATH", "openocd": "openocd on PATH",
                  "pyocd": "pyocd on PATH"}
        raise UserError(f"no probe found (looked for {'; '.join(looked[a.probe] for a in attempts)}"
                        f"): {INSTALL_HINT}")
    raise UserError("flashing failed: " + "; ".join(a.detail for a in found))
