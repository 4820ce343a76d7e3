"""The emulate stage: run the board's QEMU twin and measure on-device training.

Usage:
    result = run_emulate(RunPaths(Path("export/default")), stream=False)
    result["instructions_per_inference"], result["device_accuracy_after"]

Runs the twin's firmware headless under QEMU with `-icount shift=0` (its
counter then counts instructions exactly, so every run gives the same
numbers), parses the lines the firmware prints (see firmware/apps/entropi/
main.c), and checks them against the host: the CRC-32 of every embedded
sample's features against TFLM's, and the on-device top-1 against the same
SGD run in float32 on the host (entropi_tiny.head_reference). With `stream`
it runs the streaming image and feeds it samples over the serial port in
frames (good ones and deliberately damaged ones, docs/uart_frames.md),
then checks that every bad frame was refused and counted.
"""
from __future__ import annotations

import re
import zlib

import numpy as np

from . import atomic
from .boards import get_board
from .errors import UserError
from .paths import RunPaths

# Binary ACK frames share the console with the text lines, so a tag may
# follow frame bytes on the same line: search, don't anchor.
LINE = re.compile(r"(ET_[A-Z_]+) ?(.*)$")
PAIR = re.compile(r"(\w+)=(\S+)")


def parse_output(text: str) -> dict:
    """The firmware's ET_ lines: features CRCs, epochs, report, stream counts."""
    out = {"feat": {"train": {}, "test": {}}, "epochs": [], "report": None, "stream": None,
           "boot": None, "exit": None, "error": None}
    for raw in text.splitlines():
        m = LINE.search(raw.strip())
        if not m:
            continue
        tag, rest = m.groups()
        pairs = dict(PAIR.findall(rest))
        if tag == "ET_FEAT":
            split, index, crc = rest.split()
            out["feat"][split][int(index)] = int(crc, 16)
        elif tag == "ET_EPOCH":
            loss = pairs.get("loss", "-")
            out["epochs"].append({"epoch": int(rest.split()[0]),
                                  "loss": None if loss == "-" else float(loss),
                                  "accuracy": int(pairs["acc_bp"]) / 100.0})
        elif tag == "ET_REPORT":
            out["report"] = {k: int(v) for k, v in pairs.items()}
        elif tag == "ET_STREAM_DONE":
            out["stream"] = {k: int(v) for k, v in pairs.items()}
        elif tag == "ET_BOOT":
            out["boot"] = pairs
        elif tag == "ET_EXIT":
            out["exit"] = int(rest.split()[0])
        elif tag == "ET_ERROR":
            out["error"] = rest
    return out


def host_reference(build: dict, samples: dict) -> dict:
    """The same SGD, in float32 on the host, on TFLM's features of the same samples."""
    from .build import head_spec_from_dict
    from .head_reference import HeadReference

    spec = head_spec_from_dict(build["head_spec"])
    ref = HeadReference(spec)
    n_test = len(samples["test_y"])
    before = ref.evaluate(samples["test_features"], samples["test_y"])
    losses = ref.fit(samples["train_features"], samples["train_y"])
    after = ref.evaluate(samples["test_features"], samples["test_y"])
    return {"accuracy_before": 100.0 * before / n_test, "accuracy_after": 100.0 * after / n_test,
            "losses": [float(v) for v in losses]}


def _stream_messages(samples: dict, count: int) -> tuple[list[bytes], dict]:
    """Good SAMPLE frames interleaved with damaged ones (a flipped byte, line
    noise, a frame cut short, a length larger than any buffer), then END."""
    from .toolchain import frames

    rng = np.random.default_rng(0)
    expected = {"good": 0, "bad_crc": 0, "truncated": 0, "bad_length": 0, "garbage": 0}
    msgs, seq = [], 0

    def sample(j: int) -> bytes:
        nonlocal seq
        payload = bytes([int(samples["train_y"][j])]) + samples["train_q"][j].tobytes()
        seq += 1
        return frames.encode(frames.SAMPLE, (seq - 1) % 256, payload)

    for i in range(count):
        j = i % len(samples["train_y"])
        if i % 4 == 1:                           # one flipped payload byte: CRC-32 fails
            bad = bytearray(sample(j))
            bad[20] ^= 0x40
            msgs.append(bytes(bad))
            expected["bad_crc"] += 1
        elif i % 4 == 2:                         # line noise between frames
            msgs.append(bytes(rng.integers(0, 256, 37, dtype=np.uint8)))
            expected["garbage"] += 1
        elif i % 4 == 3:                         # the sender stops inside a frame
            msgs.append(sample(j)[:100])
            expected["truncated"] += 1
        msgs.append(sample(j))
        expected["good"] += 1
    header = bytearray(frames.encode(frames.SAMPLE, seq % 256, b"")[:6])
    header[4:6] = (60000).to_bytes(2, "little")  # longer than the device's frame buffer
    msgs.append(bytes(header) + bytes([frames.crc8(bytes(header[2:6]))]))
    expected["bad_length"] += 1
    msgs.append(frames.encode(frames.END, (seq + 1) % 256))
    return msgs, expected


