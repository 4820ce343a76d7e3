"""select, transfer, report and profile on a tiny real run, and their bad inputs."""
import json
import shutil

import pytest

from entropi_tiny import atomic
from entropi_tiny.paths import RunPaths
from entropi_tiny.selection.entropy import select_level
from helpers import TINY, assert_one_line_error, run_cli

HEAD = ("--set", "transfer.epochs=5", "--set", "transfer.lr=0.001", "--set", "transfer.seeds=[0,1]")


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


def test_select_writes_table_and_picks_the_argmax(run):
    r = run_cli("select", "--run-dir", str(run), *TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    table = atomic.read_json(RunPaths(run).entropy_json)
    assert [row["level"] for row in table["rows"]] == [0, 1, 2]
    for row in table["rows"]:
        assert 0 <= row["exact_bits"] <= row["max_bits"] + 1e-9
        assert row["exact_bits"] <= row["bound_bits"] + 1e-9
        assert row["n_samples"] == 1500
    assert table["selected_level"] == select_level(table["rows"], "exact")
    assert "selected" in r.stdout and "bits" in r.stdout
    r = run_cli("select", "--run-dir", str(run), *TINY, "--json", "--criterion", "bound")
    by_bound = json.loads(r.stdout)
    best = max(by_bound["rows"], key=lambda row: row["bound_bits"])
    assert by_bound["selected_level"] == best["level"]


def test_transfer_and_report(run):
    r = run_cli("transfer", "--quiet", "--run-dir", str(run), *TINY, *HEAD)
    assert r.returncode == 0, r.stderr[-2000:]
    result = atomic.read_json(RunPaths(run).transfer_json)
    levels = {row["level"] for row in result["rows"]}
    assert levels == {0, result["selected_level"]}
    for row in result["rows"]:
        assert len(row["seeds"]) == 2
        assert 30.0 < row["test_acc_mean"] <= 100.0      # 5 classes: well above chance
    r = run_cli("transfer", "--quiet", "--all-levels", "--run-dir", str(run), *TINY, *HEAD)
    assert r.returncode == 0
    assert len(atomic.read_json(RunPaths(run).transfer_json)["rows"]) == 3
    r = run_cli("report", "--run-dir", str(run), *TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    paths = RunPaths(run)
    assert paths.figure3_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = atomic.read_json(paths.report_json)
    t1, chosen = summary["table1"], summary["table1"]["pruned"]["level"]
    assert {"dense", "pruned", "matched_dense"} <= set(t1)
    # the matched control has seen the selected level's epochs, and is dense
    assert t1["matched_dense"]["epochs"] == t1["pruned"]["epochs"] == 2 * (chosen + 1)
    assert t1["matched_dense"]["alpha"] == 1.0 and t1["matched_dense"]["n_seeds"] == 2
    extras = atomic.read_json(paths.root / "controls.json")
    if chosen > 0:
        ctl = next(r for r in extras["controls"] if r["level"] == chosen)
        assert ctl["epochs_total"] == ctl["cumulative_epochs"] == 2 * (chosen + 1)
        assert t1["matched_dense"]["top1_mean"] == ctl["test_acc_mean"]
    assert [r["level"] for r in extras["holdout"]] == [0, 1, 2]
    q = summary["selection"]
    accs = {r["level"]: r["target_acc_mean"] for r in summary["levels"]}
    assert q["n_evaluated"] == 3 and accs[q["oracle"]["level"]] == max(accs.values())
    assert q["selected"]["regret"] == pytest.approx(max(accs.values()) - accs[chosen])
    assert set(q["spearman"]) == {"exact", "bound", "subset"}
    assert set(q["baselines"]) == {"sparsest", "best_source", "holdout", "dense"}
    text = paths.report_md.read_text()
    assert "Table 1" in text and "dense, matched epochs" in text and "regret" in text


def test_profile_json_matches_paper_frozen_rows():
    r = run_cli("profile", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)
    fields = {"model", "mode", "mflops", "memory_mb", "paper_mflops", "paper_memory_mb"}
    assert all(fields <= row.keys() for row in rows)
    got = {(row["model"], row["mode"]): row for row in rows}
    for name in ("resnet18", "mobilenet_v3_large"):
        frozen = got[(name, "frozen")]
        assert round(frozen["mflops"], 2) == frozen["paper_mflops"]
        assert round(frozen["memory_mb"], 2) == frozen["paper_memory_mb"]
        assert got[(name, "full")]["mflops"] > 1000 * frozen["mflops"]


def test_select_without_levels(tmp_path):
    r = run_cli("select", "--run-dir", str(tmp_path))
    assert_one_line_error(r, "no level checkpoints")
    assert list(tmp_path.iterdir()) == []


def test_select_m_below_two_writes_nothing(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run / "levels", copy / "levels")
    r = run_cli("select", "--run-dir", str(copy), "--levels-m", "1")
    assert_one_line_error(r, "'select.levels_m' must be in [2, 256]")
    assert not RunPaths(copy).entropy_json.exists()


def test_select_empty_target_writes_nothing(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run / "levels", copy / "levels")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    r = run_cli("select", "--run-dir", str(copy), "--target", f"imagefolder:{tmp_path / 'empty'}")
    assert_one_line_error(r, "no images")
    assert not RunPaths(copy).entropy_json.exists()
