"""The frame parser's coverage-guided fuzzer: the one place that builds, seeds and runs it.

Usage:
    python -m entropi_tiny.toolchain.frames_fuzz --out build/fuzz-frames --seconds 60
    exe = build_fuzzer(Path("build/fuzz-frames"))              # clang + libFuzzer + ASan/UBSan
    write_seed_corpus(Path("build/fuzz-frames/corpus"))
    run_fuzzer(exe, corpus, seconds=60)                        # CompletedProcess; rc 0 = no crash
    replay = build_fuzzer(out, mode="replay")                  # gcc, no libFuzzer: runs files
    driver = build_fuzzer(out, mode="driver")                  # the stdin driver of the tests

The target is LLVMFuzzerTestOneInput in firmware/tests/et_frames_fuzz.c
(-DET_FRAMES_LIBFUZZER): it builds frames from the input with correct CRCs
and mutates them behind the CRC (fixing it up again), so the fuzzer gets
past the checksums to the parser's bounds checks; its input format is
described there. The seeds are real frames from toolchain/frames.py: one of
every request and reply type of protocol version 2, at the firmware's sizes,
wrapped in the target's raw-bytes records, plus built-frame records.
"""
from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
from pathlib import Path

from ..boards import FIRMWARE_DIR
from ..errors import UserError
from . import frames as F

TARGET = FIRMWARE_DIR / "tests" / "et_frames_fuzz.c"
SOURCES = (FIRMWARE_DIR / "src" / "et_frames.c", FIRMWARE_DIR / "src" / "et_crc32.c", TARGET)
CFLAGS = ("-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-fno-sanitize-recover=all")
CLANGS = ("clang", "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14")


def find_clang() -> str:
    for name in CLANGS:
        if shutil.which(name):
            return name
    raise UserError("clang not found: the libFuzzer target needs it (`sudo apt-get install "
                    "clang`); build with mode='replay' to run a corpus with gcc instead")


MODES = {  # mode -> (compiler, sanitizers, define, executable name)
    "driver": ("gcc", "address,undefined", None, "et_frames_driver"),        # stdin commands
    "replay": ("gcc", "address,undefined", "ET_FRAMES_REPLAY", "et_frames_replay"),
    "libfuzzer": (None, "fuzzer,address,undefined", "ET_FRAMES_LIBFUZZER", "et_frames_fuzzer"),
}


def build_command(exe: Path, mode: str = "libfuzzer") -> list[str]:
    """The compiler command for one of MODES: the stdin driver of tests/test_board_frames.py,
    the corpus replayer (gcc only) or the libFuzzer target (clang)."""
    compiler, sanitizers, define, _ = MODES[mode]
    return [compiler or find_clang(), *CFLAGS, f"-fsanitize={sanitizers}",
            *([f"-D{define}"] if define else []), f"-I{FIRMWARE_DIR / 'include'}",
            *map(str, SOURCES), "-o", str(exe)]


def build_fuzzer(out: Path, mode: str = "libfuzzer") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    exe = out / MODES[mode][3]
    r = subprocess.run(build_command(exe, mode), capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"building the frames {mode} failed: "
                        f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return exe


def _raw_records(wire: bytes) -> bytes:
    """Wire bytes as the target's raw records (op 1, n <= 255, the bytes)."""
    out = bytearray()
    for i in range(0, len(wire), 255):
        part = wire[i:i + 255]
        out += bytes([1, len(part)]) + part
    return bytes(out)


def _built_record(ftype: int, seq: int, payload: bytes, flags: int = 0) -> bytes:
    return bytes([0, ftype, seq]) + struct.pack("<HB", len(payload), flags) + payload


def seed_inputs(sample_bytes: int = 3072, classes: int = 5) -> dict[str, bytes]:
    """name -> fuzz input, from real frames of protocol version 2."""
    from ..device import protocol as P

    cap = struct.pack("<H", 1 + sample_bytes)      # the firmware's buffer: label + image
    image = bytes(range(256)) * (sample_bytes // 256) + bytes(sample_bytes % 256)
    info = struct.pack(P.INFO_FORMAT, F.PROTOCOL_VERSION, b"nucleo-f746", b"cycles", 0x5267128E,
                       248784, sample_bytes, 64, classes, 30, 20, 20480, 3040, 8192, 760,
                       1 << 20, 320 << 10, 0, 1, 50, 2_429_422_440, 917_720, 120)
    wires = {
        "sample": F.encode(F.SAMPLE, 0, bytes([1]) + image),
        "predict": F.encode(F.PREDICT, 1, image),
        "requests": b"".join(F.encode(t, i, b"") for i, t in
                             enumerate((F.INFO, F.EVAL, F.RESET_HEAD, F.PING, F.END))),
        "replies": b"".join(F.encode(F.ACK, i, bytes([F.OK]) + body) for i, body in enumerate((
            info, struct.pack(P.SAMPLE_FORMAT, 1.25, 3, 48_590_080, 7_120),
            struct.pack(P.EVAL_FORMAT, 7, 20, 51_040),
            bytes([2]) + struct.pack(f"<{classes}f", *range(classes)) + struct.pack("<QQ", 1, 2)))),
        "statuses": b"".join(F.encode(F.ACK, s, bytes([s])) for s in range(8)),
        "noise_then_frame": b"ET_BOOT board=nucleo-f746\n\xeb\x00" + F.encode(F.PING, 9, b"hi"),
    }
    seeds = {name: cap + _raw_records(w) for name, w in wires.items()}
    seeds["built"] = cap + _built_record(F.SAMPLE, 4, bytes([0]) + image[:64], 0) + \
        _built_record(F.INFO, 5, b"", 16) + bytes([2])
    seeds["lying_length"] = cap + _built_record(F.SAMPLE, 6, image[:32], 1) + b"\xff\x7f"
    return seeds


def write_seed_corpus(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in seed_inputs().items():
        p = folder / f"seed_{name}"
        p.write_bytes(data)
        paths.append(p)
    return paths


def run_fuzzer(exe: Path, corpus: Path, seconds: int = 60, extra: tuple[str, ...] = ()):
    """libFuzzer for `seconds` over `corpus` (which it extends); rc != 0 means a crash, whose
    input libFuzzer writes as crash-* in the working folder (exe's folder)."""
    cmd = [str(exe), f"-max_total_time={seconds}", "-max_len=8192", *extra, str(corpus)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=exe.parent)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("build/fuzz-frames"))
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args(argv)
    try:
        exe = build_fuzzer(args.out)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    corpus = args.out / "corpus"
    write_seed_corpus(corpus)
    r = run_fuzzer(exe, corpus, args.seconds)
    tail = (r.stderr.strip().splitlines() or [""])[-1]
    print(f"frames fuzzer: exit {r.returncode} after {args.seconds} s: {tail}")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
