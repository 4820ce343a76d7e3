"""The export command on a real tiny run: TFLite, ONNX and sparse image, and bad input."""
import numpy as np

from entropi_tiny import atomic
from entropi_tiny.export.sparse_reader import decode_image
from entropi_tiny.export.tflite_model import load_tflite
from entropi_tiny.paths import RunPaths
from helpers import TINY, assert_one_line_error, run_cli


def test_export_selected_level(tiny_run):
    r = run_cli("export", "--run-dir", str(tiny_run), *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    paths = RunPaths(tiny_run)
    s = atomic.read_json(paths.export_json)
    assert s["level"] == atomic.read_json(paths.entropy_json)["selected_level"]
    assert s["tflm_bitexact_litert_ref"] is True
    assert s["int8_cosine_mean"] >= 0.99
    assert paths.onnx.is_file() and s["tflm_arena_bytes"] > 0
    # The image holds every int8 weight tensor of the .tflite, bit for bit.
    decoded = decode_image(paths.sparse_image.read_bytes())
    model = load_tflite(paths.tflite)
    assert decoded
    for index, weights in decoded.items():
        assert np.array_equal(weights, model.tensors[index].array()), index
    assert "bytes per non-zero" in r.stdout
    for chatter in ("absl::InitializeLog", "oneDNN", "triton", "I0000", "Warning:"):   # issue 17
        assert chatter not in r.stderr, r.stderr[-2000:]
    stamp = paths.sparse_image.stat().st_mtime_ns
    r = run_cli("export", "--quiet", "--run-dir", str(tiny_run), *TINY)
    assert r.returncode == 0 and paths.sparse_image.stat().st_mtime_ns == stamp


def test_export_from_truncated_tflite(tiny_run, tmp_path):
    src = RunPaths(tiny_run).tflite
    if not src.is_file():
        run_cli("export", "--quiet", "--run-dir", str(tiny_run), *TINY)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    out = tmp_path / "out"
    r = run_cli("export", "--run-dir", str(out), "--tflite", str(bad))
    assert_one_line_error(r, "bad.tflite")
    assert not out.exists()


def test_export_from_good_tflite(tiny_run, tmp_path):
    src = RunPaths(tiny_run).tflite
    if not src.is_file():
        run_cli("export", "--quiet", "--run-dir", str(tiny_run), *TINY)
    r = run_cli("export", "--quiet", "--run-dir", str(tmp_path), "--tflite", str(src))
    assert r.returncode == 0, r.stderr[-2000:]
    assert RunPaths(tmp_path).sparse_image.is_file()


def test_export_corrupt_checkpoint(tmp_path):
    paths = RunPaths(tmp_path)
    paths.level_checkpoint(0).parent.mkdir(parents=True)
    paths.level_checkpoint(0).write_bytes(b"\x80\x02garbage")
    r = run_cli("export", "--run-dir", str(tmp_path), "--level", "0")
    assert_one_line_error(r, "corrupt or foreign checkpoint")
    assert not paths.export_dir.exists()


def test_codegen_command(tiny_run):
    r = run_cli("codegen", "--run-dir", str(tiny_run), *TINY, "--set", "firmware.train_per_class=2",
                "--set", "firmware.test_per_class=1")
    assert r.returncode == 0, r.stderr[-3000:]
    gen = RunPaths(tiny_run).generated_dir
    for name in ("et_model.c", "et_model.h", "et_head_config.h", "et_head_data.c",
                 "et_samples.c", "et_samples.h"):
        assert "sha256" in (gen / name).read_text()[:400], name
    assert "arena plan" in r.stdout
