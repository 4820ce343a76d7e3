"""The control stages: the budget-matched dense control (pruning/control.py) and controls.json.

Usage:
    manifest = run_control(run, up_to=5)       # controls/levels/..., controls/prune.json
    extras = run_controls(run, chosen, wanted) # controls.json (control heads, holdout baseline)
    control_state(run), controls_state(run)    # fresh / stale / missing / skipped

Two stages, each with a manifest like every other stage (contract.py):
  control   the dense control checkpoints 1..up_to; controls/prune.json vouches
            for them by sha256. Its key: every prune setting the levels were made
            with, level 0's checkpoint (the chain starts there), and up_to (the
            selected level under prune.matched_control=selected, the last level
            under "all"). The chain's checkpoints are reused only when they were
            made from that same level 0 and settings (controls/settings.json);
            otherwise they are deleted and trained again, never silently reused.
  controls  controls.json: a head on each control (the transfer recipe and seeds)
            and the held-out-split baseline per level. Its key: the transfer
            stage's inputs, the control manifest, matched_control and
            transfer.holdout_fraction.
With prune.matched_control = none both stages are "skipped".
"""
from __future__ import annotations

import os
import shutil
import statistics

from tqdm import tqdm

from .. import atomic
from ..pruning.checkpoint import load_level
from ..pruning.control import control_paths, control_row, control_up_to, cumulative_epochs
from ..transfer import holdout_head, level_features, summarize, train_head
from .contract import Run, State, check, commit, digest
from .prune import inputs as prune_inputs, level_files, prune_state, require_levels

CONTROL = "control"
CONTROLS = "controls"
EXTRAS_FORMAT = "entropi-tiny/transfer-extras-v1"
HEAD = ("transfer.holdout_fraction", "prune.matched_control")


def extras_json(run: Run):
    return run.paths.controls_json


def _chain_inputs(run: Run, manifest: dict) -> dict:
    return {**prune_inputs(run), "file:levels/level_00/checkpoint.pt": level_files(manifest)[0]}


def control_inputs(run: Run, manifest: dict, up_to: int) -> dict:
    return {**_chain_inputs(run, manifest), "control.up_to": up_to}


def wanted_up_to(run: Run, manifest: dict, chosen: int | None) -> int:
    """How far the control chain goes: 0 for none, the last level for all, else chosen."""
    last = max(level_files(manifest))
    if run.cfg.prune.matched_control == "selected" and chosen is None:
        return 0
    return control_up_to(run.cfg, chosen if chosen is not None else last, last)


def _guard_chain(run: Run, chain: dict) -> None:
    """Delete control checkpoints made from another level 0 or other prune settings."""
    cp = control_paths(run.paths)
    rec = cp.levels_settings
    saved = atomic.read_json_object(rec).get("key") if rec.is_file() else None
    if saved == digest(chain):
        return
    run.begin_writes()
    if cp.root.is_dir():
        if saved is not None and not run.quiet:
            tqdm.write("the dense controls were made with other prune settings: training them again")
        shutil.rmtree(cp.levels_dir, ignore_errors=True)
        shutil.rmtree(cp.root / "features", ignore_errors=True)
        cp.prune_summary.unlink(missing_ok=True)
    cp.levels_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(rec, {"settings": chain, "key": digest(chain)})


def run_control(run: Run, up_to: int) -> dict | None:
    """Train the missing control levels 1..up_to and commit controls/prune.json."""
    from ..pruning.control import run_controls as train

    if up_to < 1:
        return None
    manifest = require_levels(run)
    inp = control_inputs(run, manifest, up_to)
    cp = control_paths(run.paths)
    state = check(run, CONTROL, cp.prune_summary, inp)
    if state.status == "fresh":
        return state.manifest
    main = os.environ.get("RANK", "0") == "0"
    if main:
        run.begin_writes()
        _guard_chain(run, _chain_inputs(run, manifest))
    rows = train(run.cfg, run.paths, up_to, run.quiet, task=run.task("source")[0])
    if not main:
        return {"levels": rows}
    outputs = [cp.level_checkpoint(r["level"]) for r in rows]
    return commit(run, CONTROL, cp.prune_summary, inp, outputs, {"levels": rows})


def control_state(run: Run) -> State:
    if run.cfg.prune.matched_control == "none":
        return State(CONTROL, "skipped", "prune.matched_control is none")
    up = prune_state(run)
    cp = control_paths(run.paths)
    if up.status != "fresh":
        return State(CONTROL, "stale" if cp.prune_summary.is_file() else "missing",
                     f"prune is {up.status}: {up.reason}")
    chosen = None
    if run.cfg.prune.matched_control == "selected":
        from .select import select_state
        sel = select_state(run)
        if sel.status != "fresh":
            return State(CONTROL, "stale" if cp.prune_summary.is_file() else "missing",
                         f"select is {sel.status}: {sel.reason}")
        chosen = int(sel.manifest["selected_level"])
    return check(run, CONTROL, cp.prune_summary,
                 control_inputs(run, up.manifest, wanted_up_to(run, up.manifest, chosen)))


