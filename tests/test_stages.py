"""The stage contract on real tiny runs: keys, staleness, the lock, kills between renames.

Every test reuses the session's tiny pruning run (conftest.tiny_run) by copying
its levels; the target is a small `imagefolder:` domain tree written from the
built-in data, so select and transfer take seconds.
"""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from entropi_tiny import atomic
from entropi_tiny.config import DataConfig
from entropi_tiny.data import load_task
from entropi_tiny.paths import RunPaths
from entropi_tiny.pruning.checkpoint import load_level
from helpers import REPO, TINY, assert_one_line_error, cli_command, cli_env, run_cli

PER_DOMAIN = 30          # images per class and domain
HEAD = ("--set", "transfer.epochs=5", "--set", "transfer.lr=0.001", "--set", "transfer.seeds=[0,1]")
KILL = "ENTROPI_TEST_KILL_AFTER_RENAME"


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    """<root>/<domain>/<class>/*.png: two domains of different built-in target
    images of the same five classes, PER_DOMAIN images per class in each."""
    root = tmp_path_factory.mktemp("domains")
    task = load_task("builtin", "target", DataConfig())
    labels = task.train.labels.numpy()
    for c, name in enumerate(task.classes):
        idx = np.flatnonzero(labels == c)
        for d, part in (("d1", idx[:PER_DOMAIN]), ("d2", idx[PER_DOMAIN:2 * PER_DOMAIN])):
            folder = root / d / name
            folder.mkdir(parents=True)
            for j, i in enumerate(part):
                img = task.train.images[i].permute(1, 2, 0).numpy()
                Image.fromarray(img).save(folder / f"{j:03d}.png")
    return root


def _copy_levels(tiny_run, dest):
    """A run folder holding only the tiny run's finished prune stage."""
    dest.mkdir(parents=True)
    shutil.copytree(tiny_run / "levels", dest / "levels")
    for name in ("prune.json", "config.json"):
        shutil.copy2(tiny_run / name, dest / name)
    return dest


def _ok(r):
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _accuracies(run_dir):
    rows = atomic.read_json(RunPaths(run_dir).transfer_json)["rows"]
    return json.dumps([{k: r[k] for k in ("level", "alpha", "test_acc_mean", "test_acc_std", "seeds")}
                       for r in rows])


def _status(run_dir, *args):
    r = _ok(run_cli("status", "--run-dir", str(run_dir), "--json", *args))
    return {row["stage"]: row for row in json.loads(r.stdout)}


@pytest.fixture(scope="module")
def switch(tiny_run, domains, tmp_path_factory):
    """select + transfer on domain d1, then on d2 in the same folder; and d2 in a fresh one."""
    tmp = tmp_path_factory.mktemp("switch")
    target = ("--target", f"imagefolder:{domains}")
    switched = _copy_levels(tiny_run, tmp / "switched")
    _ok(run_cli("transfer", "-q", "--run-dir", str(switched), *target, "--target-domains", "d1", *HEAD))
    first = atomic.read_json(RunPaths(switched).entropy_json)["rows"]
    # Only the domain changes (the folder and the image counts stay the same);
    # the target and head settings come from the run folder's config.json.
    _ok(run_cli("transfer", "-q", "--run-dir", str(switched), "--target-domains", "d2"))
    fresh = _copy_levels(tiny_run, tmp / "fresh")
    _ok(run_cli("transfer", "-q", "--run-dir", str(fresh), *target, "--target-domains", "d2", *HEAD))
    return switched, fresh, first


def _bits(rows):
    return [r["exact_bits"] for r in rows]


def test_domain_switch_equals_a_fresh_folder(switch):
    switched, fresh, first = switch
    assert _accuracies(switched) == _accuracies(fresh)
    ent = atomic.read_json(RunPaths(switched).entropy_json)["rows"]
    assert _bits(ent) == _bits(atomic.read_json(RunPaths(fresh).entropy_json)["rows"])
    assert _bits(ent) != _bits(first)                     # d1 really is other data


def test_status_names_the_input_that_changed(switch, domains):
    _, run_dir, _ = switch
    st = _status(run_dir)
    assert [st[s]["status"] for s in ("prune", "select", "transfer")] == ["fresh"] * 3
    assert st["report"]["status"] == "missing" and st["export"]["status"] == "missing"
    st = _status(run_dir, "--target-domains", "d1", "--set", "transfer.epochs=9")
    assert st["prune"]["status"] == "fresh"
    assert st["select"]["status"] == "stale" and "data.target_domains" in st["select"]["reason"]
    assert st["transfer"]["status"] == "stale"
    st = _status(run_dir, "--set", "transfer.epochs=9")    # options: status records nothing
    assert st["select"]["status"] == "fresh"
    assert st["transfer"]["status"] == "stale" and "transfer.epochs" in st["transfer"]["reason"]
    # Same file names and counts, other pixels: the content hash notices.
    some = sorted((domains / "d2").rglob("*.png"))
    saved = some[0].read_bytes()
    try:
        shutil.copy(some[1], some[0])
        st = _status(run_dir)
    finally:
        some[0].write_bytes(saved)
    assert st["select"]["status"] == "stale" and "target images changed" in st["select"]["reason"]
    assert json.loads(RunPaths(run_dir).config.read_text())["data"]["target_domains"] == ["d2"]
    assert json.loads(RunPaths(run_dir).config.read_text())["transfer"]["epochs"] == 5


