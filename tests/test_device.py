"""`twin`, `device` and `flash` through the real CLI: the QEMU twin on a real pty, pyserial,
the streaming firmware; fakes only for a physical board and its probes.

Usage: .venv/bin/python -m pytest tests/test_device.py
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from device_fakes import FakeBoard, fake_tools, logged_calls

from entropi_tiny import atomic
from entropi_tiny.stages.codegen import head_spec_from_dict
from entropi_tiny.device import protocol as P
from entropi_tiny.device.link import DeviceRefused, Link
from entropi_tiny.head_reference import HeadReference
from entropi_tiny.paths import RunPaths
from entropi_tiny.toolchain import frames as F
from helpers import REPO, TINY, assert_one_line_error, cli_command, cli_env, run_cli

# The same settings as test_firmware_e2e.py, so a session builds the tiny run once.
SMALL_FW = ("--set", "firmware.train_per_class=6", "--set", "firmware.test_per_class=4",
            "--set", "firmware.epochs=4", "--set", "export.calib_images=100",
            "--set", "export.check_images=20")


@pytest.fixture(scope="module")
def run(tiny_run):
    r = run_cli("build", "--quiet", "--run-dir", str(tiny_run), *TINY, *SMALL_FW)
    assert r.returncode == 0, r.stderr[-3000:]
    return RunPaths(tiny_run)


@pytest.fixture(scope="module")
def twin(run):
    proc = subprocess.Popen(cli_command("twin", "--run-dir", str(run.root), "--json"), cwd=REPO,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    info = json.loads(line)
    yield info
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    with pytest.raises(ProcessLookupError):   # QEMU went with it
        for _ in range(50):
            os.kill(info["qemu_pid"], 0)
            time.sleep(0.1)


def device(port: str, run: RunPaths, *args: str, timeout: str = "20"):
    return run_cli("device", "--port", port, "--run-dir", str(run.root), "--timeout", timeout,
                   "--quiet", *args)


def device_json(port: str, run: RunPaths, *args: str):
    r = device(port, run, *args, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_device_trains_like_the_host_reference(run, twin, tmp_path):
    port = twin["port"]
    info = device_json(port, run, "info")
    assert info["board"] == "mps2-an500" and info["version"] == F.PROTOCOL_VERSION
    assert info["firmware"]["matches"] is True and info["counter_unit"] == "instructions"
    assert info["streamed"] == 0 and info["head_from_boot"]

    z = np.load(run.samples_npz)
    build = atomic.read_json(run.build_json)
    spec = head_spec_from_dict(build["head_spec"])
    result = device_json(port, run, "train")
    n = len(z["train_y"])
    assert n >= 20 and result["samples"] == n   # resends (damaged frames) may happen: harmless

    # The host: the boot run's epochs over the embedded samples, then one SGD step per
    # streamed sample at the configured rate, on TFLM's features of the same images.
    ref = HeadReference(spec)
    ref.fit(z["train_features"], z["train_y"])
    losses = [float(ref.sgd_step(ref.dequantize(f), int(y), spec.lr))
              for f, y in zip(z["train_features"], z["train_y"])]
    host_correct = ref.evaluate(z["test_features"], z["test_y"])
    assert result["correct"] == host_correct
    assert result["accuracy"] == pytest.approx(100.0 * host_correct / len(z["test_y"]))
    np.testing.assert_allclose(result["losses"], losses, rtol=1e-4, atol=1e-6)

    ev = device_json(port, run, "eval")
    assert ev["correct"] == host_correct and ev["n"] == len(z["test_y"])

    files = []
    for i in range(3):
        files.append(tmp_path / f"test{i}.npy")
        np.save(files[-1], z["test_q"][i])
    rows = device_json(port, run, "predict", *map(str, files))
    for row, feat in zip(rows, z["test_features"]):
        assert row["class"] == ref.predict(ref.dequantize(feat))
        np.testing.assert_allclose(row["logits"], ref.forward(ref.dequantize(feat)), rtol=1e-4,
                                   atol=1e-5)
    # A picture goes through the pipeline's resize, normalisation and input quantization.
    from PIL import Image
    import torch

    from entropi_tiny.data import normalize
    from entropi_tiny.export.tflite_ops import parse_tflite
    from entropi_tiny.export.tflm import quantize_images

    rgb = np.random.default_rng(5).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "picture.png")
    small = np.asarray(Image.fromarray(rgb).resize((32, 32), Image.BILINEAR))
    q = quantize_images(normalize(torch.from_numpy(small.copy()).permute(2, 0, 1)[None]).numpy(),
                        parse_tflite(run.tflite))[0]
    np.save(tmp_path / "picture.npy", q)
    png, npy = device_json(port, run, "predict", str(tmp_path / "picture.png"),
                           str(tmp_path / "picture.npy"))
    assert png["logits"] == npy["logits"] and png["class"] == npy["class"]
    assert sum(png["scores"]) == pytest.approx(1.0)

    figures = atomic.read_json(run.root / "device" / "mps2-an500.json")
    assert figures["counter_unit"] == "instructions" and figures["per_inference"] > 0

    assert device_json(port, run, "reset-head")["streamed_before"] == n
    after = device_json(port, run, "info")
    assert after["streamed"] == 0 and not after["head_from_boot"]
    fresh = HeadReference(spec).evaluate(z["test_features"], z["test_y"])
    assert device_json(port, run, "eval")["correct"] == fresh


def test_a_retransmitted_sample_is_trained_once(run, twin):
    z = np.load(run.samples_npz)
    with Link.open(twin["port"], timeout=20) as link:
        before = P.parse_info(link.request(F.INFO))
        wire = F.encode(F.SAMPLE, 1, P.sample_payload(z["train_y"][0], z["train_q"][0],
                                                      before.sample_bytes, before.classes))
        acks = []
        for _ in range(2):           # the same frame twice: its ACK was "lost"
            link._write(wire)
            acks.append(link._wait_ack(1, time.monotonic() + 20))
        assert acks[0] is not None and acks[0] == acks[1]
        link.seq = 2
        after = P.parse_info(link.request(F.INFO))
        assert after.streamed == before.streamed + 1
        bad_label = bytes([before.classes]) + z["train_q"][0].tobytes()
        short = bytes([0]) + z["train_q"][0].tobytes()[:-1]
        for payload, status in ((bad_label, F.BAD_LABEL), (short, F.BAD_SIZE)):
            with pytest.raises(DeviceRefused) as e:
                link.request(F.SAMPLE, payload)
            assert e.value.status == status
        assert P.parse_info(link.request(F.INFO)).streamed == after.streamed


def test_bad_input_is_one_line_and_keeps_the_training(run, twin, tmp_path):
    port = twin["port"]
    streamed = device_json(port, run, "info")["streamed"]
    assert_one_line_error(device("/dev/no-such-tty", run, "info"), "does not exist")

    import serial
    with serial.Serial(port, exclusive=True):
        assert_one_line_error(device(port, run, "info"), "busy")

    master, slave = os.openpty()             # a port where nobody answers
    try:
        r = device(os.ttyname(slave), run, "--retries", "1", "info", timeout="0.5")
        assert_one_line_error(r, "no answer")
    finally:
        os.close(slave)
        os.close(master)

    other = RunPaths(tmp_path / "other")      # another run's firmware
    img = other.board_dir("mps2-an500") / "stream" / "firmware.bin"
    img.parent.mkdir(parents=True)
    img.write_bytes(b"another build")
    assert_one_line_error(device(port, other, "info"), "not this run's")
    assert_one_line_error(device(port, other, "train"), "not this run's")

    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((25, 16, 16, 3), np.int8), labels=np.zeros(25, np.uint8))
    assert_one_line_error(device(port, run, "train", "--samples", str(bad)), "does not match")
    assert device_json(port, run, "info")["streamed"] == streamed


def test_a_board_that_resets_mid_stream(run, tmp_path):
    image = run.board_dir("nucleo-f746") / "stream" / "firmware.bin"
    with FakeBoard(image) as board:           # a board's figures go beside the twin's
        r = device_json(board.port, run, "train", "--limit", "3")
        assert r["samples"] == 3 and r["counter_unit"] == "cycles"
    fig = atomic.read_json(run.root / "device" / "nucleo-f746.json")
    assert fig["counter_unit"] == "cycles" and fig["per_inference"] == 1_000_000
    with FakeBoard(image, reset_after=2) as board:
        r = device(board.port, run, "train", "--limit", "5", timeout="2")
        assert_one_line_error(r, "reset after 2 of 5 samples")


# -- flash: probes are outside this machine, so they are fakes on PATH ------------

@pytest.fixture
def board_image(tmp_path):
    paths = RunPaths(tmp_path / "run")
    image = paths.board_dir("nucleo-f746") / "stream" / "firmware.bin"
    image.parent.mkdir(parents=True)
    image.write_bytes(os.urandom(4096))
    return paths, image


def flash(paths, tmp_path, bindir, *args):
    env = {"PATH": str(bindir), "ENTROPI_TINY_MOUNT_ROOTS": str(tmp_path / "media")}
    return run_cli_env(env, "flash", "--run-dir", str(paths.root), "--json", *args)


def run_cli_env(extra: dict, *args: str):
    env = {**cli_env(), **extra}
    return subprocess.run(cli_command(*args), capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=120)


def test_flash_without_a_probe_is_one_line(board_image, tmp_path):
    paths, _ = board_image
    (tmp_path / "media").mkdir()
    r = flash(paths, tmp_path, fake_tools(tmp_path, {}))
    assert_one_line_error(r, "no probe found")
    assert "NODE_F746ZG" in r.stderr and "stlink-tools" in r.stderr and "openocd" in r.stderr


def test_flash_finds_fake_probes_in_order(board_image, tmp_path):
    paths, image = board_image
    bindir = fake_tools(tmp_path, {"st-flash": 0, "openocd": 0})
    r = flash(paths, tmp_path, bindir)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["probe"] == "st-flash"
    assert logged_calls(tmp_path, "st-flash") == [["--reset", "write", str(image), "0x08000000"]]
    assert logged_calls(tmp_path, "openocd") == []

    bindir = fake_tools(tmp_path, {"st-flash": 1})        # no board on the cable: next probe
    r = flash(paths, tmp_path, bindir)
    assert json.loads(r.stdout)["tried"] == ["drive", "st-flash", "openocd"]
    assert logged_calls(tmp_path, "openocd") == [
        ["-f", "board/st_nucleo_f7.cfg", "-c", f"program {image} 0x08000000 verify reset exit"]]

    drive = tmp_path / "media" / "user" / "NODE_F746ZG"   # the ST-LINK's drive comes first
    drive.mkdir(parents=True)
    r = flash(paths, tmp_path, bindir, "--drive-wait", "0.2")
    assert json.loads(r.stdout)["probe"] == "drive"
    assert (drive / "firmware.bin").read_bytes() == image.read_bytes()
    (drive / "FAIL.TXT").write_text("The interface firmware FAILED to reset/halt the target\n")
    assert_one_line_error(flash(paths, tmp_path, bindir, "--probe", "drive"), "FAILED to reset")
