"""The status command: every stage of a run folder, fresh / stale (and why) / missing.

Usage:
    rows = stage_rows(Run(cfg, paths))
    print(status_table(rows))

Computes each stage's key from the run folder's config (with any options
given) and the files upstream, exactly as the stage itself would before
deciding to skip, and compares it with the key its manifest recorded. It
writes nothing and takes no lock.
"""
from __future__ import annotations

from ..errors import UserError
from .build import build_state
from .codegen import codegen_state
from .contract import Run, State
from .control import control_state, controls_state
from .export import export_state
from .prune import prune_state
from .report import report_state
from .select import select_state
from .transfer import transfer_state

STAGES = (("prune", prune_state), ("select", select_state), ("control", control_state),
          ("transfer", transfer_state), ("controls", controls_state), ("report", report_state), ("export", export_state), ("codegen", codegen_state),
          ("build", build_state))


def stage_rows(run: Run) -> list[dict]:
    rows = []
    user_model = bool(run.cfg.export.tflite)
    for name, fn in STAGES:
        if user_model and name in ("prune", "select", "control", "transfer", "controls", "report"):
            rows.append({"stage": name, "status": "skipped", "reason": "a user model (--tflite)"})
            continue
        try:
            state = fn(run)
        except UserError as e:
            state = State(name, "stale", str(e))
        rows.append({"stage": name, "status": state.status, "reason": state.reason})
    return rows


def status_table(rows: list[dict], root) -> str:
    lines = [f"run folder {root}", f"{'stage':<9} {'status':<8} why"]
    for r in rows:
        lines.append(f"{r['stage']:<9} {r['status']:<8} {r['reason']}".rstrip())
    return "\n".join(lines)
