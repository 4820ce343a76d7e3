"""Pipeline stages after pruning: select, transfer, report, profile.

Usage:
    table = run_select(cfg, paths)                 # entropy.json
    result = run_transfer(cfg, paths, all_levels=False)   # transfer.json
    write_report(paths)                            # report.md, report.json, PNG

Each stage reads the files of the stages before it and writes its own in the
run folder. Results are stored per level as soon as they exist and reused
when the inputs that produced them (target data, M, head recipe) are the
same, so a stopped stage resumes where it was and a rerun costs nothing.
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from . import atomic, data
from .config import Config
from .errors import UserError
from .models import split_model
from .paths import RunPaths
from .pruning.checkpoint import load_level
from .selection.entropy import encoder_entropy, select_level
from .transfer import level_features, summarize, train_head
from .transfer_extras import run_transfer_extras

ENTROPY_FORMAT = "entropi-tiny/entropy-v1"
TRANSFER_FORMAT = "entropi-tiny/transfer-v1"


def _levels(paths: RunPaths) -> list[int]:
    levels = paths.existing_levels()
    if not levels:
        raise UserError(f"run folder {paths.root} has no level checkpoints; "
                        "run `entropi-tiny prune` first")
    return levels


def _target(cfg: Config) -> data.Task:
    target = data.load_task(cfg.data.target, "target", cfg.data)
    if len(target.train) == 0:
        raise UserError("the target training set is empty")
    return target


def _load_rows(path, fmt: str, key: dict) -> dict[int, dict]:
    """Per-level rows of an earlier run of a stage, if made from the same inputs."""
    if not path.is_file():
        return {}
    saved = atomic.read_json(path)
    if saved.get("format") != fmt or saved.get("key") != key:
        return {}
    return {int(r["level"]): r for r in saved.get("rows", [])}


# -- select ------------------------------------------------------------------

def run_select(cfg: Config, paths: RunPaths, quiet: bool = False) -> dict:
    """Entropy (eq. 6) and its per-neuron bound (eq. 8) of every level's encoder
    output on the target training set, and the max-entropy level."""
    levels = _levels(paths)
    target = _target(cfg)
    key = {"target": target.name, "n_train": len(target.train), "levels_m": cfg.select.levels_m,
           "subset_k": cfg.select.subset_k, "subset_draws": cfg.select.subset_draws}
    done = _load_rows(paths.entropy_json, ENTROPY_FORMAT, key)
    rows = []
    for level in tqdm(levels, desc="entropy", unit="level", disable=quiet):
        if level not in done:
            model, _, meta = load_level(paths.level_checkpoint(level))
            encoder, _ = split_model(model)
            result = encoder_entropy(encoder, target.train.images, cfg.select.batch_size,
                                     cfg.select.levels_m, normalize=data.normalize,
                                     subset_k=cfg.select.subset_k,
                                     subset_draws=cfg.select.subset_draws)
            done[level] = {"level": level, "alpha_target": meta["alpha_target"],
                           "alpha": meta["alpha_actual"], **result.to_dict()}
            _write_entropy(paths, key, [done[k] for k in sorted(done)], cfg, None)
        rows.append(done[level])
    chosen = select_level(rows, cfg.select.criterion)
    return _write_entropy(paths, key, rows, cfg, chosen)


def _write_entropy(paths, key, rows, cfg, chosen) -> dict:
    table = {"format": ENTROPY_FORMAT, "key": key, "log_base": 2, "unit": "bits",
             "levels_m": cfg.select.levels_m, "criterion": cfg.select.criterion,
             "selected_level": chosen, "rows": rows}
    if chosen is not None:
        table["selected_alpha"] = next(r["alpha"] for r in rows if r["level"] == chosen)
    atomic.write_json(paths.entropy_json, table)
    return table


def selected_level(cfg: Config, paths: RunPaths, quiet: bool = False) -> int:
    table = atomic.read_json(paths.entropy_json) if paths.entropy_json.is_file() else {}
    if table.get("selected_level") is None or table.get("criterion") != cfg.select.criterion:
        table = run_select(cfg, paths, quiet)
    return int(table["selected_level"])


# -- transfer ----------------------------------------------------------------

def run_transfer(cfg: Config, paths: RunPaths, all_levels: bool = False,
                 quiet: bool = False) -> dict:
    """Train the linear head (all seeds) on the frozen encoder of the selected
    level and of the dense level, or of every level (the Figure 3 ablation)."""
    levels = _levels(paths)
    chosen = selected_level(cfg, paths, quiet)
    wanted = levels if all_levels else sorted({levels[0], chosen})
    target = _target(cfg)
    key = {"target": target.name, "n_train": len(target.train),
           **{k: v for k, v in cfg.to_dict()["transfer"].items()}}
    done = _load_rows(paths.transfer_json, TRANSFER_FORMAT, key)
    for level in tqdm(wanted, desc="transfer", unit="level", disable=quiet):
        if level in done:
            continue
        feats = level_features(paths, level, target, cfg.select.batch_size)
        runs = [train_head(feats, cfg.transfer, seed) for seed in cfg.transfer.seeds]
        meta = load_level(paths.level_checkpoint(level))[2]
        done[level] = {"level": level, "alpha": meta["alpha_actual"],
                       "feature_dim": int(feats["train"].shape[1]), **summarize(runs)}
        _write_transfer(paths, key, done, chosen, levels[0])
    run_transfer_extras(cfg, paths, target, chosen, wanted, key, quiet)   # controls.json
    return _write_transfer(paths, key, done, chosen, levels[0])


def _write_transfer(paths, key, done, chosen, dense) -> dict:
    result = {"format": TRANSFER_FORMAT, "key": key, "selected_level": chosen,
              "dense_level": dense, "rows": [done[k] for k in sorted(done)]}
    atomic.write_json(paths.transfer_json, result)
    return result


# -- export ------------------------------------------------------------------

def run_export(cfg: Config, paths: RunPaths, level: int | None = None,
               quiet: bool = False, tflite: Path | None = None) -> dict:
    """The chosen level's encoder as ONNX, int8 TFLite (verified in TFLM) and
    sparse weight image. Skipped when export.json says this level is done.
    With `tflite`, an existing int8 model is the source instead of a level."""
    if tflite is not None:
        return _export_from_tflite(paths, Path(tflite))
    levels = _levels(paths)
    level = selected_level(cfg, paths, quiet) if level is None else level
    if level not in levels:
        raise UserError(f"level {level} has no checkpoint in {paths.root} (levels: {levels})")
    if paths.export_json.is_file():
        done = atomic.read_json(paths.export_json)
        if done.get("level") == level and paths.tflite.is_file() and paths.sparse_image.is_file():
            return done
    from .export.pipeline import export_encoder       # loads TensorFlow: only when needed
    from .export.sparse_image import encode_model

    model, _, meta = load_level(paths.level_checkpoint(level))
    encoder, _ = split_model(model)
    target = _target(cfg)
    calib = data.normalize(target.train.images[:cfg.export.calib_images]).numpy()
    check = data.normalize(target.test.images[:cfg.export.check_images]).numpy()
    if not quiet:
        tqdm.write(f"exporting level {level} (alpha {meta['alpha_actual']:.4f}): "
                   f"calibrating on {len(calib)} target images")
    tfl_report = export_encoder(encoder, calib, check, paths.export_dir)
    image, img_report = encode_model(paths.tflite.read_bytes(), label=str(paths.tflite))
    atomic.write_bytes(paths.sparse_image, image)
    summary = {"level": level, "alpha": meta["alpha_actual"], "arch": meta["arch"],
               "width": meta["width"], "files": {
                   "onnx": paths.onnx.name, "tflite": paths.tflite.name,
                   "sparse_image": paths.sparse_image.name},
               "tflite_bytes": paths.tflite.stat().st_size, "sparse_image_bytes": len(image),
               "nonzero_weights": img_report["totals"]["nnz"],
               "bytes_per_nnz": img_report["totals"]["bytes_per_nnz"],
               "tflm_arena_bytes": tfl_report["tflm_arena_bytes"],
               "int8_cosine_mean": tfl_report["int8_cosine_mean"],
               "int8_cosine_min": tfl_report["int8_cosine_min"],
               "tflm_bitexact_litert_ref": tfl_report["tflm_bitexact_litert_ref"],
               "sparse_image": img_report, "tflite_report": tfl_report}
    atomic.write_json(paths.export_json, summary)
    return summary


def _export_from_tflite(paths: RunPaths, tflite: Path) -> dict:
    """Derive the sparse weight image from a user's int8 .tflite (validated first)."""
    from .export.sparse_image import encode_model
    from .export.tflite_ops import check_allowed_ops, parse_tflite

    if not tflite.is_file():
        raise UserError(f"no such .tflite file: {tflite}")
    raw = tflite.read_bytes()
    check_allowed_ops(parse_tflite(tflite))
    image, img_report = encode_model(raw, label=str(tflite))
    atomic.write_bytes(paths.tflite, raw)
    atomic.write_bytes(paths.sparse_image, image)
    summary = {"level": None, "source": str(tflite), "files": {
                   "tflite": paths.tflite.name, "sparse_image": paths.sparse_image.name},
               "tflite_bytes": len(raw), "sparse_image_bytes": len(image),
               "nonzero_weights": img_report["totals"]["nnz"],
               "bytes_per_nnz": img_report["totals"]["bytes_per_nnz"], "sparse_image": img_report}
    atomic.write_json(paths.export_json, summary)
    return summary
