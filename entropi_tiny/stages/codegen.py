"""The codegen stage: C sources for the exported model, the head and the embedded samples.

Usage:
    generated = run_codegen(Run(cfg, paths))     # firmware/generated/ + codegen.json

Reads the export's .tflite and weight image (only when export.json vouches
for them), picks balanced target samples, quantizes them to the model's int8
input and records TFLM's features of each (samples.npz, the host reference
that `emulate` checks the device against). The key: the two model files'
sha256s, the target images, the firmware head settings and the generators'
own sources; codegen.json is written last with the hash of every file.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .. import atomic
from .contract import Run, State, check, commit, upstream
from .export import export_state, run_export

NAME = "codegen"
SETTINGS = ("firmware.train_per_class", "firmware.test_per_class", "firmware.epochs",
            "firmware.lr", "firmware.lr_decay", "firmware.momentum", "firmware.weight_decay",
            "firmware.batch_size", "firmware.seed", "firmware.stack_bytes",
            "firmware.head_weight_bits", "firmware.head_momentum_bits", "firmware.head_rounding")
SPEC = {"model": {"arena_size": int}, "head": {"memory": dict}, "head_spec": dict,
        "samples": {"train": int, "test": int}}
CODEGEN_DIR = Path(__file__).resolve().parents[1] / "codegen"


def generators_digest() -> str:
    files = sorted(p for p in CODEGEN_DIR.rglob("*") if p.is_file() and p.suffix in (".py", ".j2"))
    return atomic.sha256_bytes(b"".join(p.name.encode() + p.read_bytes() for p in files))


def inputs(run: Run, export: dict, board: str = "nucleo-f746") -> dict:
    p = run.paths
    outs = export["stage"]["outputs"]
    return {f"file:{p.rel(p.tflite)}": outs[p.rel(p.tflite)],
            f"file:{p.rel(p.sparse_image)}": outs[p.rel(p.sparse_image)],
            **run.target_inputs(), **run.settings(*SETTINGS),
            "codegen sources": generators_digest(), "board (head budget)": board}


def codegen_state(run: Run) -> State:
    up = export_state(run)
    if up.status != "fresh":
        return State(NAME, "stale" if run.paths.codegen_json.is_file() else "missing",
                     f"export is {up.status}: {up.reason}")
    return check(run, NAME, run.paths.codegen_json, inputs(run, up.manifest), SPEC)


def run_codegen(run: Run, run_upstream: bool = True, board: str = "nucleo-f746") -> dict:
    """The head is sized for `board`'s RAM (codegen/head_budget.py), so the board is an input."""
    export = run_export(run) if run_upstream else upstream(export_state(run), "export")
    inp = inputs(run, export, board)
    state = check(run, NAME, run.paths.codegen_json, inp, SPEC)
    if state.status == "fresh":
        return state.manifest
    run.begin_writes()
    generated = generate_sources(run, board)
    gen = run.paths.generated_dir
    outputs = sorted(p for p in gen.iterdir() if p.suffix in (".c", ".h")) + [run.paths.samples_npz]
    return commit(run, NAME, run.paths.codegen_json, inp, outputs, generated)


def prepare_samples(run: Run) -> dict:
    """Balanced target samples as the model's int8 input, with TFLM's features."""
    from ..codegen.samples import pick_balanced
    from ..data import normalize
    from ..export.tflite_ops import io_quant, parse_tflite
    from ..export.tflm import quantize_images, run_tflm

    cfg, paths = run.cfg, run.paths
    model = parse_tflite(paths.tflite)
    if not run.has_target:
        return _fixed_samples(run, model)
    target = run.target()
    out = {"num_classes": target.num_classes, "inference_only": False}
    for split, per_class in (("train", cfg.firmware.train_per_class),
                             ("test", cfg.firmware.test_per_class)):
        part = getattr(target, split)
        idx = pick_balanced(part.labels.numpy(), per_class)
        q = quantize_images(normalize(part.images[idx]).numpy(), model)
        out[f"{split}_q"] = q
        out[f"{split}_y"] = part.labels.numpy()[idx].astype(np.uint8)
        out[f"{split}_features"] = run_tflm(paths.tflite, q).reshape(len(q), -1)
    quant = io_quant(model)["output"]
    out["feature_scale"], out["feature_zero_point"] = float(quant["scale"]), int(quant["zero_point"])
    return out