def test_changed_prune_setting_is_refused_not_recomputed(tiny_run, tmp_path):
    run_dir = _copy_levels(tiny_run, tmp_path / "run")
    before = atomic.sha256_file(RunPaths(run_dir).level_checkpoint(0))
    r = run_cli("select", "--run-dir", str(run_dir), "--set", "prune.lr=0.3")
    assert_one_line_error(r, "prune.lr")
    assert "--replace-levels" in r.stderr and "--run-dir" in r.stderr
    assert atomic.sha256_file(RunPaths(run_dir).level_checkpoint(0)) == before
    assert json.loads(RunPaths(run_dir).config.read_text())["prune"]["lr"] != 0.3


def test_two_writers_on_one_folder(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    procs = [subprocess.Popen(cli_command("prune", "-q", "--run-dir", str(run_dir), *TINY,
                                          "--set", "prune.levels=1", "--set", "prune.epochs=1",
                                          "--set", f"prune.lr={lr}"),
                              cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for lr in (0.05, 0.07)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    err = next(e for code, e in results if code == 2).strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    assert "in use by pid" in err[0] or "prune.lr" in err[0]
    saved = json.loads(RunPaths(run_dir).config.read_text())
    meta = load_level(RunPaths(run_dir).level_checkpoint(0))[2]
    assert saved["prune"] == meta["config"]["prune"]


def _files(run_dir, names):
    return {n: (run_dir / n).read_bytes() for n in names}


def test_kill_after_every_rename_then_rerun_is_identical(tiny_run, domains, tmp_path):
    """transfer (which runs select) killed right after each of its renames, rerun
    each time until it finishes; then report killed after its k-th rename, for
    every k, and rerun. The final files equal an uninterrupted run's, byte for byte."""
    args = ("--target", f"imagefolder:{domains}", "--target-domains", "d1", *HEAD)
    whole = _copy_levels(tiny_run, tmp_path / "whole")
    _ok(run_cli("transfer", "-q", "--run-dir", str(whole), *args))
    _ok(run_cli("report", "-q", "--run-dir", str(whole)))
    names = ["config.json", "entropy.json", "transfer.json", "report.json", "report.md",
             "entropy_vs_alpha.png"]
    expected = _files(whole, names)

    killed = _copy_levels(tiny_run, tmp_path / "killed")
    env = {**cli_env(), KILL: "1"}
    for attempt in range(40):
        r = subprocess.run(cli_command("transfer", "-q", "--run-dir", str(killed), *args),
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode == 0:
            break
        assert r.returncode == 137, r.stderr[-2000:]
    else:
        pytest.fail("transfer made no progress between kills")
    assert attempt >= 5                        # it really was stopped at several renames
    for k in range(1, 4):                      # report: its PNG, report.json, report.md, manifest
        folder = tmp_path / f"report_{k}"
        shutil.copytree(killed, folder)
        r = subprocess.run(cli_command("report", "-q", "--run-dir", str(folder)), cwd=REPO,
                           env={**cli_env(), KILL: str(k)}, capture_output=True, text=True)
        assert r.returncode == 137, r.stderr[-2000:]
        assert _state(folder, "report").status != "fresh"
        _ok(run_cli("report", "-q", "--run-dir", str(folder)))
        assert _files(folder, names) == expected, k
    assert _files(killed, names[:3]) == {n: expected[n] for n in names[:3]}


def _state(run_dir, name):
    from entropi_tiny.config import config_from_dict
    from entropi_tiny.stages.contract import Run
    from entropi_tiny.stages.status import STAGES

    paths = RunPaths(run_dir)
    run = Run(config_from_dict(atomic.read_json(paths.config), "config.json"), paths)
    return dict(STAGES)[name](run)


def test_disk_full_is_one_line_and_leaves_no_temp(tmp_path, monkeypatch):
    import errno

    from entropi_tiny.errors import UserError

    def full(fd):           # buffered writes reach the disk at the flush before fsync
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError) as e:
        atomic.write_bytes(tmp_path / "x.bin", b"\0" * 5000)
    assert "disk full" in str(e.value) and "5,000 bytes" in str(e.value)
    assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic.write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("name,content,needle", [
    ("config.json", "[]", "config.json"),
    ("entropy.json", "[]", "entropy.json"),
    ("prune.json", '{"levels": [], "stage": {"name": "prune", "key": 3}}', "prune.json"),
])
def test_damaged_run_folder_files_are_one_line(tiny_run, tmp_path, name, content, needle):
    run_dir = _copy_levels(tiny_run, tmp_path / "run")
    (run_dir / name).write_text(content)
    r = run_cli("select", "--run-dir", str(run_dir))
    assert_one_line_error(r, needle)


@pytest.mark.parametrize("epoch", [10**6, -3])
def test_resume_file_with_an_epoch_out_of_range(tiny_run, tmp_path, epoch):
    """An unfinished level's partial.pt claiming 10**6 or -3 finished epochs is refused
    before any training, in one line (not a level finished untrained, nor extra epochs)."""
    from entropi_tiny.pruning.checkpoint import PARTIAL_FORMAT

    run_dir = _copy_levels(tiny_run, tmp_path / "run")
    paths = RunPaths(run_dir)
    model, masks, _ = load_level(paths.level_checkpoint(2))
    paths.level_checkpoint(2).unlink()
    paths.prune_summary.unlink()
    atomic.save_torch(paths.level_partial(2), {
        "format": PARTIAL_FORMAT, "state_dict": model.state_dict(), "optimizer": {},
        "masks": masks, "epoch": epoch, "losses": []})
    r = run_cli("prune", "-q", "--run-dir", str(run_dir))
    assert_one_line_error(r, "resume epoch must be an integer in")
    assert not paths.level_checkpoint(2).exists() and paths.level_partial(2).is_file()