def run_emulate(paths: RunPaths, stream: bool = False, stream_samples: int = 8,
                timeout: float = 600.0) -> dict:
    from .toolchain.op_profile import parse_op_profile
    from .toolchain.qemu import run_qemu

    if not paths.build_json.is_file():
        raise UserError(f"{paths.build_json} is missing; run `entropi-tiny build` first")
    build = atomic.read_json(paths.build_json)
    twin = build.get("twin")
    if not twin:
        raise UserError(f"board {build['board']} has no emulated twin")
    machine = get_board(twin).qemu_machine
    key = f"{twin}/stream" if stream else twin
    elf = paths.board_dir(twin) / ("stream" if stream else "") / "firmware.elf"
    with np.load(paths.samples_npz) as z:
        samples = {k: z[k] for k in z.files}
    feeder = None
    if stream:
        from .toolchain.frames import StopAndWait

        msgs, expected = _stream_messages(samples, stream_samples)
        feeder = StopAndWait(msgs)
    result = run_qemu(elf, timeout=timeout, stdin=feeder, machine=machine)
    text = result.uart_output.decode("utf-8", errors="replace")
    parsed = parse_output(text)
    if parsed["error"] or parsed["report"] is None or result.exit_code != 0:
        last = parsed["error"] or (text.strip().splitlines() or ["no output"])[-1][:160]
        raise UserError(f"the twin firmware failed (exit {result.exit_code}): {last}")
    out = _summarize(build, key, parsed, samples, result, stream and expected)
    out["ops"] = parse_op_profile(text, paths.generated_dir)   # per-op profile (s10-kernels)
    return out


def _feature_check(parsed: dict, samples: dict) -> dict:
    mismatches, total = 0, 0
    for split in ("train", "test"):
        feats = samples[f"{split}_features"]
        for i, row in enumerate(feats):
            total += 1
            if parsed["feat"][split].get(i) != zlib.crc32(row.astype(np.int8).tobytes()):
                mismatches += 1
    return {"samples": total, "mismatches": mismatches, "bit_exact": mismatches == 0}


def _summarize(build, key, parsed, samples, result, expected) -> dict:
    rep, sizes = parsed["report"], build["boards"][key]
    host = host_reference(build, samples)
    static_ram = sizes["ram_static"]
    total_sram = static_ram + sizes["stack_bytes"]
    budgets = {"flash": sizes["flash_used"] <= sizes["flash_budget"],
               "sram": total_sram <= sizes["ram_budget"],
               "stack": rep["stack_high_water"] < rep["stack_size"]}
    out = {"board": build["board"], "twin": key, "model": build["arch"], "width": build["width"],
           "alpha": build["alpha"], "level": build["level"],
           "flash_bytes": sizes["flash_used"], "static_ram_bytes": static_ram,
           "stack_bytes": sizes["stack_bytes"], "stack_high_water_bytes": rep["stack_high_water"],
           "arena_bytes": rep["arena"], "head_state_bytes": rep["head_state"],
           "total_sram_bytes": total_sram,
           "instructions_per_inference": rep["infer_total"] / rep["infer_count"],
           "instructions_per_inference_min": rep["infer_min"],
           "instructions_per_inference_max": rep["infer_max"],
           "instructions_per_sgd_step": rep["train_total"] / rep["sgd_steps"],
           "instruction_counter": "SysTick under qemu -icount shift=0 (exact, multiples of 40)",
           "device_accuracy_before": rep["acc_before_bp"] / 100.0,
           "device_accuracy_after": rep["acc_after_bp"] / 100.0,
           "host_accuracy_before": host["accuracy_before"],
           "host_accuracy": host["accuracy_after"],
           "device_epochs": parsed["epochs"], "host_losses": host["losses"],
           "features": _feature_check(parsed, samples),
           "budgets": budgets, "budgets_ok": all(budgets.values()),
           "qemu_wall_s": round(result.wall_s, 2)}
    if expected:
        out["stream"] = {"sent": expected, "device": parsed["stream"]}
    return out