def _fixed_samples(run: Run, model) -> dict:
    """No target data: seeded int8 inputs in the model's input shape, all labelled 0,
    with TFLM's features; the firmware then runs inference only (a head of two
    classes is still generated, so the same sources compile)."""
    from ..codegen.samples import fixed_inputs
    from ..export.tflite_ops import io_quant
    from ..export.tflm import run_tflm

    f, paths = run.cfg.firmware, run.paths
    shape = tuple(io_quant(model)["input"]["shape"][1:])
    out = {"num_classes": 2, "inference_only": True}
    for split, count, seed in (("train", f.train_per_class, f.seed),
                               ("test", f.test_per_class, f.seed + 1)):
        q = fixed_inputs(shape, count, seed)
        out[f"{split}_q"] = q
        out[f"{split}_y"] = np.zeros(count, np.uint8)
        out[f"{split}_features"] = run_tflm(paths.tflite, q).reshape(count, -1)
    quant = io_quant(model)["output"]
    out["feature_scale"], out["feature_zero_point"] = float(quant["scale"]), int(quant["zero_point"])
    return out


def head_spec(run: Run, samples: dict):
    from ..codegen.head import HeadSpec

    f = run.cfg.firmware
    return HeadSpec(feature_dim=samples["train_features"].shape[1],
                    num_classes=samples["num_classes"], num_samples=len(samples["train_q"]),
                    feature_scale=samples["feature_scale"],
                    feature_zero_point=samples["feature_zero_point"], lr=f.lr,
                    momentum=f.momentum, weight_decay=f.weight_decay, lr_decay=f.lr_decay,
                    batch_size=f.batch_size, epochs=f.epochs, cache=True, shuffle=True,
                    seed=f.seed, **_explicit_storage(f))


def _explicit_storage(f) -> dict:
    """The head storage the user fixed (firmware.head_*_bits), or nothing: automatic."""
    if f.head_weight_bits == 0:
        return {}
    stochastic = 16 in (f.head_weight_bits, f.head_momentum_bits) and f.head_rounding == "stochastic"
    return {"weight_bits": f.head_weight_bits, "momentum_bits": f.head_momentum_bits,
            "rounding": "stochastic" if stochastic else "nearest"}


def head_spec_to_dict(spec) -> dict:
    from dataclasses import fields

    return {f.name: getattr(spec, f.name) for f in fields(spec)
            if f.name not in ("init_weight", "init_bias")}


def head_spec_from_dict(d: dict):
    from ..codegen.head import HeadSpec

    return HeadSpec(**d)


def generate_sources(run: Run, board: str = "nucleo-f746") -> dict:
    """Model tables + schedule + arena plan, head config, embedded samples."""
    from ..boards import get_board
    from ..codegen.head import generate_head_sources
    from ..codegen.head_budget import REST_BYTES, choose_head
    from ..codegen.model import generate_model_sources
    from ..codegen.samples import generate_sample_sources

    paths = run.paths
    gen = paths.generated_dir
    sha = atomic.sha256_file(paths.tflite)
    samples = prepare_samples(run)
    # The device weights come from the .etsw (one source of truth), checked tensor by
    # tensor against the .tflite it was encoded from.
    model = generate_model_sources(paths.tflite, paths.sparse_image, gen, name="et_model")
    spec = head_spec(run, samples)
    # The richest head storage that fits the board beside the arena (one line naming the
    # part that does not fit otherwise).
    plan = choose_head(spec, get_board(board).ram_bytes, model["arena_size"],
                       len(samples["test_q"]), run.cfg.firmware.stack_bytes + REST_BYTES,
                       explicit=run.cfg.firmware.head_weight_bits != 0)
    plan.check(board)
    spec = plan.spec
    head = generate_head_sources(gen, spec)
    embedded = generate_sample_sources(gen, samples["train_q"], samples["train_y"],
                                       samples["test_q"], samples["test_y"], sha,
                                       inference_only=samples["inference_only"])
    atomic.write_bytes(paths.samples_npz, _npz(samples))
    return {"model_sha256": sha, "model": model, "head": head, "samples": embedded,
            "inference_only": samples["inference_only"],
            "head_spec": head_spec_to_dict(spec)}


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()
