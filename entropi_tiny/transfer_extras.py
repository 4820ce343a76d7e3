"""Beside transfer's heads: the budget-matched dense control and the validation baseline.

Usage:
    extras = run_transfer_extras(cfg, paths, target, chosen, wanted, key)  # controls.json

Called by `transfer` once its level heads are trained (pipeline.run_transfer).
  controls   the dense control of each wanted level k >= 1 it has (pruning/control.py:
             trained here, up to the selected level, when prune.matched_control is
             "selected"), with the same head recipe and seeds as the levels: its
             features are cached in controls/features/ like a level's.
  holdout    per wanted level, a head fitted on the target train features minus a
             held-out share and scored on that share (transfer.holdout_head): the
             "pick by validation" baseline of report.py, from cached features.
Rows are reused when the transfer key (target and head recipe) is unchanged.
"""
from __future__ import annotations

import statistics

from tqdm import tqdm

from . import atomic, data
from .config import Config
from .paths import RunPaths
from .pruning.checkpoint import load_level
from .pruning.control import control_paths, control_up_to, cumulative_epochs, run_controls
from .transfer import holdout_head, level_features, summarize, train_head

EXTRAS_FORMAT = "entropi-tiny/transfer-extras-v1"


def extras_json(paths: RunPaths):
    return paths.root / "controls.json"


def run_transfer_extras(cfg: Config, paths: RunPaths, target: data.Task, chosen: int,
                        wanted: list[int], key: dict, quiet: bool = True) -> dict:
    levels = paths.existing_levels()
    up_to = control_up_to(cfg, chosen, levels[-1])
    run_controls(cfg, paths, up_to, quiet)
    key = {**key, "matched_control": cfg.prune.matched_control}
    saved = _saved(paths, key)
    cpaths = control_paths(paths)
    todo = [k for k in sorted(set(wanted) | {chosen})
            if 1 <= k <= up_to and cpaths.level_checkpoint(k).is_file()]
    controls = {int(r["level"]): r for r in saved.get("controls", [])}
    holdout = {int(r["level"]): r for r in saved.get("holdout", [])}
    for level in tqdm(todo, desc="controls", unit="level", disable=quiet):
        if level not in controls:
            controls[level] = _control_row(cfg, cpaths, level, target)
            _write(paths, key, chosen, controls, holdout)
    for level in wanted:
        if level not in holdout:
            feats = level_features(paths, level, target, cfg.select.batch_size)
            runs = [holdout_head(feats, cfg.transfer, seed) for seed in cfg.transfer.seeds]
            accs = [r["holdout_acc"] for r in runs]
            holdout[level] = {"level": level, "holdout_acc_mean": statistics.fmean(accs),
                              "holdout_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                              "n_holdout": runs[0]["n_holdout"]}
    keep = {k: v for k, v in controls.items() if k in todo}
    if not quiet:
        for r in keep.values():
            tqdm.write(f"dense control of level {r['level']} ({r['cumulative_epochs']} epochs, "
                       f"alpha 1.0000): top-1 {r['test_acc_mean']:.2f} +- {r['test_acc_std']:.2f}")
    return _write(paths, key, chosen, keep, {k: v for k, v in holdout.items() if k in wanted})


def _control_row(cfg: Config, cpaths: RunPaths, level: int, target: data.Task) -> dict:
    feats = level_features(cpaths, level, target, cfg.select.batch_size)
    runs = [train_head(feats, cfg.transfer, seed) for seed in cfg.transfer.seeds]
    meta = load_level(cpaths.level_checkpoint(level))[2]
    return {"level": level, "alpha": meta["alpha_actual"], "control_of_level": level,
            "cumulative_epochs": cumulative_epochs(cfg.prune, level),
            "epochs_total": meta.get("epochs_total"), "source_test_acc": meta["test_acc"],
            "feature_dim": int(feats["train"].shape[1]), **summarize(runs)}


def _saved(paths: RunPaths, key: dict) -> dict:
    path = extras_json(paths)
    if not path.is_file():
        return {}
    saved = atomic.read_json(path)
    return saved if saved.get("format") == EXTRAS_FORMAT and saved.get("key") == key else {}


def _write(paths, key, chosen, controls, holdout) -> dict:
    result = {"format": EXTRAS_FORMAT, "key": key, "selected_level": chosen,
              "controls": [controls[k] for k in sorted(controls)],
              "holdout": [holdout[k] for k in sorted(holdout)]}
    atomic.write_json(extras_json(paths), result)
    return result
