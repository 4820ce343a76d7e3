"""Run an int8 .tflite in TFLM and in LiteRT's reference kernels; size the TFLM arena.

Usage:
    q = quantize_images(images_nchw, model)          # float NCHW -> int8 NHWC
    out_tflm = run_tflm(path, q)                     # (N, D) int8
    out_ref = run_litert_ref(path, q)                # (N, D) int8, BUILTIN_REF kernels
    arena = min_arena_size(path)                     # bytes, probed in subprocesses
    feats = dequantize_output(out_tflm, model)       # float features

Every entry point validates the flatbuffer first (parse_tflite), so a
truncated or corrupt file is a one-line UserError, never a C++ crash.

TFLM equals LiteRT only with OpResolverType.BUILTIN_REF; LiteRT's default
XNNPACK kernels round differently (up to ~20 LSB, DESIGN.md section 3).

Arena size: TFLM segfaults when the arena is too small, so each candidate size
is tried in a child process (allocate + one invoke). The first child, with a
generous arena, reports the allocator's total; a bisection between a failing
and a working size then finds the exact minimum (to ARENA_STEP bytes). The
number holds for TFLM's reference kernels on this 64-bit host; on a 32-bit MCU
the per-tensor bookkeeping structs are smaller.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..errors import UserError
from .quiet import import_quietly
from .tflite_ops import io_quant, parse_tflite

ARENA_STEP = 16            # TFLM aligns arena allocations to 16 bytes
_PROBE = r"""
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
it = runtime.Interpreter.from_file(sys.argv[1], arena_size=int(sys.argv[2]))
d = it.get_input_details(0)
it.set_input(np.zeros(d["shape"], d["dtype"]), 0)
it.invoke()
if len(sys.argv) > 3:
    it.print_allocations()
"""


def quantize_images(images_nchw: np.ndarray, model) -> np.ndarray:
    """Float normalised NCHW images -> the model's int8 NHWC input (round to nearest)."""
    q = io_quant(model)["input"]
    x = np.asarray(images_nchw, np.float32).transpose(0, 2, 3, 1)
    return np.clip(np.round(x / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)


def dequantize_output(out_int8: np.ndarray, model) -> np.ndarray:
    q = io_quant(model)["output"]
    return (out_int8.astype(np.float32) - q["zero_point"]) * q["scale"]


def run_tflm(path: Path, inputs_int8: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """Outputs of the TFLM Python interpreter, one invoke per image."""
    runtime = import_quietly("tflite_micro.python.tflite_micro.runtime")

    path = Path(path)
    model = parse_tflite(path)
    if arena_size is None:            # generous: activations are far smaller than the file
        arena_size = 4 * path.stat().st_size + (8 << 20)
    it = runtime.Interpreter.from_file(str(path), arena_size=arena_size)
    shape = io_quant(model)["input"]["shape"]
    outs = []
    for x in inputs_int8:
        it.set_input(np.asarray(x, np.int8).reshape(shape), 0)
        it.invoke()
        outs.append(np.array(it.get_output(0)).reshape(-1))
    return np.stack(outs)


def run_litert_ref(path: Path, inputs_int8: np.ndarray) -> np.ndarray:
    """Outputs of ai-edge-litert with the reference (BUILTIN_REF) kernels."""
    litert = import_quietly("ai_edge_litert.interpreter")
    Interpreter, OpResolverType = litert.Interpreter, litert.OpResolverType

    path = Path(path)
    model = parse_tflite(path)
    it = Interpreter(model_path=str(path), num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    shape = io_quant(model)["input"]["shape"]
    outs = []
    for x in inputs_int8:
        it.set_tensor(inp["index"], np.asarray(x, np.int8).reshape(shape))
        it.invoke()
        outs.append(it.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(outs)


def _probe(path: Path, size: int, report: bool = False) -> subprocess.CompletedProcess:
    args = [sys.executable, "-c", _PROBE, str(path), str(size)] + (["report"] if report else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def min_arena_size(path: Path) -> int:
    """Smallest TFLM arena (bytes, multiple of ARENA_STEP) that allocates and invokes."""
    path = Path(path)
    parse_tflite(path)
    hi = 4 * path.stat().st_size + (8 << 20)
    first = _probe(path, hi, report=True)
    if first.returncode != 0:
        tail = (first.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"TFLM cannot run {path.name} even with a {hi}-byte arena: {tail[:160]}")
    m = re.search(r"Arena allocation total (\d+) bytes", first.stderr + first.stdout)
    guess = int(m.group(1)) if m else hi
    # Bracket the minimum tightly around the allocator's own total, then bisect.
    lo = max(0, guess - 1024)
    while lo > 0 and _probe(path, lo).returncode == 0:
        lo = lo // 2
    top = guess + 1024
    hi = top if _probe(path, top).returncode == 0 else hi
    lo, hi = lo // ARENA_STEP, -(-hi // ARENA_STEP)     # in steps; lo fails, hi works
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _probe(path, mid * ARENA_STEP).returncode == 0:
            hi = mid
        else:
            lo = mid
    return hi * ARENA_STEP
