"""The run's report: a Table-1 style table, a Figure-3 style plot, JSON and Markdown.

Usage:
    summary = write_report(RunPaths(Path("export/default")))

Reads prune.json, entropy.json, transfer.json and controls.json from the run
folder. Its first lines say whether eq. 6 saturated, how the selected level
compares with a dense encoder trained for the same number of epochs (the
matched control, pruning/control.py), and how far the selection is from the
best evaluated level. Table 1 puts the dense level 0, the matched dense control
and the selected level side by side (mean +- std of target top-1 over the head
seeds); the selection-quality table (selection/quality.py) gives the oracle,
the regret and Spearman correlation of every criterion and the regret of the
baselines; the plot shows the entropies, the target accuracy and the matched
controls against alpha on a log axis, with the same numbers in a box. A folder
of several source seeds is reported per seed and aggregated (report_seeds.py).
"""
from __future__ import annotations

import dataclasses

from . import atomic
from .config import PruneConfig
from .errors import UserError
from .paths import RunPaths
from .pruning.control import cumulative_epochs
from .report_seeds import aggregate, aggregate_markdown
from .selection.quality import selection_quality


def _need(path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"{path} is missing; run `entropi-tiny {what}` first")
    return atomic.read_json(path)


def build_summary(paths: RunPaths) -> dict:
    prune = _need(paths.prune_summary, "prune")
    entropy = _need(paths.entropy_json, "select")
    transfer = _need(paths.transfer_json, "transfer")
    extras = atomic.read_json(paths.controls_json) if paths.controls_json.is_file() else {}
    cfg = _run_prune_config(paths)
    acc = {r["level"]: r for r in transfer["rows"]}
    ent = {r["level"]: r for r in entropy["rows"]}
    held = {r["level"]: r for r in extras.get("holdout", [])}
    controls = {r["level"]: r for r in extras.get("controls", [])}
    levels = [_level_row(p, ent, acc, held, controls, cfg) for p in prune["levels"]]
    dense, chosen = transfer["dense_level"], entropy["selected_level"]
    if dense not in acc or chosen not in acc:
        raise UserError("transfer.json lacks the dense or the selected level; rerun `entropi-tiny transfer`")
    table1 = {name: _t1(acc[k], k, cfg) for name, k in (("dense", dense), ("pruned", chosen))}
    if chosen == dense:
        table1["matched_dense"] = {**table1["dense"], "control_of_level": chosen}
    elif chosen in controls:
        table1["matched_dense"] = {**_t1(controls[chosen], chosen, cfg), "alpha": 1.0,
                                   "control_of_level": chosen}
    if "matched_dense" in table1:
        table1["pruned_minus_matched"] = (table1["pruned"]["top1_mean"]
                                          - table1["matched_dense"]["top1_mean"])
    table1["pruned_minus_dense"] = table1["pruned"]["top1_mean"] - table1["dense"]["top1_mean"]
    summary = {"target": transfer["key"]["target"], "criterion": entropy["criterion"],
               "levels_m": entropy["levels_m"], "entropy_unit": "bits",
               "head_recipe": _recipe(transfer["key"]),
               "matched_control": extras.get("key", {}).get("matched_control", "none"),
               "table1": table1, "levels": levels}
    summary["saturation"] = saturation(levels, entropy["criterion"])
    summary["selection"] = selection_quality(levels, chosen, entropy["criterion"])
    return summary


def _run_prune_config(paths: RunPaths) -> PruneConfig:
    saved = atomic.read_json(paths.config).get("prune", {}) if paths.config.is_file() else {}
    known = {f.name for f in dataclasses.fields(PruneConfig)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known}
    return PruneConfig(**values)


