"""The transfer stage: the linear head on the frozen selected and dense encoders.

Usage:
    result = run_transfer(Run(cfg, paths), all_levels=False)    # transfer.json

A level's row (and its cached features, features/level_NN.pt) is keyed on
the level's checkpoint (sha256), the target images (content hash) and every
setting of the head recipe, so changing the target's domain, its files or a
hyperparameter recomputes exactly the rows it affects. The manifest's key adds
entropy.json (which level is selected); rows are stored as they finish. Then
the control stages (stages/control.py) give the matched dense control and the
holdout baseline in controls.json, keyed on these same inputs.
"""
from __future__ import annotations

from tqdm import tqdm

from .. import atomic
from ..pruning.checkpoint import load_level
from ..transfer import level_features, summarize, train_head
from .contract import NUMBER, Run, State, check, commit, digest
from .control import run_controls
from .prune import level_files, prune_state, require_levels
from .select import run_select, select_state, selected

NAME = "transfer"
TRANSFER_FORMAT = "entropi-tiny/transfer-v1"
ROW = {"level": int, "alpha": NUMBER, "test_acc_mean": NUMBER, "test_acc_std": NUMBER,
       "seeds": list}
SPEC = {"selected_level": int, "dense_level": int, "rows": [ROW], "key": {"target": str}}
SETTINGS = ("transfer.lr", "transfer.lr_decay", "transfer.batch_size", "transfer.epochs",
            "transfer.seeds", "transfer.standardize", "transfer.init", "transfer.ridge",
            "select.batch_size")


def inputs(run: Run, prune_manifest: dict, entropy_sha: str) -> dict:
    files = {f"file:levels/level_{k:02d}/checkpoint.pt": sha
             for k, sha in level_files(prune_manifest).items()}
    return {**files, "file:entropy.json": entropy_sha, **run.target_inputs(),
            **run.settings(*SETTINGS)}


def transfer_state(run: Run, all_levels: bool = False) -> State:
    up = select_state(run)
    if up.status != "fresh":
        return State(NAME, "stale" if run.paths.transfer_json.is_file() else "missing",
                     f"select is {up.status}: {up.reason}")
    state = check(run, NAME, run.paths.transfer_json,
                  inputs(run, prune_state(run).manifest, atomic.sha256_file(run.paths.entropy_json)),
                  SPEC)
    if state.status == "fresh" and not _has_rows(state.manifest, _wanted(run, state.manifest,
                                                                        all_levels)):
        return State(NAME, "stale", "rows for --all-levels are missing", state.manifest)
    return state


def _wanted(run: Run, result: dict, all_levels: bool) -> list[int]:
    levels = sorted(level_files(prune_state(run).manifest))
    return levels if all_levels else sorted({levels[0], int(result["selected_level"])})


def _has_rows(result: dict, wanted: list[int]) -> bool:
    return set(wanted) <= {r.get("level") for r in result.get("rows", []) if isinstance(r, dict)}


def _row_key(run: Run, level_sha: str) -> str:
    return digest({"level": level_sha, "target": run.task("target")[1], **run.settings(*SETTINGS)})


def _saved_rows(run: Run) -> dict[str, dict]:
    path = run.paths.transfer_json
    if not path.is_file():
        return {}
    saved = atomic.read_json_object(path)
    rows = saved.get("rows") if saved.get("format") == TRANSFER_FORMAT else None
    if not isinstance(rows, list):
        return {}
    return {r["row_key"]: r for r in rows if isinstance(r, dict) and isinstance(r.get("row_key"), str)}


def run_transfer(run: Run, all_levels: bool = False) -> dict:
    """Train the head (all seeds) on the selected and the dense level, or on every level."""
    cfg, paths = run.cfg, run.paths
    target = run.target()
    manifest = require_levels(run)
    chosen = selected(run, run_select(run))
    files = level_files(manifest)
    levels = sorted(files)
    wanted = levels if all_levels else sorted({levels[0], chosen})
    inp = inputs(run, manifest, atomic.sha256_file(paths.entropy_json))
    state = check(run, NAME, paths.transfer_json, inp, SPEC)
    if state.status == "fresh" and _has_rows(state.manifest, wanted):
        run_controls(run, chosen, wanted, inp)           # controls.json (stages/control.py)
        return state.manifest
    saved = _saved_rows(run)
    done = {}
    for level in levels:                       # rows of this run's levels made from these inputs
        key = _row_key(run, files[level])
        if key in saved:
            done[level] = saved[key]
    for level in tqdm(wanted, desc="transfer", unit="level", disable=run.quiet):
        if level in done:
            continue
        key = _row_key(run, files[level])
        run.begin_writes()
        feats = level_features(paths, level, target, cfg.select.batch_size, key=key)
        runs = [train_head(feats, cfg.transfer, seed) for seed in cfg.transfer.seeds]
        meta = load_level(paths.level_checkpoint(level))[2]
        done[level] = {"level": level, "row_key": key, "alpha": meta["alpha_actual"],
                       "feature_dim": int(feats["train"].shape[1]), **summarize(runs)}
        atomic.write_json(paths.transfer_json, _result(run, done, chosen, levels[0]))
    run.begin_writes()
    result = commit(run, NAME, paths.transfer_json, inp, [], _result(run, done, chosen, levels[0]))
    run_controls(run, chosen, wanted, inp)               # controls.json (stages/control.py)
    return result


def _result(run: Run, done: dict, chosen: int, dense: int) -> dict:
    key = {"target": run.target().name, "n_train": len(run.target().train),
           **{k: v for k, v in run.cfg.to_dict()["transfer"].items()}}
    return {"format": TRANSFER_FORMAT, "key": key, "selected_level": chosen,
            "dense_level": dense, "rows": [done[k] for k in sorted(done)]}
