"""The select stage: entropy of every level's encoder on the target train set; pick the max.

Usage:
    table = run_select(Run(cfg, paths))        # entropy.json
    level = chosen_level(run)                  # export.level, or the selected one

Each level's row is keyed on that level's checkpoint (sha256), the target
images (content hash), M and the subset criterion's k and draws, so a row is reused only for exactly those
inputs; rows are stored as they finish, so a stopped stage resumes. The
stage's key adds the criterion, and entropy.json (the manifest) is written
with it once every level has a row.
"""
from __future__ import annotations

from tqdm import tqdm

from .. import atomic, data
from ..errors import UserError
from ..models import split_model
from ..pruning.checkpoint import load_level
from ..selection.entropy import encoder_entropy, select_level
from .contract import NUMBER, Run, State, check, commit, digest, require_fields
from .prune import level_files, prune_state, require_levels

NAME = "select"
ENTROPY_FORMAT = "entropi-tiny/entropy-v1"
ROW = {"level": int, "alpha": NUMBER}
SPEC = {"selected_level": int, "criterion": str, "levels_m": int, "rows": [ROW]}
# What a row's entropies depend on (besides the level and the target images).
ROW_SETTINGS = ("select.levels_m", "select.batch_size", "select.subset_k", "select.subset_draws")
SETTINGS = (*ROW_SETTINGS, "select.criterion")


def inputs(run: Run, prune_manifest: dict) -> dict:
    files = {f"file:levels/level_{k:02d}/checkpoint.pt": sha
             for k, sha in level_files(prune_manifest).items()}
    return {**files, **run.target_inputs(),
            **run.settings(*SETTINGS)}


def select_state(run: Run) -> State:
    up = prune_state(run)
    if up.status != "fresh":
        return State(NAME, "stale" if run.paths.entropy_json.is_file() else "missing",
                     f"prune is {up.status}: {up.reason}")
    return check(run, NAME, run.paths.entropy_json, inputs(run, up.manifest), SPEC)


def _row_key(run: Run, level_sha: str) -> str:
    return digest({"level": level_sha, "target": run.task("target")[1],
                   **run.settings(*ROW_SETTINGS)})


def _saved_rows(run: Run) -> dict[str, dict]:
    path = run.paths.entropy_json
    if not path.is_file():
        return {}
    saved = atomic.read_json_object(path)
    rows = saved.get("rows") if saved.get("format") == ENTROPY_FORMAT else None
    if not isinstance(rows, list):
        return {}
    return {r["row_key"]: r for r in rows if isinstance(r, dict) and isinstance(r.get("row_key"), str)}


def run_select(run: Run) -> dict:
    """Entropy (eq. 6) and its per-neuron bound (eq. 8) of every level; the max-entropy level."""
    cfg, paths = run.cfg, run.paths
    target = run.target()
    manifest = require_levels(run)
    inp = inputs(run, manifest)
    state = check(run, NAME, paths.entropy_json, inp, SPEC)
    if state.status == "fresh":
        return state.manifest
    done = _saved_rows(run)
    rows = []
    for level, sha in tqdm(level_files(manifest).items(), desc="entropy", unit="level",
                           disable=run.quiet):
        key = _row_key(run, sha)
        if key not in done:
            model, _, meta = load_level(paths.level_checkpoint(level))
            encoder, _ = split_model(model)
            result = encoder_entropy(encoder, target.train.images, cfg.select.batch_size,
                                     cfg.select.levels_m, normalize=data.normalize,
                                     subset_k=cfg.select.subset_k,
                                     subset_draws=cfg.select.subset_draws)
            done[key] = {"level": level, "row_key": key, "alpha_target": meta["alpha_target"],
                         "alpha": meta["alpha_actual"], **result.to_dict()}
            run.begin_writes()
            atomic.write_json(paths.entropy_json, _table(run, rows + [done[key]], None))
        rows.append(done[key])
    chosen = select_level(rows, cfg.select.criterion)
    run.begin_writes()
    return commit(run, NAME, paths.entropy_json, inp, [], _table(run, rows, chosen))


def _table(run: Run, rows: list[dict], chosen: int | None) -> dict:
    table = {"format": ENTROPY_FORMAT, "log_base": 2, "unit": "bits",
             "levels_m": run.cfg.select.levels_m, "criterion": run.cfg.select.criterion,
             "target": run.target().name, "selected_level": chosen, "rows": rows}
    if chosen is not None:
        table["selected_alpha"] = next(r["alpha"] for r in rows if r["level"] == chosen)
    return table


def chosen_level(run: Run) -> int:
    """export.level when set, else the entropy-selected level (running select if stale)."""
    if run.cfg.export.level >= 0:
        levels = level_files(require_levels(run))
        if run.cfg.export.level not in levels:
            raise UserError(f"level {run.cfg.export.level} has no checkpoint in {run.paths.root} "
                            f"(levels: {sorted(levels)})")
        return run.cfg.export.level
    return selected(run, run_select(run))




def selected(run: Run, table: dict) -> int:
    """The selected level of a committed entropy table, checked against the levels."""
    require_fields(table, run.paths.entropy_json, {"selected_level": int, "rows": [ROW]})
    level = table["selected_level"]
    if level not in {r["level"] for r in table["rows"]}:
        raise UserError(f"{run.paths.entropy_json} is damaged: selected_level {level} has no "
                        "row; delete it and rerun `entropi-tiny select`")
    return level
