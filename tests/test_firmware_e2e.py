"""The whole path on the QEMU twin: build, run, and check against TFLM and the host.

The twin runs the same firmware as the board, with the F746's budgets in its
linker script; QEMU counts instructions exactly (-icount shift=0).
"""
import json

import pytest

from entropi_tiny import atomic
from entropi_tiny.config import load_config
from entropi_tiny.paths import RunPaths
from entropi_tiny.stages.sizing import make_sizing_run
from helpers import TINY, assert_one_line_error, run_cli

SMALL_FW = ("--set", "firmware.train_per_class=6", "--set", "firmware.test_per_class=4",
            "--set", "firmware.epochs=4", "--set", "export.calib_images=100",
            "--set", "export.check_images=20")


def _build_and_emulate(run_dir, *args):
    r = run_cli("build", "--quiet", "--run-dir", str(run_dir), *args)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_cli("emulate", str(run_dir), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def resnet_run(tiny_run):
    return tiny_run, _build_and_emulate(tiny_run, *TINY, *SMALL_FW)


def test_twin_trains_the_head_like_the_host(resnet_run):
    _, e = resnet_run
    required = {"board", "model", "alpha", "flash_bytes", "static_ram_bytes",
                "stack_high_water_bytes", "arena_bytes", "total_sram_bytes",
                "instructions_per_inference", "instructions_per_sgd_step",
                "device_accuracy_before", "device_accuracy_after", "host_accuracy", "budgets_ok"}
    assert required <= e.keys()
    assert e["board"] == "nucleo-f746" and e["model"] == "resnet18"
    assert e["features"]["bit_exact"] and e["features"]["samples"] == 50
    assert abs(e["device_accuracy_after"] - e["host_accuracy"]) <= 1.0
    assert e["budgets_ok"] and 0 < e["stack_high_water_bytes"] < 8192
    assert e["instructions_per_inference"] > 0 and e["instructions_per_sgd_step"] > 0
    assert e["instructions_per_inference_min"] == e["instructions_per_inference_max"] or \
        e["instructions_per_inference_min"] < e["instructions_per_inference_max"]


def test_instruction_counts_are_identical_across_runs(resnet_run):
    run_dir, first = resnet_run
    r = run_cli("emulate", str(run_dir), "--json")
    again = json.loads(r.stdout)
    for key in ("instructions_per_inference", "instructions_per_sgd_step",
                "stack_high_water_bytes", "device_accuracy_after"):
        assert again[key] == first[key], key


def test_board_image_links_within_budgets(resnet_run):
    run_dir, _ = resnet_run
    build = atomic.read_json(RunPaths(run_dir).build_json)
    board = build["boards"]["nucleo-f746"]
    assert board["flash_used"] <= board["flash_budget"] == 1024 * 1024
    assert board["ram_static"] + board["stack_bytes"] <= board["ram_budget"] == 320 * 1024
    folder = RunPaths(run_dir).board_dir("nucleo-f746")
    for name in ("firmware.elf", "firmware.bin", "firmware.hex", "firmware.map", "size.json"):
        assert (folder / name).is_file(), name


def test_streamed_samples_and_bad_frames(resnet_run):
    run_dir, _ = resnet_run
    r = run_cli("emulate", str(run_dir), "--stream", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)["stream"]
    sent, device = s["sent"], s["device"]
    assert device["trained"] == sent["good"]
    for kind in ("bad_crc", "truncated", "bad_length"):
        assert device[kind] == sent[kind], kind


def test_mobilenet_v3_small_on_the_twin(tmp_path):
    cfg = load_config("quick", overrides=["model.arch=mobilenet_v3_small", "model.width=0.25"])
    make_sizing_run(RunPaths(tmp_path), cfg, alpha=0.1)
    e = _build_and_emulate(tmp_path, *SMALL_FW)
    assert e["model"] == "mobilenet_v3_small"
    assert e["features"]["bit_exact"]
    assert abs(e["device_accuracy_after"] - e["host_accuracy"]) <= 1.0
    assert e["budgets_ok"]


def test_paper_case_resnet18_full_width_fits_the_f746(tmp_path):
    """ResNet18 at full width pruned to alpha ~ 0.0077, training a 5-class head on
    the device, within 1 MB of flash and 320 KB of SRAM, everything counted."""
    cfg = load_config("paper")
    make_sizing_run(RunPaths(tmp_path), cfg, alpha=0.0077)
    e = _build_and_emulate(tmp_path, "--preset", "paper", "--set", "firmware.train_per_class=4",
                           "--set", "firmware.test_per_class=2", "--set", "firmware.epochs=2",
                           "--set", "export.calib_images=100", "--set", "export.check_images=10")
    assert e["model"] == "resnet18" and e["width"] == 1.0
    assert abs(e["alpha"] - 0.0077) < 1e-3
    assert e["flash_bytes"] <= 1024 * 1024
    assert e["total_sram_bytes"] <= 320 * 1024
    assert e["budgets_ok"] and e["features"]["bit_exact"]


def test_a_rebuild_killed_after_the_twin_elf_is_never_emulated(resnet_run, tmp_path):
    """Issue 16's case: a rebuild (firmware.epochs 4 -> 2) killed right after the twin's
    firmware.elf is renamed into place. emulate must refuse the half-committed build (its
    build.json does not vouch for the new ELF) instead of running the new ELF against the old
    record; the rerun of build commits, and emulate then reports the new settings."""
    import shutil
    import subprocess

    from helpers import REPO, cli_command, cli_env

    run_dir, before = resnet_run
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    rebuild = ("build", "--quiet", "--run-dir", str(folder), *TINY, *SMALL_FW,
               "--set", "firmware.epochs=2")
    env = {**cli_env(), "ENTROPI_TEST_KILL_AFTER_RENAME": "mps2-an500/firmware.elf"}
    r = subprocess.run(cli_command(*rebuild), cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 137, r.stderr[-2000:]
    elf = RunPaths(folder).board_dir("mps2-an500") / "firmware.elf"
    assert elf.read_bytes() != (RunPaths(run_dir).board_dir("mps2-an500") / "firmware.elf").read_bytes()
    assert_one_line_error(run_cli("emulate", "--run-dir", str(folder)), "build")
    r = run_cli(*rebuild)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_cli("emulate", "--run-dir", str(folder), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    after = json.loads(r.stdout)
    assert after["features"]["bit_exact"] and before["features"]["bit_exact"]
    # epoch 0 is the fresh head, then one line per training epoch
    assert len(before["device_epochs"]) == 1 + 4 and len(after["device_epochs"]) == 1 + 2
