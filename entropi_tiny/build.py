"""The build stage: everything a board needs, from the run folder to a flashable image.

Usage:
    summary = run_build(cfg, RunPaths(Path("export/default")), "nucleo-f746")
    summary["boards"]["nucleo-f746"]["flash_used"]

Runs whichever earlier stages are missing (prune, select, export; each skips
itself when done), then generates C (the model's weight image, op schedule
and arena plan; the head's configuration; the embedded target samples) and
compiles the firmware for the board and for its QEMU twin, each in two
variants: embedded samples only, and embedded samples followed by samples
streamed over the UART (`stream/`). The build is skipped when build.json
records the same model, settings and sources.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from . import atomic, data
from .boards import FIRMWARE_DIR, PLATFORM_SOURCES, get_board
from .config import Config
from .paths import RunPaths

BUILD_FORMAT = "entropi-tiny/build-v1"
APP_MAIN = FIRMWARE_DIR / "apps" / "entropi" / "main.c"
# Waiting this many counter units for the next UART byte ends the stream (twin:
# instructions, i.e. 0.2 s of emulated time; board: cycles, 0.9 s at 216 MHz).
STREAM_TIMEOUT = 200_000_000


def firmware_sources() -> list[Path]:
    """The portable runtime, kernels and head: every firmware/src file that is
    not board platform code (the board adds that itself)."""
    platform = {FIRMWARE_DIR / s for s in PLATFORM_SOURCES}
    return sorted(p for p in (FIRMWARE_DIR / "src").glob("*.c") if p not in platform)


def _digest(paths: list[Path], extra: dict) -> str:
    h = hashlib.sha256(repr(sorted(extra.items())).encode())
    for p in paths:
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def ensure_export(cfg: Config, paths: RunPaths, quiet: bool) -> dict:
    """prune -> select -> export, each skipping itself when its outputs exist."""
    from .pipeline import run_export
    from .pruning.imp import run_imp

    if not paths.existing_levels() or not paths.prune_summary.is_file():
        run_imp(cfg, paths, quiet=quiet)
    return run_export(cfg, paths, quiet=quiet)


def prepare_samples(cfg: Config, paths: RunPaths) -> dict:
    """Balanced target samples as the model's int8 input, with TFLM's features."""
    from .codegen.samples import pick_balanced
    from .export.tflite_ops import io_quant, parse_tflite
    from .export.tflm import quantize_images, run_tflm

    target = data.load_task(cfg.data.target, "target", cfg.data)
    model = parse_tflite(paths.tflite)
    out = {"num_classes": target.num_classes}
    for split, per_class in (("train", cfg.firmware.train_per_class),
                             ("test", cfg.firmware.test_per_class)):
        part = getattr(target, split)
        idx = pick_balanced(part.labels.numpy(), per_class)
        q = quantize_images(data.normalize(part.images[idx]).numpy(), model)
        out[f"{split}_q"] = q
        out[f"{split}_y"] = part.labels.numpy()[idx].astype(np.uint8)
        out[f"{split}_features"] = run_tflm(paths.tflite, q).reshape(len(q), -1)
    quant = io_quant(model)["output"]
    out["feature_scale"], out["feature_zero_point"] = float(quant["scale"]), int(quant["zero_point"])
    return out


def head_spec(cfg: Config, samples: dict):
    from .codegen.head import HeadSpec

    f = cfg.firmware
    return HeadSpec(feature_dim=samples["train_features"].shape[1],
                    num_classes=samples["num_classes"], num_samples=len(samples["train_q"]),
                    feature_scale=samples["feature_scale"],
                    feature_zero_point=samples["feature_zero_point"], lr=f.lr,
                    momentum=f.momentum, weight_decay=f.weight_decay, lr_decay=f.lr_decay,
                    batch_size=f.batch_size, epochs=f.epochs, cache=True, shuffle=True,
                    seed=f.seed)


def head_spec_to_dict(spec) -> dict:
    from dataclasses import fields

    return {f.name: getattr(spec, f.name) for f in fields(spec)
            if f.name not in ("init_weight", "init_bias")}


def head_spec_from_dict(d: dict):
    from .codegen.head import HeadSpec

    return HeadSpec(**d)


def generate_sources(cfg: Config, paths: RunPaths, board_name: str = "nucleo-f746") -> dict:
    """Model tables + schedule + arena plan, head config, embedded samples."""
    from .codegen.model import generate_model_sources
    from .codegen.head import generate_head_sources
    from .codegen.samples import generate_sample_sources

    gen = paths.generated_dir
    sha = hashlib.sha256(paths.tflite.read_bytes()).hexdigest()
    samples = prepare_samples(cfg, paths)
    model = generate_model_sources(paths.tflite, gen, name="et_model")
    spec = head_spec(cfg, samples)
    from .codegen.head_budget import REST_BYTES, choose_head   # s13-head: budget-aware head
    plan = choose_head(spec, get_board(board_name).ram_bytes, model["arena_size"],
                       len(samples["test_q"]), cfg.firmware.stack_bytes + REST_BYTES)
    plan.check(board_name)
    spec = plan.spec
    head = generate_head_sources(gen, spec)
    embedded = generate_sample_sources(gen, samples["train_q"], samples["train_y"],
                                       samples["test_q"], samples["test_y"], sha)
    buf = _npz(samples)
    atomic.write_bytes(paths.samples_npz, buf)
    return {"model_sha256": sha, "model": model, "head": head, "samples": embedded,
            "head_spec": head_spec_to_dict(spec)}


def _npz(arrays: dict) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def compile_all(cfg: Config, paths: RunPaths, board_name: str, quiet: bool = False) -> dict:
    from tqdm import tqdm

    from .toolchain.build import compile_firmware
    from .toolchain.checks import check_no_double_precision

    board = get_board(board_name)
    gen = paths.generated_dir
    sources = [APP_MAIN, *firmware_sources(), *sorted(gen.glob("*.c"))]
    includes = [FIRMWARE_DIR / "src", gen]
    stream = {"ET_APP_STREAM": None, "ET_APP_STREAM_TIMEOUT": STREAM_TIMEOUT}
    images = [(b, variant, defines)
              for b in [board] + ([get_board(board.twin)] if board.twin else [])
              for variant, defines in (("", {}), ("stream", stream))]
    results = {}
    for b, variant, defines in tqdm(images, desc="compile", unit="image", disable=quiet):
        out = paths.board_dir(b.name) / variant if variant else paths.board_dir(b.name)
        r = compile_firmware(b, sources, includes, out, defines, cfg.firmware.stack_bytes)
        check_no_double_precision(r.elf)
        results[b.name + (f"/{variant}" if variant else "")] = atomic.read_json(r.size_report)
    return results


def run_build(cfg: Config, paths: RunPaths, board_name: str = "nucleo-f746",
              quiet: bool = False) -> dict:
    get_board(board_name)                       # an unknown board fails before any work
    export = ensure_export(cfg, paths, quiet)
    key = {"tflite_sha256": hashlib.sha256(paths.tflite.read_bytes()).hexdigest(),
           "board": board_name, "firmware": cfg.to_dict()["firmware"],
           "target": cfg.data.target,
           "sources": _digest([APP_MAIN, *sorted((FIRMWARE_DIR / "src").glob("*")),
                               *sorted((FIRMWARE_DIR / "include").glob("*")),
                               *sorted((FIRMWARE_DIR / "boards").rglob("*.*"))], {})}
    if paths.build_json.is_file():
        done = atomic.read_json(paths.build_json)
        if done.get("key") == key and all(Path(b["elf"]).is_file() for b in done["boards"].values()):
            return done
    generated = generate_sources(cfg, paths, board_name)
    boards = compile_all(cfg, paths, board_name, quiet)
    summary = {"format": BUILD_FORMAT, "key": key, "board": board_name,
               "twin": get_board(board_name).twin, "level": export["level"],
               "alpha": export["alpha"], "arch": export["arch"], "width": export["width"],
               "arena_bytes": generated["model"]["arena_size"],
               "tflm_arena_bytes": export["tflm_arena_bytes"],
               "head_memory": generated["head"]["memory"], "head_spec": generated["head_spec"],
               "samples": {"train": generated["samples"]["train"],
                           "test": generated["samples"]["test"]},
               "boards": boards}
    atomic.write_json(paths.build_json, summary)
    return summary
