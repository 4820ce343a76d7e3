"""The report stage: Table 1, Figure 3 (PNG), report.md and report.json (the manifest).

Usage:
    summary = run_report(Run(cfg, paths))

Reads prune.json, entropy.json, transfer.json and (unless
prune.matched_control is none) controls.json, each only when its own stage
is fresh; report.json is rewritten last with their sha256s (the key) and the
hashes of the Markdown and the PNG. A folder of several source seeds
(seeds.py) reports each seed's sub-run, then aggregates them: the folder's
key is then the sha256 of every sub-run's report.json.
"""
from __future__ import annotations

from .. import atomic
from ..report import write_report
from ..seeds import seed_runs
from .contract import Run, State, check, commit, upstream
from .control import controls_state
from .transfer import transfer_state

NAME = "report"


def inputs(run: Run) -> dict:
    p = run.paths
    files = [p.prune_summary, p.entropy_json, p.transfer_json]
    if run.cfg.prune.matched_control != "none":
        files.append(p.controls_json)
    return {f"file:{p.rel(f)}": atomic.sha256_file(f) if f.is_file() else None for f in files}


def _seed_inputs(run: Run, subs: list[Run]) -> dict:
    return {f"file:{run.paths.rel(s.paths.report_json)}":
            atomic.sha256_file(s.paths.report_json) if s.paths.report_json.is_file() else None
            for s in subs}


def _upstream_state(run: Run) -> State:
    up = transfer_state(run)
    if up.status == "fresh" and run.cfg.prune.matched_control != "none":
        return controls_state(run)
    return up


def report_state(run: Run) -> State:
    if run.cfg.prune.source_seeds:
        subs = [s for s in _subs(run)]
        bad = next((st for st in map(report_state, subs) if st.status != "fresh"), None)
        if bad is not None:
            return State(NAME, "stale" if run.paths.report_json.is_file() else "missing",
                         f"a seed's report is {bad.status}: {bad.reason}")
        return check(run, NAME, run.paths.report_json, _seed_inputs(run, subs))
    up = _upstream_state(run)
    if up.status != "fresh":
        return State(NAME, "stale" if run.paths.report_json.is_file() else "missing",
                     f"{up.name} is {up.status}: {up.reason}")
    return check(run, NAME, run.paths.report_json, inputs(run))


def _subs(run: Run) -> list[Run]:
    """The seed sub-runs, without writing anything (status reads only)."""
    from ..seeds import seed_config, seed_dir
    return [Run(seed_config(run.cfg, s), seed_dir(run.paths, s), run.quiet)
            for s in run.cfg.prune.source_seeds]


def run_report(run: Run) -> dict:
    if run.cfg.prune.source_seeds:
        subs = list(seed_runs(run))
        per_seed = {s.cfg.prune.seed: run_report(s) for s in subs}
        inp = _seed_inputs(run, subs)
        state = check(run, NAME, run.paths.report_json, inp)
        if state.status == "fresh":
            return state.manifest
        return _write(run, inp, {k: _strip(v) for k, v in per_seed.items()})
    up = _upstream_state(run)
    upstream(up, "transfer")
    state = check(run, NAME, run.paths.report_json, inputs(run))
    if state.status == "fresh":
        return state.manifest
    return _write(run, inputs(run), None)


def _strip(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k != "stage"}


def _write(run: Run, inp: dict, per_seed: dict | None) -> dict:
    run.begin_writes()
    summary = write_report(run.paths, per_seed)
    p = run.paths
    return commit(run, NAME, p.report_json, inp, [p.report_md, p.figure3_png], summary)