def _level_row(p: dict, ent: dict, acc: dict, held: dict, controls: dict, cfg: PruneConfig) -> dict:
    k = p["level"]
    row = {"level": k, "alpha": p["alpha_actual"], "source_test_acc": p["test_acc"],
           "cumulative_epochs": cumulative_epochs(cfg, k)}
    if k in ent:
        e = ent[k]
        row.update(exact_bits=e["exact_bits"], bound_bits=e["bound_bits"],
                   saturated=e["saturated"], max_bits=e["max_bits"],
                   subset_bits=e.get("subset_bits"), subset_k=e.get("subset_k"))
    if k in acc:
        row.update(target_acc_mean=acc[k]["test_acc_mean"], target_acc_std=acc[k]["test_acc_std"],
                   target_train_acc_mean=acc[k].get("train_acc_mean"))
    if k in held:
        row["holdout_acc_mean"] = held[k]["holdout_acc_mean"]
    if k in controls:
        row.update(control_acc_mean=controls[k]["test_acc_mean"],
                   control_acc_std=controls[k]["test_acc_std"],
                   control_source_test_acc=controls[k]["source_test_acc"])
    elif k == 0 and k in acc:
        row.update(control_acc_mean=acc[0]["test_acc_mean"], control_acc_std=acc[0]["test_acc_std"],
                   control_source_test_acc=p["test_acc"])
    return row


def _t1(r: dict, level: int, cfg: PruneConfig) -> dict:
    return {"level": level, "alpha": r["alpha"], "top1_mean": r["test_acc_mean"],
            "top1_std": r["test_acc_std"], "n_seeds": len(r["seeds"]),
            "train_top1_mean": r.get("train_acc_mean"),
            "epochs": cumulative_epochs(cfg, level)}


def _recipe(key: dict) -> str:
    tuned = key.get("standardize") or key.get("init") == "ridge"
    name = "tuned" if tuned else "paper"
    return (f"{name}: standardize={key.get('standardize', False)}, init={key.get('init', 'random')}, "
            f"Adam lr {key['lr']:g}, decay {key['lr_decay']:g}, {key['epochs']} epochs, "
            f"batch {key['batch_size']}, seeds {list(key['seeds'])}")


def saturation(levels: list[dict], criterion: str) -> dict:
    """How many levels' eq. 6 sits at its log2|D| ceiling, and what that means."""
    rows = [r for r in levels if "exact_bits" in r]
    n_sat = sum(1 for r in rows if r["saturated"])
    most = n_sat * 2 > len(rows)
    return {"n_levels": len(rows), "n_saturated": n_sat, "most_saturated": most,
            "criterion_used": criterion,
            "criterion_saturates": criterion == "exact" and most}


def _fmt(value, spec: str = ".2f", none: str = "n/a") -> str:
    return none if value is None else format(value, spec)


def headline(summary: dict) -> list[str]:
    """The report's first lines: what was compared and whether entropy picked well."""
    t, s, sat = summary["table1"], summary["selection"], summary["saturation"]
    p, d = t["pruned"], t["dense"]
    lines = []
    if sat["most_saturated"]:
        lines.append(f"**Saturation:** eq. 6 (the exact entropy) sits at its log2|D| ceiling for "
                     f"{sat['n_saturated']} of {sat['n_levels']} levels, so `exact` mostly falls "
                     f"through to its tie-break (the per-neuron bound). The non-saturating "
                     f"`--set select.criterion=subset` (eq. 6 over random k-neuron subsets, "
                     f"selection/subsets.py) is offered; this run selected with "
                     f"`{summary['criterion']}`.")
    m = t.get("matched_dense")
    if m is not None:
        lines.append(f"**Pruned vs dense trained as long:** level {p['level']} (alpha "
                     f"{p['alpha']:.4f}, {p['epochs']} epochs) {p['top1_mean']:.2f} vs the dense "
                     f"control with the same {m['epochs']} epochs {m['top1_mean']:.2f}: "
                     f"{t['pruned_minus_matched']:+.2f} points (vs dense level 0 with "
                     f"{d['epochs']} epochs: {t['pruned_minus_dense']:+.2f}).")
    else:
        lines.append(f"**No budget-matched dense control** (prune.matched_control = "
                     f"{summary['matched_control']}): pruned {p['top1_mean']:.2f} vs dense level 0 "
                     f"{d['top1_mean']:.2f} confounds pruning with {p['epochs']} vs "
                     f"{d['epochs']} training epochs.")
    if s.get("n_evaluated", 0) > 1:
        o, sel = s["oracle"], s["selected"]
        rho = ", ".join(f"{k} {_fmt(v, '+.2f')}" for k, v in s["spearman"].items())
        lines.append(f"**Selection:** `{summary['criterion']}` picked level {sel['level']}, regret "
                     f"{_fmt(sel['regret'])} points against the best of the {s['n_evaluated']} "
                     f"evaluated levels (level {o['level']}, {o['target_acc']:.2f}); Spearman with "
                     f"target top-1: {rho}.")
    return lines


