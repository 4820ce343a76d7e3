"""The budget-matched dense control (pruning/control.py): epoch count, density, resume."""
import dataclasses
import shutil

import pytest
import torch

from entropi_tiny.config import PruneConfig, load_config
from entropi_tiny.paths import RunPaths
from entropi_tiny.pruning import imp
from entropi_tiny.pruning.checkpoint import load_level
from entropi_tiny.pruning.control import (control_paths, control_up_to, cumulative_epochs,
                                          run_controls)
from helpers import TINY

CFG = load_config("quick", overrides=[TINY[i + 1] for i in range(0, len(TINY), 2)])


def test_cumulative_epochs_counts_the_chain_and_rewinding():
    p = PruneConfig(epochs=3)
    assert [cumulative_epochs(p, k) for k in range(4)] == [3, 6, 9, 12]
    r = dataclasses.replace(p, rewind=True, rewind_epoch=1)
    assert [cumulative_epochs(r, k) for k in range(3)] == [3, 4, 4]


def test_control_up_to_follows_the_mode():
    for mode, want in (("none", 0), ("selected", 2), ("all", 5)):
        cfg = dataclasses.replace(CFG, prune=dataclasses.replace(CFG.prune, matched_control=mode))
        assert control_up_to(cfg, selected=2, last_level=5) == want


@pytest.fixture()
def run_copy(tiny_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(tiny_run, root)
    shutil.rmtree(root / "controls", ignore_errors=True)
    return RunPaths(root)


def test_control_trains_exactly_the_levels_cumulative_epochs(run_copy, monkeypatch):
    """Every epoch that runs is counted: the control of level k has trained, on top
    of the dense level 0 it starts from, exactly cumulative_epochs(k) - epochs(0)."""
    calls = []
    real = imp.train_epoch

    def counting(*args, **kwargs):
        calls.append(args[6])           # the level index given to train_epoch
        return real(*args, **kwargs)

    monkeypatch.setattr(imp, "train_epoch", counting)
    last = run_copy.existing_levels()[-1]
    rows = run_controls(CFG, run_copy, last)
    assert [r["level"] for r in rows] == list(range(1, last + 1))
    level0 = load_level(run_copy.level_checkpoint(0))[2]
    for k in range(1, last + 1):
        model, masks, meta = load_level(control_paths(run_copy).level_checkpoint(k))
        pruned = load_level(run_copy.level_checkpoint(k))[2]
        want = cumulative_epochs(CFG.prune, k)
        trained = level0["epochs_total"] + sum(calls.count(j) for j in range(1, k + 1))
        assert trained == want
        assert meta["epochs_total"] == want == pruned["epochs_total"]
        assert meta["alpha_actual"] == 1.0 and pruned["alpha_actual"] < 1.0
        assert all(bool(m.all()) for m in masks.values())
    assert len(calls) == sum(CFG.prune.epochs for _ in range(last))


def test_killed_control_resumes_bit_identical(run_copy, tmp_path, monkeypatch):
    whole = RunPaths(tmp_path / "whole")
    shutil.copytree(run_copy.root, whole.root)
    run_controls(CFG, whole, 1)
    real, seen = imp.train_epoch, []

    def dies_after_first_epoch(*args, **kwargs):
        if seen:
            raise KeyboardInterrupt      # as a kill between epochs would
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(imp, "train_epoch", dies_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_controls(CFG, run_copy, 1)
    assert control_paths(run_copy).level_partial(1).is_file()
    monkeypatch.setattr(imp, "train_epoch", real)
    run_controls(CFG, run_copy, 1)
    a = load_level(control_paths(whole).level_checkpoint(1))
    b = load_level(control_paths(run_copy).level_checkpoint(1))
    for k, v in a[0].state_dict().items():
        assert torch.equal(v, b[0].state_dict()[k]), k
    assert a[2]["epochs_total"] == b[2]["epochs_total"] == cumulative_epochs(CFG.prune, 1)
    assert not control_paths(run_copy).level_partial(1).exists()


def test_the_control_mode_may_change_but_a_prune_setting_is_refused(run_copy):
    from entropi_tiny.errors import UserError
    from entropi_tiny.stages.contract import Run
    from entropi_tiny.stages.prune import guard_levels

    other = dataclasses.replace(CFG, prune=dataclasses.replace(CFG.prune, matched_control="all"))
    guard_levels(Run(other, run_copy, quiet=True))       # no level depends on it
    faster = dataclasses.replace(CFG, prune=dataclasses.replace(CFG.prune, lr=0.2))
    with pytest.raises(UserError, match="prune.lr"):
        guard_levels(Run(faster, run_copy, quiet=True))


def test_control_stage_is_keyed_vouched_and_listed_by_status(run_copy):
    """The control checkpoints are a stage: its manifest vouches for them, a
    changed input makes it stale, a tampered checkpoint is never trusted."""
    from entropi_tiny.stages.contract import Run
    from entropi_tiny.stages.control import control_state, run_control
    from entropi_tiny.stages.status import stage_rows

    cfg = dataclasses.replace(CFG, prune=dataclasses.replace(CFG.prune, matched_control="all"))
    run = Run(cfg, run_copy, quiet=True)
    assert control_state(run).status == "missing"
    manifest = run_control(run, run_copy.existing_levels()[-1])
    cp = control_paths(run_copy)
    assert set(manifest["stage"]["outputs"]) == {
        f"controls/levels/level_{k:02d}/checkpoint.pt" for k in range(1, 3)}
    assert control_state(run).status == "fresh"
    rows = {r["stage"]: r for r in stage_rows(run)}
    assert rows["control"]["status"] == "fresh" and rows["controls"]["status"] == "missing"
    level0 = run_copy.level_checkpoint(0)
    blob = level0.read_bytes()
    level0.write_bytes(blob + b"x")                       # the chain's start changed
    state = control_state(run)
    assert state.status == "stale"
    level0.write_bytes(blob)
    with open(cp.level_checkpoint(2), "ab") as f:           # a control changed behind its back
        f.write(b"x")
    state = control_state(run)
    assert state.status == "stale" and "level_02" in state.reason
