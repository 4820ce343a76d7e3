"""A user's own int8 .tflite end to end: no pruning, no selection, the file never changed.

The model is the tiny run's exported encoder, as a user would bring it; the
firmware is built in a new run folder and run on the QEMU twin.
"""
import json
import os
import subprocess

import pytest

from entropi_tiny import atomic
from entropi_tiny.export.tflite_ops import parse_tflite
from entropi_tiny.paths import RunPaths
from helpers import REPO, assert_one_line_error, cli_command, cli_env, run_cli

SMALL_FW = ("--set", "firmware.train_per_class=6", "--set", "firmware.test_per_class=4",
            "--set", "firmware.epochs=4")


@pytest.fixture(scope="module")
def user_tflite(tiny_run, tmp_path_factory):
    r = run_cli("export", "-q", "--run-dir", str(tiny_run))
    assert r.returncode == 0, r.stderr[-3000:]
    path = tmp_path_factory.mktemp("user") / "my_model.tflite"
    path.write_bytes(RunPaths(tiny_run).tflite.read_bytes())
    return path


def test_build_and_emulate_a_user_model(user_tflite, tmp_path):
    """No --target: the firmware runs inference only, on fixed inputs, and the twin
    still reports memory, instructions and bit-exactness against TFLM."""
    before = atomic.sha256_file(user_tflite)
    run_dir = tmp_path / "run"
    old = os.umask(0o022)
    try:
        r = run_cli("build", "-q", "--run-dir", str(run_dir), "--tflite", str(user_tflite),
                    "--board", "nucleo-f746", *SMALL_FW)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr[-3000:]
    paths = RunPaths(run_dir)
    assert not paths.levels_dir.exists() and not paths.entropy_json.exists()
    assert atomic.sha256_file(user_tflite) == before
    assert atomic.sha256_file(paths.user_tflite) == before
    assert (paths.board_dir("nucleo-f746") / "firmware.bin").stat().st_mode & 0o777 == 0o644
    r = run_cli("emulate", "--run-dir", str(run_dir), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    e = json.loads(r.stdout)
    assert e["inference_only"] and e["features"]["bit_exact"] and e["features"]["samples"] == 10
    assert e["instructions_per_inference"] > 0 and e["budgets_ok"]
    assert e["arena_bytes"] > 0 and 0 < e["stack_high_water_bytes"] < e["stack_bytes"]
    assert e["device_accuracy_after"] is None and e["instructions_per_sgd_step"] is None
    assert json.loads(paths.config.read_text())["data"]["target"] == "none"
    r = run_cli("status", "--run-dir", str(run_dir), "--json")
    rows = {row["stage"]: row["status"] for row in json.loads(r.stdout)}
    assert rows["build"] == "fresh" and rows["prune"] == "skipped"

    # A manifest edited by hand, or a file that no longer matches it: one line, no QEMU run.
    build = json.loads(paths.build_json.read_text())
    paths.build_json.write_text(json.dumps({k: v for k, v in build.items() if k != "boards"}))
    assert_one_line_error(run_cli("emulate", "--run-dir", str(run_dir)), "boards")
    paths.build_json.write_text(json.dumps(build))
    paths.samples_npz.write_bytes(b"garbage")
    assert_one_line_error(run_cli("emulate", "--run-dir", str(run_dir)), "samples.npz")

    other = tmp_path / "other.tflite"
    raw = bytearray(user_tflite.read_bytes())
    raw[-100] ^= 1
    other.write_bytes(bytes(raw))
    r = run_cli("build", "--run-dir", str(run_dir), "--tflite", str(other))
    assert_one_line_error(r, "already holds a different model")
    assert atomic.sha256_file(paths.user_tflite) == before


def test_model_with_an_unsupported_op_is_refused(user_tflite, tmp_path):
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(user_tflite.read_bytes(), 0)
    code = model.operatorCodes[model.subgraphs[0].operators[-1].opcodeIndex]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.LOGISTIC
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(bytes(b.Output()))
    r = run_cli("export", "--run-dir", str(tmp_path / "run"), "--tflite", str(bad))
    assert_one_line_error(r, "LOGISTIC")
    assert not (tmp_path / "run").exists()


def test_feature_tensor_cut_and_a_kill_between_renames(user_tflite, tmp_path):
    run_dir = tmp_path / "run"
    paths = RunPaths(run_dir)
    r = run_cli("export", "-q", "--run-dir", str(run_dir), "--tflite", str(user_tflite))
    assert r.returncode == 0, r.stderr[-3000:]
    g = parse_tflite(user_tflite)
    last_input = int(g.operators[-1].inputs[0])
    name = g.tensors[last_input].name
    # config.json is the first rename, the cut encoder the second: stop right after it.
    env = {**cli_env(), "ENTROPI_TEST_KILL_AFTER_RENAME": "2"}
    r = subprocess.run(cli_command("export", "-q", "--run-dir", str(run_dir),
                                   "--feature-tensor", name), cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 137, r.stderr[-2000:]
    r = run_cli("status", "--run-dir", str(run_dir), "--json")
    export = next(row for row in json.loads(r.stdout) if row["stage"] == "export")
    assert export["status"] == "stale" and "encoder_int8.tflite" in export["reason"]
    r = run_cli("codegen", "--run-dir", str(run_dir), "--json")    # recomputes the export first
    assert r.returncode == 0, r.stderr[-3000:]
    s = atomic.read_json(paths.export_json)
    assert s["cut"] and s["feature_tensor"] == name
    assert s["stage"]["outputs"]["model/encoder_int8.tflite"] == atomic.sha256_file(paths.tflite)
    cut = parse_tflite(paths.tflite).subgraphs[0]
    assert list(cut.outputs) == [last_input] and len(cut.operators) == len(g.operators) - 1
    assert atomic.sha256_file(paths.user_tflite) == atomic.sha256_file(user_tflite)
