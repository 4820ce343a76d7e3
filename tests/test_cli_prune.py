"""The prune command's bad inputs: one line on stderr, exit 2, nothing written."""
import pytest
import torch

from entropi_tiny.paths import RunPaths
from helpers import TINY, assert_one_line_error, run_cli


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0 and "prune" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["--arch", "vgg11"], "unknown model 'vgg11'"),
    (["--source", "imagenet"], "unknown dataset 'imagenet'"),
    (["--set", "prune.epoch=3"], "unknown config key 'prune.epoch'"),
    (["--set", "model.width=wide"], "model.width"),
    (["--source", "imagefolder:/nonexistent/data"], "does not exist"),
])
def test_bad_input_writes_nothing(tmp_path, args, needle):
    run_dir = tmp_path / "run"
    r = run_cli("prune", "--run-dir", str(run_dir), *args)
    assert_one_line_error(r, needle)
    assert not run_dir.exists()


def test_empty_data_folder(tmp_path):
    (tmp_path / "data").mkdir()
    r = run_cli("prune", "--run-dir", str(tmp_path / "run"), "--source", f"imagefolder:{tmp_path / 'data'}")
    assert_one_line_error(r, "is empty")
    assert not (tmp_path / "run").exists()


def test_missing_config_file(tmp_path):
    r = run_cli("prune", "--run-dir", str(tmp_path / "run"), "--config", str(tmp_path / "no.toml"))
    assert_one_line_error(r, "cannot read config file")


@pytest.mark.parametrize("content,needle", [
    (b"this is not a checkpoint", "corrupt or foreign checkpoint"),
    (None, "foreign checkpoint"),
])
def test_corrupt_or_foreign_level_checkpoint(tmp_path, content, needle):
    paths = RunPaths(tmp_path)
    paths.level_checkpoint(0).parent.mkdir(parents=True)
    if content is None:
        torch.save({"weights": torch.zeros(3)}, paths.level_checkpoint(0))
    else:
        paths.level_checkpoint(0).write_bytes(content)
    r = run_cli("prune", "--quiet", "--run-dir", str(tmp_path), *TINY)
    assert_one_line_error(r, needle)
    assert paths.level_checkpoint(0).is_file()          # the user's file is left alone
    assert not paths.level_checkpoint(1).exists()


def test_malicious_pickle_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    paths = RunPaths(tmp_path)
    paths.level_checkpoint(0).parent.mkdir(parents=True)
    torch.save({"format": "entropi-tiny/level-v1", "x": Evil()}, paths.level_checkpoint(0))
    r = run_cli("prune", "--quiet", "--run-dir", str(tmp_path), *TINY)
    assert_one_line_error(r, "corrupt or foreign checkpoint")
    assert "pwned" not in r.stdout


def test_config_mismatch_protects_finished_work(tmp_path):
    r = run_cli("prune", "--quiet", "--run-dir", str(tmp_path), *TINY, "--set", "prune.levels=1")
    assert r.returncode == 0, r.stderr
    r = run_cli("prune", "--quiet", "--run-dir", str(tmp_path), *TINY, "--set", "prune.levels=1",
                "--set", "prune.lr=0.2")
    assert_one_line_error(r, "prune.lr")
