"""The build stage: flash-ready firmware for a board and its QEMU twin.

Usage:
    summary = run_build(Run(cfg, paths), "nucleo-f746")
    summary["boards"]["nucleo-f746"]["flash_used"]

Runs whichever earlier stages are not fresh (prune only when no level
exists; select, export and codegen whenever their key changed), then
compiles the generated C with the firmware for the board and for its twin,
each in two variants: embedded samples only, and embedded samples followed
by samples streamed over the UART (`stream/`). The key: every generated
file (sha256), the board, the stack size and the firmware's own sources;
build.json is written last and vouches for every image file, so `emulate`
never runs an ELF that the recorded build did not make.
"""
from __future__ import annotations

from pathlib import Path

from .. import atomic
from ..boards import FIRMWARE_DIR, PLATFORM_SOURCES, get_board
from .codegen import codegen_state, run_codegen
from .contract import Run, State, check, commit, require_fields
from .prune import ensure_levels

NAME = "build"
BUILD_FORMAT = "entropi-tiny/build-v1"
APP_MAIN = FIRMWARE_DIR / "apps" / "entropi" / "main.c"
# Waiting this many counter units for the next UART byte ends the stream (twin:
# instructions, i.e. 0.2 s of emulated time; board: cycles, 0.9 s at 216 MHz).
STREAM_TIMEOUT = 200_000_000
SIZES = {k: int for k in ("flash_used", "flash_budget", "ram_static", "stack_bytes", "ram_budget")}
SPEC = {"board": str, "twin": (str, type(None)), "boards": dict, "head_spec": dict, "arch": str,
        "level": (int, type(None)), "alpha": (int, float, type(None)),
        "width": (int, float, type(None))}
IMAGE_FILES = ("firmware.elf", "firmware.bin", "firmware.hex", "firmware.map", "size.json")


def firmware_sources() -> list[Path]:
    """The portable runtime, kernels and head: every firmware/src file that is
    not board platform code (the board adds that itself)."""
    platform = {FIRMWARE_DIR / s for s in PLATFORM_SOURCES}
    return sorted(p for p in (FIRMWARE_DIR / "src").glob("*.c") if p not in platform)


def sources_digest() -> str:
    files = [APP_MAIN, *sorted((FIRMWARE_DIR / "src").glob("*")),
             *sorted((FIRMWARE_DIR / "include").glob("*")),
             *sorted((FIRMWARE_DIR / "boards").rglob("*.*"))]
    return atomic.sha256_bytes(b"".join(p.name.encode() + p.read_bytes() for p in files
                                        if p.is_file()))


def inputs(run: Run, codegen: dict, board: str) -> dict:
    files = {f"file:{name}": sha for name, sha in codegen["stage"]["outputs"].items()}
    return {**files, "board": board, **run.settings("firmware.stack_bytes"),
            "firmware sources": sources_digest()}


def build_state(run: Run, board: str | None = None) -> State:
    if board is None:
        saved = atomic.read_json_object(run.paths.build_json) if run.paths.build_json.is_file() else {}
        board = saved.get("board") if isinstance(saved.get("board"), str) else "nucleo-f746"
    up = codegen_state(run)
    if up.status != "fresh":
        return State(NAME, "stale" if run.paths.build_json.is_file() else "missing",
                     f"codegen is {up.status}: {up.reason}")
    state = check(run, NAME, run.paths.build_json, inputs(run, up.manifest, board), SPEC)
    if state.status == "fresh":
        for name, sizes in state.manifest["boards"].items():
            require_fields(sizes, run.paths.build_json, SIZES, f"boards.{name}")
    return state


def _images(board_name: str) -> list[tuple]:
    board = get_board(board_name)
    stream = {"ET_APP_STREAM": None, "ET_APP_STREAM_TIMEOUT": STREAM_TIMEOUT}
    return [(b, variant, defines)
            for b in [board] + ([get_board(board.twin)] if board.twin else [])
            for variant, defines in (("", {}), ("stream", stream))]


def _image_dir(run: Run, board_name: str, variant: str) -> Path:
    out = run.paths.board_dir(board_name)
    return out / variant if variant else out


def compile_all(run: Run, board_name: str) -> dict:
    from tqdm import tqdm

    from ..toolchain.build import compile_firmware
    from ..toolchain.checks import check_no_double_precision

    gen = run.paths.generated_dir
    sources = [APP_MAIN, *firmware_sources(), *sorted(gen.glob("*.c"))]
    includes = [FIRMWARE_DIR / "src", gen]
    results = {}
    for b, variant, defines in tqdm(_images(board_name), desc="compile", unit="image",
                                    disable=run.quiet):
        out = _image_dir(run, b.name, variant)
        r = compile_firmware(b, sources, includes, out, defines, run.cfg.firmware.stack_bytes)
        check_no_double_precision(r.elf)
        results[b.name + (f"/{variant}" if variant else "")] = atomic.read_json(r.size_report)
    return results


def run_build(run: Run, board_name: str = "nucleo-f746") -> dict:
    get_board(board_name)                       # an unknown board fails before any work
    if not run.cfg.export.tflite:
        ensure_levels(run)
    codegen = run_codegen(run, board=board_name)
    export = atomic.read_json_object(run.paths.export_json)
    inp = inputs(run, codegen, board_name)
    state = check(run, NAME, run.paths.build_json, inp, SPEC)
    if state.status == "fresh":
        return state.manifest
    run.begin_writes()
    boards = compile_all(run, board_name)
    summary = {"format": BUILD_FORMAT, "board": board_name,
               "twin": get_board(board_name).twin, "level": export["level"],
               "alpha": export["alpha"], "arch": export["arch"], "width": export["width"],
               "arena_bytes": codegen["model"]["arena_size"],
               "tflm_arena_bytes": export["tflm_arena_bytes"],
               "head_memory": codegen["head"]["memory"], "head_spec": codegen["head_spec"],
               "inference_only": bool(codegen.get("inference_only")),
               "samples": {"train": codegen["samples"]["train"],
                           "test": codegen["samples"]["test"]},
               "boards": boards}
    outputs = [_image_dir(run, b.name, variant) / name
               for b, variant, _ in _images(board_name) for name in IMAGE_FILES]
    return commit(run, NAME, run.paths.build_json, inp, outputs, summary)
