"""The report of a run folder with several source seeds: mean and spread of every number.

Usage:
    summary = aggregate({0: summary_seed0, 1: summary_seed1})   # report.py calls it
    text = aggregate_markdown(summary)

Each seed's sub-run (seeds/seed_N/) gets its own full report; the folder's report
aggregates them. Every number of Table 1, of the selection quality (regrets,
Spearman correlations, the baselines) and of the saturation count is flattened to
a dotted name and given as mean, sample standard deviation and the per-seed values
over the seeds that have it; the levels are averaged level by level for the figure.
"""
from __future__ import annotations

import statistics

SECTIONS = ("table1", "selection", "saturation")


def flatten(obj, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts as {"a.b.c": value} (bools and lists skipped)."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = float(obj)
    return out


def spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values, "n": len(values)}


def aggregate(per_seed: dict[int, dict]) -> dict:
    seeds = sorted(per_seed)
    flat = {s: {k: v for sec in SECTIONS for k, v in flatten(per_seed[s].get(sec, {}), f"{sec}.").items()}
            for s in seeds}
    names = sorted({k for f in flat.values() for k in f})
    numbers = {k: spread([flat[s][k] for s in seeds if k in flat[s]]) for k in names}
    first = per_seed[seeds[0]]
    return {"source_seeds": seeds, "target": first["target"], "criterion": first["criterion"],
            "levels_m": first["levels_m"], "head_recipe": first["head_recipe"],
            "aggregate": numbers, "levels": _mean_levels([per_seed[s]["levels"] for s in seeds]),
            "selected_levels": {str(s): per_seed[s]["table1"]["pruned"]["level"] for s in seeds},
            "table1": first["table1"], "seeds": {str(s): per_seed[s] for s in seeds}}


def _mean_levels(runs: list[list[dict]]) -> list[dict]:
    """Per level: the mean of each numeric field over the seeds; target_acc_std and
    control_acc_std become the spread of the per-seed means across seeds."""
    by_level: dict[int, list[dict]] = {}
    for rows in runs:
        for r in rows:
            by_level.setdefault(r["level"], []).append(r)
    out = []
    for level in sorted(by_level):
        rows = by_level[level]
        row = {"level": level, "n_seeds": len(rows)}
        for key in rows[0]:
            vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))
                    and not isinstance(r.get(key), bool)]
            if key != "level" and len(vals) == len(rows):
                row[key] = statistics.fmean(vals)
        row["saturated"] = all(r.get("saturated", False) for r in rows)
        for key in ("target_acc", "control_acc"):
            vals = [r[f"{key}_mean"] for r in rows if f"{key}_mean" in r]
            if len(vals) == len(rows):
                row[f"{key}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(row)
    return out


LABELS = (("table1.dense.top1_mean", "dense level 0, top-1"),
          ("table1.matched_dense.top1_mean", "dense, matched epochs, top-1"),
          ("table1.pruned.top1_mean", "pruned (selected), top-1"),
          ("table1.pruned_minus_matched", "pruned - matched dense (points)"),
          ("table1.pruned_minus_dense", "pruned - dense level 0 (points)"),
          ("table1.pruned.alpha", "selected alpha"),
          ("selection.selected.regret", "selection regret (points)"),
          ("selection.oracle.target_acc", "oracle top-1"))


def aggregate_markdown(summary: dict) -> str:
    agg, seeds = summary["aggregate"], summary["source_seeds"]
    lines = [f"# ENTROPI report: target `{summary['target']}`, {len(seeds)} source seeds {seeds}", "",
             f"Mean +- standard deviation over the source seeds (each seed's own report is in "
             f"seeds/seed_N/report.md). Selection: {summary['criterion']}, M = "
             f"{summary['levels_m']}. Head: {summary['head_recipe']}. Selected levels: "
             f"{summary['selected_levels']}.", "",
             "## Table 1 and selection, aggregated", "", "| number | mean +- std | per seed |",
             "|---|---|---|"]
    shown = set()
    for key, label in LABELS:
        if key in agg:
            lines.append(_row(label, agg[key]))
            shown.add(key)
    lines += ["", "## Every number", "", "| name | mean +- std | per seed |", "|---|---|---|"]
    lines += [_row(f"`{k}`", v) for k, v in agg.items() if k not in shown]
    lines += ["", "![entropy and accuracy against alpha, mean over seeds](entropy_vs_alpha.png)", ""]
    return "\n".join(lines)


def _row(label: str, v: dict) -> str:
    per = ", ".join(f"{x:.2f}" for x in v["values"])
    return f"| {label} | {v['mean']:.2f} +- {v['std']:.2f} (n={v['n']}) | {per} |"
