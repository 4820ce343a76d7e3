"""Kill-and-resume: a run killed with SIGKILL and rerun ends bit-identical to an
uninterrupted one; torchrun with two processes writes valid level checkpoints."""
import os
import signal
import subprocess
import time

import pytest
import torch

from entropi_tiny.paths import RunPaths
from entropi_tiny.pruning.checkpoint import load_level
from helpers import REPO, TINY, cli_command, cli_env, run_cli

LEVELS = 3


def _states(root):
    paths = RunPaths(root)
    out = []
    for level in range(LEVELS):
        model, masks, meta = load_level(paths.level_checkpoint(level))
        out.append((model.state_dict(), masks, meta))
    return out


def _assert_identical(a, b):
    for (sa, ma, meta_a), (sb, mb, meta_b) in zip(a, b):
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
        for k in ma:
            assert torch.equal(ma[k], mb[k]), k
        for k in ("alpha_actual", "train_acc", "test_acc", "train_loss"):
            assert meta_a[k] == meta_b[k], k


def _kill_when(run_dir, predicate, timeout=300):
    proc = subprocess.Popen(cli_command("prune", "--quiet", "--run-dir", str(run_dir), *TINY),
                            cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not predicate(RunPaths(run_dir)):
        assert proc.poll() is None, "run ended before the kill point"
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("whole")
    r = run_cli("prune", "--quiet", "--run-dir", str(root), *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    return _states(root)


@pytest.mark.parametrize("kill_point", [
    # mid level 0, after its first epoch checkpoint
    lambda p: p.level_partial(0).is_file(),
    # right after level 1's final checkpoint appeared
    lambda p: p.level_checkpoint(1).is_file(),
    # inside level 2, after its first epoch
    lambda p: p.level_partial(2).is_file(),
], ids=["level0-epoch1", "level1-done", "level2-epoch1"])
def test_sigkill_then_rerun_equals_uninterrupted(tmp_path, uninterrupted, kill_point):
    _kill_when(tmp_path, kill_point)
    assert not RunPaths(tmp_path).prune_summary.is_file()
    r = run_cli("prune", "--quiet", "--run-dir", str(tmp_path), *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_identical(uninterrupted, _states(tmp_path))
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("partial.pt"))


def test_finished_levels_are_skipped(tmp_path, uninterrupted):
    r = run_cli("prune", "--quiet", "--run-dir", str(tmp_path), *TINY)
    assert r.returncode == 0
    stamp = RunPaths(tmp_path).level_checkpoint(1).stat().st_mtime_ns
    r = run_cli("prune", "--quiet", "--run-dir", str(tmp_path), *TINY)
    assert r.returncode == 0
    assert RunPaths(tmp_path).level_checkpoint(1).stat().st_mtime_ns == stamp


def test_torchrun_two_processes(tmp_path):
    cmd = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29571",
           "-m", "entropi_tiny.cli", "prune", "--quiet", "--run-dir", str(tmp_path), *TINY]
    r = subprocess.run(cli_command()[:1] + cmd, cwd=REPO, env=cli_env(), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    states = _states(tmp_path)
    for level, (_, masks, meta) in enumerate(states):
        assert meta["level"] == level
        assert abs(meta["alpha_actual"] - 0.5 ** level) < 1e-3
        assert meta["test_acc"] > 20.0      # 5 classes: better than chance after training
        total = sum(m.numel() for m in masks.values())
        assert abs(sum(int(m.sum()) for m in masks.values()) / total - 0.5 ** level) < 1e-3
