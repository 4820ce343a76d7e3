"""--source-seeds: one IMP sub-run per seed, later stages find them, report aggregates."""
import statistics

import pytest
import torch

from entropi_tiny import atomic
from entropi_tiny.paths import RunPaths
from entropi_tiny.pruning.checkpoint import load_level
from helpers import TINY, run_cli

SMALL = (*TINY, "--set", "prune.levels=2", "--set", "prune.epochs=1")
HEAD = ("--set", "transfer.epochs=3", "--set", "transfer.seeds=[0,1]")


def test_two_source_seeds_end_to_end(tmp_path):
    r = run_cli("prune", "--quiet", "--run-dir", str(tmp_path), *SMALL, "--source-seeds", "0,1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert atomic.read_json(tmp_path / "config.json")["prune"]["source_seeds"] == [0, 1]
    subs = [RunPaths(tmp_path / "seeds" / f"seed_{s}") for s in (0, 1)]
    for s, sub in zip((0, 1), subs):
        assert atomic.read_json(sub.config)["prune"]["seed"] == s
        assert sub.existing_levels() == [0, 1]
    w0, w1 = (load_level(sub.level_checkpoint(1))[0].state_dict() for sub in subs)
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)        # really different seeds
    # the later stages need no seed flag: the folder's config.json names them
    for stage in (("select",), ("transfer", "--all-levels", *HEAD), ("report",)):
        r = run_cli(*stage[:1], "--quiet", "--run-dir", str(tmp_path), *SMALL, *stage[1:])
        assert r.returncode == 0, (stage, r.stderr[-2000:])
    per_seed = [atomic.read_json(sub.report_json) for sub in subs]
    summary = atomic.read_json(RunPaths(tmp_path).report_json)
    agg = summary["aggregate"]
    for key, get in (("table1.pruned.top1_mean", lambda s: s["table1"]["pruned"]["top1_mean"]),
                     ("selection.oracle.target_acc", lambda s: s["selection"]["oracle"]["target_acc"]),
                     ("table1.matched_dense.top1_mean",
                      lambda s: s["table1"]["matched_dense"]["top1_mean"])):
        values = [get(s) for s in per_seed]
        assert agg[key]["values"] == values and agg[key]["n"] == 2
        assert agg[key]["mean"] == pytest.approx(statistics.fmean(values))
        assert agg[key]["std"] == pytest.approx(statistics.stdev(values))
    assert "selection.selected.regret" in agg
    text = RunPaths(tmp_path).report_md.read_text()
    assert "2 source seeds" in text and "+-" in text
    assert RunPaths(tmp_path).figure3_png.read_bytes()[:4] == b"\x89PNG"
