"""The README's figure block is what benchmarks/readme_figures.py renders from the JSON results.

Usage: .venv/bin/python -m pytest tests/test_readme_figures.py
"""
import json
import shutil
import subprocess
import sys

from helpers import REPO

SCRIPT = REPO / "benchmarks" / "readme_figures.py"


def check(readme, results) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--check", "--readme", str(readme),
                           "--results", str(results)], capture_output=True, text=True)


def test_readme_matches_the_benchmark_results():
    r = check(REPO / "README.md", REPO / "benchmarks" / "results")
    assert r.returncode == 0, r.stderr


def test_a_changed_result_makes_the_check_fail_and_the_script_mends_it(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(REPO / "benchmarks" / "results", results)
    readme = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", readme)
    d = json.loads((results / "sparse_image.json").read_text())
    d["bytes_per_nnz"] += 1.0
    (results / "sparse_image.json").write_text(json.dumps(d))
    r = check(readme, results)
    assert r.returncode == 1 and "make readme-figures" in r.stderr
    fix = subprocess.run([sys.executable, str(SCRIPT), "--readme", str(readme), "--results",
                          str(results)], capture_output=True, text=True)
    assert fix.returncode == 0, fix.stderr
    assert f"{d['bytes_per_nnz']:.2f} B per non-zero" in readme.read_text()
    assert check(readme, results).returncode == 0


def test_a_readme_without_the_block_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no figures here\n")
    r = check(readme, REPO / "benchmarks" / "results")
    assert r.returncode == 2 and r.stderr.startswith("error:")
