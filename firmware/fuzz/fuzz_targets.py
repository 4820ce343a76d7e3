"""The fuzz targets `make fuzz` and tests/test_fuzz.py run: one line each, in one place.

Usage:
    from fuzz_targets import TARGETS            # run_fuzzers.py builds and runs every entry

A libFuzzer target is a C file defining LLVMFuzzerTestOneInput (and, if it
needs one, a CRC-fixing LLVMFuzzerCustomMutator under ET_FUZZ_LIBFUZZER)
plus the firmware sources it exercises; run_fuzzers.py compiles it with
clang-14 -fsanitize=fuzzer,address,undefined. An atheris target is a
Python file that calls atheris.Setup(sys.argv, ...) and atheris.Fuzz(); it
gets the same libFuzzer flags on its command line. `seeds` names a
function of fuzz_seeds.py that writes the target's seed inputs into a folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
# The host runtime: reader, every kernel file (new encodings' kernels join by name), scheduler.
RUNTIME = ("firmware/src/et_crc32.c", "firmware/src/et_sparse_image.c",
           *(f"firmware/src/{p.name}" for p in sorted(_SRC.glob("et_kernels*.c"))), "firmware/src/et_runtime.c")


@dataclass(frozen=True)
class Target:
    name: str
    sources: tuple[str, ...]          # repository-relative: C files, or one Python file for atheris
    seeds: str                        # seed builder in fuzz_seeds.py: f(folder, tflite=()) -> paths
    kind: str = "libfuzzer"           # "libfuzzer" (C, clang-14) or "atheris" (Python)
    defines: tuple[str, ...] = ()     # -D macros the target needs to expose its entry point


TARGETS = (
    # Weight image reader + runtime init + one invoke, CRC fixed up after each mutation (s16b-fuzz).
    Target("image", ("firmware/fuzz/fuzz_image.c", *RUNTIME), "image_seeds"),
    # UART frame parser (protocol v2): frames built from the input with good CRCs, mutated
    # behind the CRC and fixed up again; seeds are real frames of entropi_tiny/toolchain/frames.py.
    Target("frames", ("firmware/tests/et_frames_fuzz.c", "firmware/src/et_frames.c",
                      "firmware/src/et_crc32.c"), "frame_seeds", defines=("ET_FRAMES_LIBFUZZER",)),
    # The Python .tflite reader (export/tflite_model.py) under atheris, seeded with real models.
    Target("tflite", ("firmware/fuzz/fuzz_tflite.py",), "tflite_seeds", kind="atheris"),
)
