"""The report stage: Table 1, Figure 3 (PNG), report.md and report.json (the manifest).

Usage:
    summary = run_report(Run(cfg, paths))

Reads prune.json, entropy.json and transfer.json, each only when its own
stage is fresh; report.json is rewritten last with their sha256s (the key)
and the hashes of the Markdown and the PNG.
"""
from __future__ import annotations

from .. import atomic
from ..report import write_report
from .contract import Run, State, check, commit, upstream
from .transfer import transfer_state

NAME = "report"


def inputs(run: Run) -> dict:
    p = run.paths
    return {f"file:{p.rel(f)}": atomic.sha256_file(f)
            for f in (p.prune_summary, p.entropy_json, p.transfer_json)}


def report_state(run: Run) -> State:
    up = transfer_state(run)
    if up.status != "fresh":
        return State(NAME, "stale" if run.paths.report_json.is_file() else "missing",
                     f"transfer is {up.status}: {up.reason}")
    return check(run, NAME, run.paths.report_json, inputs(run))


def run_report(run: Run) -> dict:
    upstream(transfer_state(run), "transfer")
    state = check(run, NAME, run.paths.report_json, inputs(run))
    if state.status == "fresh":
        return state.manifest
    run.begin_writes()
    summary = write_report(run.paths)
    p = run.paths
    return commit(run, NAME, p.report_json, inputs(run), [p.report_md, p.figure3_png], summary)
