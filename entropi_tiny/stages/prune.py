"""The prune stage: level checkpoints on the source task, and prune.json, their manifest.

Usage:
    manifest = run_prune(Run(cfg, paths))               # trains missing levels
    state = prune_state(run)                            # fresh / stale / missing

The levels are the expensive part of a run and no other setting can reuse
them, so a change of any setting they were made with is not recomputed
over them: the stage refuses in one line naming the setting, and says how
to go on (another --run-dir, or --replace-levels to delete them). The
settings are recorded in levels/settings.json before level 0 starts, so
an unfinished run is guarded too. Levels finish one by one (each an atomic
checkpoint, so a killed run resumes); prune.json, written last, vouches
for every checkpoint by sha256.
"""
from __future__ import annotations

import os
import shutil

from .. import atomic
from ..errors import UserError
from .contract import NUMBER, OPTIONAL_NUMBER, Run, State, check, commit, digest

NAME = "prune"
SETTINGS = ("model.arch", "model.width", "data.source", "data.source_domains",
            "data.test_fraction", "data.augment", "prune.rate", "prune.levels", "prune.min_alpha",
            "prune.epochs", "prune.batch_size", "prune.lr", "prune.momentum",
            "prune.weight_decay", "prune.include", "prune.rewind", "prune.rewind_epoch",
            "prune.seed")


ROW = {"level": int, "alpha_target": NUMBER, "alpha_actual": NUMBER, "train_acc": NUMBER,
       "test_acc": NUMBER, "train_loss": OPTIONAL_NUMBER}
SPEC = {"levels": [ROW]}


def inputs(run: Run) -> dict:
    return run.settings(*SETTINGS)


def prune_state(run: Run) -> State:
    state = check(run, NAME, run.paths.prune_summary, inputs(run), SPEC)
    if state.status == "fresh":
        level_files(state.manifest)          # every row's checkpoint is vouched for
    return state


def guard_levels(run: Run, replace: bool = False) -> None:
    """Refuse (or with `replace`, delete) levels made with other settings."""
    paths, now = run.paths, inputs(run)
    saved = _saved_settings(run)
    if saved is None or saved == now:
        return
    if replace:
        run.begin_writes()
        shutil.rmtree(paths.levels_dir, ignore_errors=True)
        shutil.rmtree(paths.root / "features", ignore_errors=True)
        shutil.rmtree(paths.root / "controls", ignore_errors=True)   # made from those levels
        paths.prune_summary.unlink(missing_ok=True)
        return
    key = next(k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k))
    raise UserError(f"run folder {paths.root} has levels pruned with {key}={saved.get(key)!r}, "
                    f"not {now.get(key)!r}; use another --run-dir, the same setting, or "
                    "`entropi-tiny prune --replace-levels` to delete those levels")


def _saved_settings(run: Run) -> dict | None:
    """The settings the folder's levels were made with (settings.json, else level 0's)."""
    paths = run.paths
    if paths.levels_settings.is_file():
        saved = atomic.read_json_object(paths.levels_settings).get("settings")
        if not isinstance(saved, dict):
            raise UserError(f"{paths.levels_settings} is damaged; delete the run folder's "
                            "levels/ or use another --run-dir")
        return saved
    if not paths.existing_levels():
        return None
    from ..pruning.checkpoint import load_level

    meta = load_level(paths.level_checkpoint(paths.existing_levels()[0]))[2]
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    flat = {}
    for dotted in SETTINGS:
        section, key = dotted.split(".", 1)
        flat[dotted] = cfg.get(section, {}).get(key) if isinstance(cfg.get(section), dict) else None
    return flat


def record_settings(run: Run) -> None:
    if not run.paths.levels_settings.is_file():
        now = inputs(run)
        atomic.write_json(run.paths.levels_settings, {"settings": now, "key": digest(now)})


def run_prune(run: Run, replace: bool = False) -> dict:
    """Train the missing levels (or resume one), then commit prune.json."""
    from ..pruning.imp import run_imp, summary_row

    source = run.task("source")[0]           # bad data fails before anything is written
    guard_levels(run, replace)
    state = prune_state(run)
    if state.status == "fresh":
        return _with_controls(run, state.manifest)
    main = os.environ.get("RANK", "0") == "0"       # torchrun: rank 0 alone writes
    if main:
        run.begin_writes()
        record_settings(run)
    rows = run_imp(run.cfg, run.paths, quiet=run.quiet, task=source)
    if not main:
        return {"levels": [summary_row(m) for m in rows]}
    return _with_controls(run, commit_levels(run, [summary_row(m) for m in rows]))


def _with_controls(run: Run, manifest: dict) -> dict:
    """With prune.matched_control = all, the control stage's dense control of every level."""
    if run.cfg.prune.matched_control == "all":
        from .control import run_control
        run_control(run, max(level_files(manifest)))
    return manifest


def commit_levels(run: Run, rows: list[dict], extra: dict | None = None) -> dict:
    paths = run.paths
    outputs = [paths.level_checkpoint(r["level"]) for r in rows]
    if paths.rewind_checkpoint.is_file():
        outputs.append(paths.rewind_checkpoint)
    return commit(run, NAME, paths.prune_summary, inputs(run), outputs,
                  {"levels": rows, **(extra or {})})


def level_files(manifest: dict) -> dict[int, str]:
    """level -> sha256 of its checkpoint, from a fresh prune manifest."""
    out = {}
    for row in manifest["levels"]:
        name = f"levels/level_{int(row['level']):02d}/checkpoint.pt"
        if name not in manifest["stage"]["outputs"]:
            raise UserError(f"prune.json is damaged: it does not vouch for {name}; "
                            "delete it and rerun `entropi-tiny prune`")
        out[int(row["level"])] = manifest["stage"]["outputs"][name]
    if not out:
        raise UserError("prune.json is damaged: it lists no level; delete it and rerun "
                        "`entropi-tiny prune`")
    return out


def require_levels(run: Run) -> dict:
    """The fresh prune manifest, or a one-line refusal saying why and what to run."""
    if not run.paths.existing_levels() and not run.paths.prune_summary.is_file():
        raise UserError(f"run folder {run.paths.root} has no level checkpoints; "
                        "run `entropi-tiny prune` first")
    guard_levels(run)
    state = prune_state(run)
    if state.status != "fresh":
        raise UserError(f"the levels in {run.paths.root} are not complete ({state.reason}); "
                        "rerun `entropi-tiny prune`")
    return state.manifest


def ensure_levels(run: Run) -> dict:
    """For commands that run every stage: prune when no level exists yet."""
    if not run.paths.existing_levels() or prune_state(run).status != "fresh":
        return run_prune(run)
    return require_levels(run)
