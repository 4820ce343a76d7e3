"""The run's report: a Table-1 style table, a Figure-3 style plot, JSON and Markdown.

Usage:
    summary = write_report(RunPaths(Path("export/default")))

Reads prune.json, entropy.json and transfer.json from the run folder. The
table compares the dense encoder (alpha = 1) with the entropy-selected
pruned one (mean +- std of target top-1 over the seeds); the plot shows the
exact entropy, its per-neuron bound and, where the head was trained for a
level, the target accuracy, all against alpha on a log axis.
"""
from __future__ import annotations

from . import atomic
from .errors import UserError
from .paths import RunPaths


def _need(path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"{path} is missing; run `entropi-tiny {what}` first")
    return atomic.read_json(path)


def build_summary(paths: RunPaths) -> dict:
    prune = _need(paths.prune_summary, "prune")
    entropy = _need(paths.entropy_json, "select")
    transfer = _need(paths.transfer_json, "transfer")
    acc = {r["level"]: r for r in transfer["rows"]}
    ent = {r["level"]: r for r in entropy["rows"]}
    levels = []
    for p in prune["levels"]:
        k = p["level"]
        row = {"level": k, "alpha": p["alpha_actual"], "source_test_acc": p["test_acc"]}
        if k in ent:
            row.update(exact_bits=ent[k]["exact_bits"], bound_bits=ent[k]["bound_bits"],
                       saturated=ent[k]["saturated"], max_bits=ent[k]["max_bits"])
        if k in acc:
            row.update(target_acc_mean=acc[k]["test_acc_mean"], target_acc_std=acc[k]["test_acc_std"])
        levels.append(row)
    dense, chosen = transfer["dense_level"], entropy["selected_level"]
    if dense not in acc or chosen not in acc:
        raise UserError("transfer.json lacks the dense or the selected level; rerun `entropi-tiny transfer`")
    table1 = {name: {"level": k, "alpha": acc[k]["alpha"], "top1_mean": acc[k]["test_acc_mean"],
                     "top1_std": acc[k]["test_acc_std"], "n_seeds": len(acc[k]["seeds"])}
              for name, k in (("dense", dense), ("pruned", chosen))}
    return {"target": transfer["key"]["target"], "criterion": entropy["criterion"],
            "levels_m": entropy["levels_m"], "entropy_unit": "bits", "table1": table1,
            "levels": levels}


def markdown(summary: dict) -> str:
    t = summary["table1"]
    lines = [f"# ENTROPI report: target `{summary['target']}`", "",
             f"Selection: {summary['criterion']} entropy, M = {summary['levels_m']} (bits).", "",
             "## Table 1: top-1 on the target test set (linear head, frozen encoder)", "",
             "| encoder | alpha | top-1 (%) |", "|---|---|---|"]
    for name in ("dense", "pruned"):
        r = t[name]
        lines.append(f"| {name} (level {r['level']}) | {r['alpha']:.4f} | "
                     f"{r['top1_mean']:.2f} +- {r['top1_std']:.2f} ({r['n_seeds']} seeds) |")
    lines += ["", "## Every level", "",
              "| level | alpha | source top-1 | H exact | H bound | saturated | target top-1 |",
              "|---|---|---|---|---|---|---|"]
    for r in summary["levels"]:
        tgt = (f"{r['target_acc_mean']:.2f} +- {r['target_acc_std']:.2f}"
               if "target_acc_mean" in r else "")
        ent = (f"{r['exact_bits']:.3f} | {r['bound_bits']:.2f} | {'yes' if r['saturated'] else 'no'}"
               if "exact_bits" in r else " | | ")
        lines.append(f"| {r['level']} | {r['alpha']:.4f} | {r['source_test_acc']:.2f} | {ent} | {tgt} |")
    lines += ["", "![entropy and accuracy against alpha](entropy_vs_alpha.png)", ""]
    return "\n".join(lines)


def plot(summary: dict, path) -> None:
    """Figure 3 in two panels sharing the alpha axis: the exact entropy with its
    log2|D| ceiling; the per-neuron bound with the target top-1 on a twin axis."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["levels"] if "exact_bits" in r]
    alphas = [r["alpha"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
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
        twin.set_ylabel("target top-1 (%)")
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    bottom.legend(handles, labels, fontsize=8, loc="lower left")
    top.set_title(f"Entropy and transfer accuracy vs alpha (target: {summary['target']})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())


def write_report(paths: RunPaths) -> dict:
    summary = build_summary(paths)
    plot(summary, paths.figure3_png)
    atomic.write_json(paths.report_json, summary)
    atomic.write_text(paths.report_md, markdown(summary))
    return summary