def markdown(summary: dict) -> str:
    if "aggregate" in summary:
        return aggregate_markdown(summary)
    t = summary["table1"]
    lines = [f"# ENTROPI report: target `{summary['target']}`", "", *headline(summary), "",
             f"Selection: {summary['criterion']} entropy, M = {summary['levels_m']} (bits). "
             f"Head: {summary['head_recipe']}.", "",
             "## Table 1: top-1 on the target test set (linear head, frozen encoder)", "",
             "| encoder | alpha | source epochs | top-1 (%) | head train top-1 (%) |",
             "|---|---|---|---|---|"]
    names = {"dense": "dense", "pruned": "pruned, selected",
             "matched_dense": "dense, matched epochs"}
    for name in ("dense", "matched_dense", "pruned"):
        if name not in t:
            continue
        r = t[name]
        lines.append(f"| {names[name]} (level {r['level']}) | {r['alpha']:.4f} | {r['epochs']} | "
                     f"{r['top1_mean']:.2f} +- {r['top1_std']:.2f} ({r['n_seeds']} seeds) | "
                     f"{_fmt(r.get('train_top1_mean'))} |")
    lines += selection_lines(summary.get("selection", {})) + level_lines(summary["levels"])
    lines += ["", "![entropy and accuracy against alpha](entropy_vs_alpha.png)", ""]
    return "\n".join(lines)


def selection_lines(s: dict) -> list[str]:
    if s.get("n_evaluated", 0) < 2:
        return ["", "Selection quality needs heads on several levels: run `transfer --all-levels`."]
    lines = ["", f"## Selection quality over {s['n_evaluated']} evaluated levels", "",
             f"Oracle: level {s['oracle']['level']} (alpha {s['oracle']['alpha']:.4f}), "
             f"{s['oracle']['target_acc']:.2f}. Regret = oracle top-1 - picked top-1 (points).", "",
             "| rule | level | alpha | top-1 | regret | Spearman with top-1 |", "|---|---|---|---|---|---|"]
    rules = [(f"entropy `{k}`{' (used)' if k == s['criterion'] else ''}", v,
              _fmt(s["spearman"].get(k), "+.2f", "undefined")) for k, v in s["criteria"].items()]
    names = {"sparsest": "sparsest level", "best_source": "best source top-1",
             "holdout": "held-out target train split", "dense": "dense level 0"}
    rules += [(names[k], v, "") for k, v in s["baselines"].items()]
    for name, v, rho in rules:
        if v is None:
            lines.append(f"| {name} | | | | n/a | |")
            continue
        lines.append(f"| {name} | {v['level']} | {v['alpha']:.4f} | {v['target_acc']:.2f} | "
                     f"{v['regret']:.2f} | {rho} |")
    return lines


