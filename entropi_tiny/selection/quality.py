"""How good a selection was, over the levels whose head was trained (issue 12).

Usage:
    q = selection_quality(levels, selected=5, criterion="exact")
    q["selected"]["regret"], q["spearman"]["bound"], q["baselines"]["holdout"]["regret"]

levels: report rows with level, alpha, source_test_acc, the entropies
(exact_bits, bound_bits, subset_bits) and, for the evaluated levels,
target_acc_mean (and holdout_acc_mean, the validation baseline's score).

  oracle     the evaluated level with the best target test top-1 (ties: smaller alpha)
  regret     oracle top-1 minus a level's top-1, in points (0 = picked the best)
  spearman   rank correlation (average ranks for ties) of each criterion with the
             target top-1 over the evaluated levels; None when fewer than 3 levels
             or a column is constant (e.g. eq. 6 saturated at every level)
  criteria   each entropy criterion's own pick among the evaluated levels, and its regret
  baselines  simple rules a user could follow instead: the sparsest level, the best
             source test top-1, the best held-out top-1 on the target *train* set,
             and the dense level 0
Nothing here reads the target test set except through target_acc_mean, the quantity
being predicted; the baselines use only what a user has before testing.
"""
from __future__ import annotations

import math

from .entropy import select_level

CRITERION_KEYS = {"exact": "exact_bits", "bound": "bound_bits", "subset": "subset_bits"}


def selection_quality(levels: list[dict], selected: int, criterion: str) -> dict:
    rows = [r for r in levels if r.get("target_acc_mean") is not None]
    if not rows:
        return {"n_evaluated": 0}
    acc = {r["level"]: r["target_acc_mean"] for r in rows}
    oracle = _argmax(rows, lambda r: r["target_acc_mean"])
    best = acc[oracle]

    def pick(level: int | None) -> dict | None:
        if level is None:
            return None
        row = next(r for r in rows if r["level"] == level)
        return {"level": level, "alpha": row["alpha"], "target_acc": acc[level],
                "regret": best - acc[level]}

    out = {"n_evaluated": len(rows), "evaluated_levels": [r["level"] for r in rows],
           "criterion": criterion, "oracle": pick(oracle),
           "selected": pick(selected) if selected in acc else {"level": selected, "regret": None},
           "spearman": {}, "criteria": {}, "baselines": {}}
    for name, key in CRITERION_KEYS.items():
        have = [r for r in rows if r.get(key) is not None]
        if len(have) != len(rows):
            continue
        out["spearman"][name] = spearman([r[key] for r in rows], [r["target_acc_mean"] for r in rows])
        out["criteria"][name] = pick(select_level(rows, name))
    b = out["baselines"]
    b["sparsest"] = pick(min(rows, key=lambda r: (r["alpha"], r["level"]))["level"])
    b["best_source"] = pick(_argmax(rows, lambda r: r["source_test_acc"]))
    held = [r for r in rows if r.get("holdout_acc_mean") is not None]
    b["holdout"] = pick(_argmax(held, lambda r: r["holdout_acc_mean"])) if len(held) == len(rows) else None
    b["dense"] = pick(0) if 0 in acc else None
    return out


def _argmax(rows: list[dict], value) -> int | None:
    """Level of the row with the largest value; ties go to the smaller alpha."""
    if not rows:
        return None
    return max(rows, key=lambda r: (value(r), -r["alpha"], -r["level"]))["level"]


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho: the Pearson correlation of the average ranks."""
    if len(x) != len(y) or len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = math.fsum((a - mx) ** 2 for a in rx)
    syy = math.fsum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def ranks(values: list[float], tol: float = 1e-9) -> list[float]:
    """1-based ranks, tied values (within tol) sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] - values[order[i]] <= tol:
            j += 1
        for t in range(i, j + 1):
            out[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return out
