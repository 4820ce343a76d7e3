"""The emulate stage: run the board's QEMU twin and measure on-device training.

Usage:
    result = run_emulate(Run(cfg, RunPaths(Path("export/default"))), stream=False)
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

It runs only an image that build.json vouches for (sha256) and only when
the build is fresh for the run folder's config, and writes emulator.json
with the sha256 of build.json and samples.npz as its inputs. It always
runs: it is a measurement, and its counts are exact.
"""
from __future__ import annotations

import re
import zlib

import numpy as np

from .. import atomic
from ..boards import get_board
from ..errors import UserError
from .build import build_state
from .contract import Run, commit

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
    from ..head_reference import HeadReference
    from .codegen import head_spec_from_dict

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
    from ..toolchain import frames

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


def fresh_build(run: Run) -> dict:
    """build.json, only when the build is fresh and its files are the ones it made."""
    paths = run.paths
    if not paths.build_json.is_file():
        raise UserError(f"{paths.build_json} is missing; run `entropi-tiny build` first")
    state = build_state(run)
    if state.status != "fresh":
        raise UserError(f"the build in {paths.root} is {state.status} ({state.reason}); "
                        "run `entropi-tiny build` first")
    return state.manifest


def run_emulate(run: Run, stream: bool = False, stream_samples: int = 8,
                timeout: float = 600.0) -> dict:
    from ..toolchain.op_profile import parse_op_profile
    from ..toolchain.qemu import run_qemu

    paths = run.paths
    build = fresh_build(run)
    twin = build.get("twin")
    if not twin:
        raise UserError(f"board {build['board']} has no emulated twin")
    machine = get_board(twin).qemu_machine
    key = f"{twin}/stream" if stream else twin
    if key not in build["boards"]:
        raise UserError(f"{paths.build_json} is damaged: it has no image {key}; rerun "
                        "`entropi-tiny build`")
    if stream and build.get("inference_only"):
        raise UserError("an inference-only firmware (no target data) has no head to stream "
                        "samples to; build with --target to use --stream")
    elf = paths.board_dir(twin) / ("stream" if stream else "") / "firmware.elf"
    samples = load_samples(paths.samples_npz)
    feeder = None
    if stream:
        from ..toolchain.frames import StopAndWait

        msgs, expected = _stream_messages(samples, stream_samples)
        feeder = StopAndWait(msgs)
    result = run_qemu(elf, timeout=timeout, stdin=feeder, machine=machine)
    text = result.uart_output.decode("utf-8", errors="replace")
    parsed = parse_output(text)
    if parsed["error"] or parsed["report"] is None or result.exit_code != 0:
        last = parsed["error"] or (text.strip().splitlines() or ["no output"])[-1][:160]
        raise UserError(f"the twin firmware failed (exit {result.exit_code}): {last}")
    out = _summarize(build, key, parsed, samples, result, stream and expected)
    out["ops"] = parse_op_profile(text, paths.generated_dir)   # per-op profile
    return out


def load_samples(path) -> dict:
    """samples.npz as codegen wrote it (the manifest vouched for its bytes)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"{path} is damaged ({type(e).__name__}); rerun `entropi-tiny build`") \
            from None


def record(run: Run, result: dict) -> dict:
    """emulator.json, keyed on the build and the samples it checked against."""
    p = run.paths
    inputs = {f"file:{p.rel(f)}": atomic.sha256_file(f) for f in (p.build_json, p.samples_npz)}
    run.begin_writes()
    return commit(run, "emulate", p.emulator_json, inputs, [], result)


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
    inference_only = bool(build.get("inference_only"))
    none = {"accuracy_before": None, "accuracy_after": None, "losses": []}
    host = none if inference_only else host_reference(build, samples)
    device = (lambda bp: None) if inference_only else (lambda bp: bp / 100.0)
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
           "instructions_per_sgd_step": rep["train_total"] / rep["sgd_steps"]
           if rep["sgd_steps"] else None,
           "inference_only": inference_only,
           "instruction_counter": "SysTick under qemu -icount shift=0 (exact, multiples of 40)",
           "device_accuracy_before": device(rep["acc_before_bp"]),
           "device_accuracy_after": device(rep["acc_after_bp"]),
           "host_accuracy_before": host["accuracy_before"],
           "host_accuracy": host["accuracy_after"],
           "device_epochs": parsed["epochs"], "host_losses": host["losses"],
           "features": _feature_check(parsed, samples),
           "budgets": budgets, "budgets_ok": all(budgets.values()),
           "qemu_wall_s": round(result.wall_s, 2)}
    if expected:
        out["stream"] = {"sent": expected, "device": parsed["stream"]}
    return out