def level_lines(levels: list[dict]) -> list[str]:
    lines = ["", "## Every level", "",
             "| level | alpha | epochs | source top-1 | H exact | H bound | H subset | saturated "
             "| target top-1 | dense, same epochs | held-out |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in levels:
        tgt = (f"{r['target_acc_mean']:.2f} +- {r['target_acc_std']:.2f}"
               if "target_acc_mean" in r else "")
        ctl = (f"{r['control_acc_mean']:.2f} +- {r['control_acc_std']:.2f}"
               if "control_acc_mean" in r else "")
        ent = (f"{r['exact_bits']:.3f} | {r['bound_bits']:.2f} | {_fmt(r.get('subset_bits'), '.3f')} | "
               f"{'yes' if r['saturated'] else 'no'}" if "exact_bits" in r else " | | | ")
        lines.append(f"| {r['level']} | {r['alpha']:.4f} | {r['cumulative_epochs']} | "
                     f"{r['source_test_acc']:.2f} | {ent} | {tgt} | {ctl} | "
                     f"{_fmt(r.get('holdout_acc_mean'), '.2f', '')} |")
    return lines


def plot(summary: dict, path) -> None:
    """Figure 3 in two panels sharing the alpha axis: the exact entropy with its
    log2|D| ceiling; the per-neuron bound with the target top-1 on a twin axis."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["levels"] if "exact_bits" in r]
    alphas = [r["alpha"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.8), sharex=True)
    top.plot(alphas, [r["exact_bits"] for r in rows], "o-", color="tab:blue", label="H exact (eq. 6)")
    top.plot(alphas, [r["max_bits"] for r in rows], ":", color="gray", label="ceiling log2|D|")
    top.set_ylabel("H exact (bits)")
    bottom.plot(alphas, [r["bound_bits"] for r in rows], "s--", color="tab:cyan",
                label="per-neuron bound (eq. 8)")
    bottom.set_ylabel("bound (bits)")
    bottom.set_xscale("log")
    bottom.invert_xaxis()
    bottom.set_xlabel("alpha (fraction of non-zero parameters)")
    chosen = summary["table1"]["pruned"]["alpha"]
    for ax in (top, bottom):
        ax.axvline(chosen, color="tab:green", linestyle="--", linewidth=1,
                   label=f"selected alpha = {chosen:.4f}")
        ax.grid(alpha=0.3)
    top.legend(fontsize=8, loc="lower left")
    handles, labels = bottom.get_legend_handles_labels()
    acc = [r for r in summary["levels"] if "target_acc_mean" in r]
    if acc:
        twin = bottom.twinx()
        twin.errorbar([r["alpha"] for r in acc], [r["target_acc_mean"] for r in acc],
                      yerr=[r["target_acc_std"] for r in acc], fmt="^-", color="tab:red",
                      capsize=3, label="target top-1 (%)")
        ctl = [r for r in summary["levels"] if "control_acc_mean" in r]
        if ctl:
            # A control is dense (alpha 1): it is drawn at the alpha of the level
            # whose epoch budget it matches, so each pair of points shares a budget.
            twin.errorbar([r["alpha"] for r in ctl], [r["control_acc_mean"] for r in ctl],
                          yerr=[r["control_acc_std"] for r in ctl], fmt="x:", color="black",
                          capsize=3, label="dense, same epochs as that level")
        twin.set_ylabel("target top-1 (%)")
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    bottom.legend(handles, labels, fontsize=8, loc="lower left")
    top.set_title(f"Entropy and transfer accuracy vs alpha (target: {summary['target']})")
    note = quality_note(summary)
    if note:
        fig.text(0.01, 0.005, note, fontsize=7, ha="left", va="bottom", family="monospace")
    fig.tight_layout(rect=(0, 0.11 if note else 0, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())


def quality_note(summary: dict) -> str:
    """The figure's box: regret, Spearman, baselines' regret, saturation."""
    s = summary.get("selection", {})
    if s.get("n_evaluated", 0) < 2:
        return ""
    rho = ", ".join(f"{k} {_fmt(v, '+.2f', 'undef.')}" for k, v in s["spearman"].items())
    base = ", ".join(f"{k} {_fmt(v and v['regret'])}" for k, v in s["baselines"].items())
    sat = summary["saturation"]
    return (f"selected ({summary['criterion']}): level {s['selected']['level']}, regret "
            f"{_fmt(s['selected']['regret'])} pts; oracle level {s['oracle']['level']}\n"
            f"Spearman vs top-1: {rho}\nbaseline regret: {base}\n"
            f"eq. 6 saturated at {sat['n_saturated']}/{sat['n_levels']} levels")


def write_report(paths: RunPaths, per_seed: dict[int, dict] | None = None) -> dict:
    """report.{json,md} and the figure of one run; with `per_seed` (each source
    seed's report summary, from its sub-run) the aggregate (report_seeds.py)."""
    summary = aggregate(per_seed) if per_seed else build_summary(paths)
    plot(summary, paths.figure3_png)
    atomic.write_json(paths.report_json, summary)
    atomic.write_text(paths.report_md, markdown(summary))
    return summary
