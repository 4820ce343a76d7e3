"""TensorFlow, LiteRT and TFLM print nothing on their way in (issue 17), so a command
that fails after loading them still ends with its one error line alone."""
import subprocess
import sys

from helpers import REPO, cli_env

SCRIPT = r"""
import torch  # import order, DESIGN.md section 3
from entropi_tiny.cli import main
from entropi_tiny.export.quiet import import_quietly
import entropi_tiny.export.tflite, entropi_tiny.export.tflm, entropi_tiny.export.convert
import_quietly("tensorflow")
import_quietly("tflite_micro.python.tflite_micro.runtime")
import_quietly("ai_edge_litert.interpreter")
import sys
sys.argv = ["entropi-tiny", "export", "--run-dir", sys.argv[1], "--tflite", sys.argv[1] + "/no.tflite"]
main()
"""


def test_no_log_line_precedes_the_error(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                       text=True, cwd=REPO, env=cli_env(), timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