def _controls_inputs(run: Run, transfer_inputs: dict, control_manifest: dict | None) -> dict:
    sha = atomic.sha256_file(control_paths(run.paths).prune_summary) if control_manifest else None
    return {**transfer_inputs, "file:controls/prune.json": sha, **run.settings(*HEAD)}


def run_controls(run: Run, chosen: int, wanted: list[int], transfer_inputs: dict) -> dict | None:
    """controls.json: heads on the controls of the wanted levels and the holdout baseline."""
    from .transfer import _row_key

    if run.cfg.prune.matched_control == "none":
        return None
    manifest = require_levels(run)
    files = level_files(manifest)
    up_to = wanted_up_to(run, manifest, chosen)
    cman = run_control(run, up_to)
    inp = {**_controls_inputs(run, transfer_inputs, cman), "transfer.wanted": wanted}
    state = check(run, CONTROLS, extras_json(run), inp)
    if state.status == "fresh":
        return state.manifest
    target, cp = run.target(), control_paths(run.paths)
    ctl_files = {} if cman is None else {
        int(r["level"]): cman["stage"]["outputs"][f"controls/levels/level_{int(r['level']):02d}/checkpoint.pt"]
        for r in cman["levels"]}
    run.begin_writes()
    controls = []
    for level in tqdm([k for k in sorted(set(wanted) | {chosen}) if k in ctl_files],
                      desc="controls", unit="level", disable=run.quiet):
        key = digest({"control": ctl_files[level], "target": run.task("target")[1],
                      **run.settings("select.batch_size")})
        feats = level_features(cp, level, target, run.cfg.select.batch_size, key=key)
        runs = [train_head(feats, run.cfg.transfer, seed) for seed in run.cfg.transfer.seeds]
        meta = load_level(cp.level_checkpoint(level))[2]
        controls.append({"level": level, "alpha": meta["alpha_actual"], "control_of_level": level,
                         "cumulative_epochs": cumulative_epochs(run.cfg.prune, level),
                         "epochs_total": meta.get("epochs_total"),
                         "source_test_acc": meta["test_acc"],
                         "feature_dim": int(feats["train"].shape[1]), **summarize(runs)})
        if not run.quiet:
            r = controls[-1]
            tqdm.write(f"dense control of level {level} ({r['cumulative_epochs']} epochs, alpha "
                       f"1.0000): top-1 {r['test_acc_mean']:.2f} +- {r['test_acc_std']:.2f}")
    holdout = [_holdout_row(run, level, target, _row_key(run, files[level])) for level in wanted]
    key = {"target": target.name, "matched_control": run.cfg.prune.matched_control}
    payload = {"format": EXTRAS_FORMAT, "key": key, "selected_level": chosen,
               "controls": controls, "holdout": holdout}
    return commit(run, CONTROLS, extras_json(run), inp, [], payload)


def _holdout_row(run: Run, level: int, target, key: str) -> dict:
    """The pick-by-validation baseline of one level, from transfer's cached features."""
    feats = level_features(run.paths, level, target, run.cfg.select.batch_size, key=key)
    runs = [holdout_head(feats, run.cfg.transfer, seed) for seed in run.cfg.transfer.seeds]
    accs = [r["holdout_acc"] for r in runs]
    return {"level": level, "holdout_acc_mean": statistics.fmean(accs),
            "holdout_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "n_holdout": runs[0]["n_holdout"]}


def controls_state(run: Run) -> State:
    from .transfer import inputs as transfer_inputs, transfer_state

    if run.cfg.prune.matched_control == "none":
        return State(CONTROLS, "skipped", "prune.matched_control is none")
    up = transfer_state(run)
    path = extras_json(run)
    if up.status != "fresh":
        return State(CONTROLS, "stale" if path.is_file() else "missing",
                     f"transfer is {up.status}: {up.reason}")
    ctl = control_state(run)
    if ctl.status not in ("fresh",) and not (ctl.status == "missing" and _up_to_zero(run, up)):
        return State(CONTROLS, "stale" if path.is_file() else "missing",
                     f"control is {ctl.status}: {ctl.reason}")
    saved = atomic.read_json_object(path) if path.is_file() else {}
    wanted = saved.get("stage", {}).get("inputs", {}).get("transfer.wanted") \
        if isinstance(saved.get("stage"), dict) else None
    t_inp = transfer_inputs(run, prune_state(run).manifest, atomic.sha256_file(run.paths.entropy_json))
    inp = {**_controls_inputs(run, t_inp, ctl.manifest if ctl.status == "fresh" else None),
           "transfer.wanted": wanted}
    return check(run, CONTROLS, path, inp)


def _up_to_zero(run: Run, transfer: State) -> bool:
    return wanted_up_to(run, prune_state(run).manifest,
                        int(transfer.manifest["selected_level"])) < 1
