"""A sizing run folder: an untrained model pruned once to alpha, committed like a real run.

Usage:
    make_sizing_run(RunPaths(Path("runs/r18-0.0077")), cfg, alpha=0.0077)
    # then: entropi-tiny build --run-dir runs/r18-0.0077

pruning/oneshot.py makes the two level checkpoints; this commits them as the
prune stage would (prune.json with their hashes) and commits an entropy
table that selects level 1 (no entropy is measured: `sizing_only`), each
keyed on the settings given, so export, codegen, build and emulate run
unchanged on it.
"""
from __future__ import annotations

from ..config import Config
from ..paths import RunPaths
from ..pruning.oneshot import make_sizing_levels
from .contract import Run, commit
from .lock import release_run_lock
from .prune import commit_levels, record_settings
from .select import ENTROPY_FORMAT
from .select import NAME as SELECT
from .select import inputs as select_inputs


def make_sizing_run(paths: RunPaths, cfg: Config, alpha: float, bn_images: int = 500) -> None:
    run = Run(cfg, paths, quiet=True)
    run.target()
    run.begin_writes()
    try:
        _commit_sizing(run, cfg, alpha, bn_images)
    finally:
        release_run_lock(paths)


def _commit_sizing(run: Run, cfg: Config, alpha: float, bn_images: int) -> None:
    paths = run.paths
    record_settings(run)
    rows = make_sizing_levels(paths, cfg, alpha, bn_images)
    manifest = commit_levels(run, rows, {"sizing_only": True})
    commit(run, SELECT, paths.entropy_json, select_inputs(run, manifest), [], {
        "format": ENTROPY_FORMAT, "criterion": cfg.select.criterion,
        "levels_m": cfg.select.levels_m, "selected_level": 1,
        "selected_alpha": rows[1]["alpha_actual"], "sizing_only": True,
        "rows": [{"level": r["level"], "alpha": r["alpha_actual"]} for r in rows]})
