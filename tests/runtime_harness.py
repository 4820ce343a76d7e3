"""Test helpers: generate + compile the C runtime for a .tflite, run it, run TFLM on the same inputs.

Usage:
    objs = runtime_objects(tmp_dir, sanitize=True)      # once per session
    exe, report = build_runtime(tflite_path, tmp_path, objs, sanitize=True)
    rc, out = run_runtime(exe, inputs_int8)            # inputs (N, ...) int8 -> outputs (N, D) int8
    ref = run_tflm(tflite_path, inputs_int8)           # TFLM's reference kernels, same shape

The C build is the one the firmware would use (C11, -Wall -Wextra -Werror),
plus optionally the address and undefined-behaviour sanitizers; the arena
is malloc'ed at exactly the planned size, so an access past the plan is
caught.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from entropi_tiny.codegen.model import generate_model_sources

ROOT = Path(__file__).resolve().parents[1]
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"]
RUNTIME_SOURCES = ("et_crc32.c", "et_sparse_image.c", "et_kernels_conv.c", "et_kernels_fast.c", "et_kernels_eltwise.c",
                   "et_runtime.c")
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def runtime_objects(work: Path, sanitize: bool = False) -> list[Path]:
    """Compile the runtime sources and the test driver once into object files."""
    work.mkdir(parents=True, exist_ok=True)
    flags = CFLAGS + (SANITIZE if sanitize else ["-O2"])
    objs = []
    for src in [ROOT / "firmware/src" / f for f in RUNTIME_SOURCES] + [ROOT / "firmware/tests/et_runtime_main.c"]:
        obj = work / (src.stem + ".o")
        subprocess.run(["gcc", *flags, f"-I{ROOT / 'firmware/include'}", f"-I{ROOT / 'firmware/src'}",
                        "-c", str(src), "-o", str(obj)], check=True, capture_output=True, text=True)
        objs.append(obj)
    return objs


def compile_model(gen_dir: Path, exe: Path, objs: list[Path], sanitize: bool = False) -> Path:
    flags = CFLAGS + (SANITIZE if sanitize else ["-O2"])
    r = subprocess.run(["gcc", *flags, f"-I{ROOT / 'firmware/include'}", f"-I{gen_dir}",
                        str(gen_dir / "et_model.c"), *map(str, objs), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return exe


def build_runtime(tflite_path: Path, work: Path, objs: list[Path], sanitize: bool = False, **gen_kwargs):
    """(executable, codegen report) for the model; gen_kwargs go to generate_model_sources."""
    gen = Path(work) / "gen"
    image = gen_kwargs.pop("image", None)
    report = generate_model_sources(Path(tflite_path), image, gen, name="et_model", **gen_kwargs)
    exe = compile_model(gen, Path(work) / ("et_run_asan" if sanitize else "et_run"), objs, sanitize)
    return exe, report


def run_runtime(exe: Path, inputs: np.ndarray, image: bytes | None = None, timing: bool = False):
    """(return code, outputs (N, D) int8 or None[, seconds per image])."""
    work = exe.parent
    (work / "inputs.bin").write_bytes(np.ascontiguousarray(inputs, np.int8).tobytes())
    args = [str(exe), str(work / "inputs.bin"), str(work / "outputs.bin")]
    if image is not None:
        (work / "image.bin").write_bytes(image)
        args.append(str(work / "image.bin"))
    env = dict(os.environ, ET_TIME="1") if timing else None
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr[-3000:]
    out = None
    if r.returncode == 0:
        out = np.frombuffer((work / "outputs.bin").read_bytes(), np.int8).reshape(len(inputs), -1)
    if timing:
        secs = float(r.stdout.split()[-1]) if r.returncode == 0 else None
        return r.returncode, out, secs
    return r.returncode, out


def run_tflm(tflite_path: Path, inputs: np.ndarray, arena_size: int = 8 << 20) -> np.ndarray:
    """TFLM's Python interpreter (reference kernels) on each input; (N, D) int8."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(tflite_path), arena_size=arena_size)
    shape = interp.get_input_details(0)["shape"]
    outs = []
    for x in inputs:
        interp.set_input(np.asarray(x, np.int8).reshape(shape), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1))
    return np.stack(outs).astype(np.int8)
