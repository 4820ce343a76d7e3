"""CI run of every coverage-guided fuzz target (firmware/fuzz/fuzz_targets.py) for 60 seconds.

Usage: .venv/bin/python -m pytest tests/test_fuzz.py      (about 1 minute per two targets)

Builds each target with clang-14 -fsanitize=fuzzer,address,undefined
through firmware/fuzz/run_fuzzers.py (the same runner as `make fuzz`),
seeds the image target with the writer's images for its schedule plus the
image of a real pruned int8 model, and runs the targets two at a time (the
machine has two cores). Any crash, sanitizer report, leak, timeout or OOM
fails the test with the runner's report: the reproducer's path, its first
bytes in hex and the sanitizer's stack. Each target must also have really
run (executions and coverage reported), so a target that cannot start fails,
and most inputs the image target added to its corpus must carry a valid
CRC (the custom mutator re-signs them), or the checks behind it went unfuzzed.
"""
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from entropi_tiny.export import sparse_format as fmt

from keras_models import pruned_cnn_tflite

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware/fuzz"))
from fuzz_targets import TARGETS  # noqa: E402

SECONDS = 60


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C toolchain")
def test_every_fuzz_target_runs_60_seconds_without_a_finding(tmp_path):
    assert shutil.which("clang-14"), "clang-14 missing: `make setup` installs clang-14 and libclang-rt-14-dev"
    model = tmp_path / "pruned_cnn.tflite"
    model.write_bytes(pruned_cnn_tflite())
    r = subprocess.run([sys.executable, str(ROOT / "firmware/fuzz/run_fuzzers.py"), "--seconds", str(SECONDS),
                        "--jobs", "2", "--work", str(tmp_path / "fuzz"), "--tflite", str(model)],
                       capture_output=True, text=True, timeout=SECONDS * len(TARGETS) + 600)
    print(r.stdout)
    assert r.returncode == 0, f"{r.stdout[-12000:]}\n{r.stderr[-3000:]}"
    summary = {s["target"]: s for s in json.loads((tmp_path / "fuzz/summary.json").read_text())}
    assert summary.keys() == {t.name for t in TARGETS}
    for name, s in summary.items():
        assert s["ok"] and not s["findings"], s
        assert s["execs"] > 1000 and s["coverage"] > 20 and s["seconds"] >= SECONDS - 5, s
    # The CRC fix-up mode works: most new image inputs carry a valid size and CRC, so they got past it.
    grown = [p.read_bytes() for p in (tmp_path / "fuzz/image/corpus").iterdir()]
    signed = [d for d in grown if len(d) >= 32 and struct.unpack_from("<II", d, 20) == (len(d), fmt.crc32(d[32:]))]
    assert len(grown) >= 20 and len(signed) >= len(grown) // 2, (len(signed), len(grown))
