"""Runtime benchmark: sparse-image extractor vs the same runtime on a dense image vs TFLM, on the host.

Usage:
    .venv/bin/python benchmarks/bench_runtime.py [--out benchmarks/results/runtime.json]
        [--width 0.5] [--alphas 1,0.1,0.01] [--images 20] [--no-arena]

For each alpha a CIFAR ResNet18 (entropi_tiny.models, given width, random
BN statistics) is pruned by one global magnitude threshold and exported by
the project's exporter (ONNX -> int8 TFLite, calibrated on built-in target
images). The same .tflite then runs, on the same real images, in:
  - the generated C runtime with the sparse weight image (encodings chosen by size),
  - the same runtime with every tensor stored DENSE (all-zero channels are
    still folded into constants: that is part of the format),
  - TFLM's Python interpreter (reference kernels; C++ invoke time only).
Both C builds use gcc -O2 on this x86 host; times are per image, median of
3 passes. The three outputs must be bit-identical (checked). With --arena
(default) it also measures TFLM's minimum arena for full-width ResNet18 and
MobileNetV3-small (bisection in subprocesses) next to our static plan.
Host timings are indicative only: the Cortex-M7 has no cache for flash-
resident tables in the same way, and no SIMD is used here.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch  # noqa: F401  (import order: torch before TensorFlow, DESIGN.md 3)
import torchvision  # noqa: F401

sys.modules.setdefault("triton", None)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

from entropi_tiny.atomic import write_json  # noqa: E402
from entropi_tiny.config import DataConfig  # noqa: E402
from entropi_tiny.data import load_task, normalize  # noqa: E402
from entropi_tiny.export.convert import TFLITE_NAME, export_encoder  # noqa: E402
from entropi_tiny.export.sparse_format import DENSE  # noqa: E402
from entropi_tiny.export.tflite_ops import parse_tflite  # noqa: E402
from entropi_tiny.export.tflm import min_arena_size, quantize_images  # noqa: E402
from entropi_tiny.models import build_model, split_model  # noqa: E402
from runtime_harness import build_runtime, run_runtime, runtime_objects  # noqa: E402
from torch_to_tflite import prune_global, randomize_bn  # noqa: E402


def export(arch: str, width: float, alpha: float, calib, check, out: Path) -> Path:
    torch.manual_seed(0)
    model = build_model(arch, 10, width)
    randomize_bn(model)
    if alpha < 1:
        prune_global(model, alpha)
    enc, _ = split_model(model)
    export_encoder(enc.eval(), calib, check[:4], out, max_int8_checks=4, find_arena=False)
    return out / TFLITE_NAME


def time_tflm(path: Path, x: np.ndarray):
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(path), arena_size=64 << 20)
    shape = interp.get_input_details(0)["shape"]
    passes, outs = [], []
    for _ in range(3):
        outs = []
        t0 = time.perf_counter()
        for img in x:
            interp.set_input(img.reshape(shape), 0)
            interp.invoke()
            outs.append(np.array(interp.get_output(0)).reshape(-1))
        passes.append((time.perf_counter() - t0) / len(x))
    return statistics.median(passes), np.stack(outs).astype(np.int8)


def time_c(exe: Path, x: np.ndarray):
    runs = [run_runtime(exe, x, timing=True) for _ in range(3)]
    assert all(r[0] == 0 for r in runs), runs[0][0]
    return statistics.median(r[2] for r in runs), runs[0][1]


def run_alpha(alpha, args, calib, check, x_float, objs, work: Path) -> dict:
    t0 = time.time()
    path = export("resnet18", args.width, alpha, calib, check, work / f"a{alpha}")
    x = quantize_images(x_float, parse_tflite(path.read_bytes()))
    sparse_exe, sparse = build_runtime(path, work / f"a{alpha}/sparse", objs)
    dense_exe, dense = build_runtime(path, work / f"a{alpha}/dense", objs, allowed=(DENSE,))
    t_sparse, out_sparse = time_c(sparse_exe, x)
    t_dense, out_dense = time_c(dense_exe, x)
    t_tflm, out_tflm = time_tflm(path, x)
    same = bool(np.array_equal(out_sparse, out_tflm) and np.array_equal(out_dense, out_tflm))
    row = {
        "alpha": alpha, "images": len(x), "bit_exact": same,
        "sparse_image_bytes": sparse["image_size"], "dense_image_bytes": dense["image_size"],
        "tflite_bytes": path.stat().st_size, "arena_bytes": sparse["arena_size"],
        "seconds_per_image": {"sparse_runtime": t_sparse, "dense_runtime": t_dense, "tflm": t_tflm},
        "speedup_vs_dense_runtime": t_dense / t_sparse, "speedup_vs_tflm": t_tflm / t_sparse,
        "wall_seconds": round(time.time() - t0, 1),
    }
    print(f"alpha={alpha:<5} sparse {t_sparse * 1e3:8.2f} ms  dense-image {t_dense * 1e3:8.2f} ms  "
          f"TFLM {t_tflm * 1e3:8.2f} ms  (x{t_dense / t_sparse:.1f} vs dense, x{t_tflm / t_sparse:.1f} vs TFLM)  "
          f"image {sparse['image_size']} B  bit-exact {same}", flush=True)
    return row


def arena_rows(calib, check, objs, work: Path) -> list[dict]:
    from entropi_tiny.codegen.model import generate_model_sources

    rows = []
    for arch in ("resnet18", "mobilenet_v3_small"):
        path = export(arch, 1.0, 0.01, calib, check, work / f"arena_{arch}")
        ours = generate_model_sources(path, None, work / f"arena_{arch}/gen")["arena_size"]
        tflm = min_arena_size(path)
        rows.append({"arch": arch, "width": 1.0, "our_arena_bytes": ours, "tflm_min_arena_bytes": tflm,
                     "ratio": ours / tflm})
        print(f"{arch} full width: our arena {ours} B, TFLM {tflm} B ({ours / tflm:.1%})", flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/runtime.json")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--alphas", default="1,0.1,0.01")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--no-arena", action="store_true")
    args = ap.parse_args(argv)
    task = load_task("builtin", "target", DataConfig())
    calib = normalize(task.train.images[:32]).numpy()
    x_float = normalize(task.test.images[:args.images]).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        objs = runtime_objects(work / "obj")
        runs = [run_alpha(float(a), args, calib, x_float, x_float, objs, work) for a in args.alphas.split(",")]
        arenas = [] if args.no_arena else arena_rows(calib, x_float, objs, work)
    write_json(args.out, {
        "benchmark": "int8 extractor time per image on the host: sparse image vs dense image vs TFLM",
        "model": f"resnet18 width {args.width}, CIFAR stem, random BN statistics, global magnitude pruning",
        "host": "x86-64, gcc -O2, 1 thread; TFLM = tflite-micro Python interpreter (reference kernels)",
        "runs": runs, "arena": arenas,
        "notes": ("seconds_per_image: median of 3 passes over the images; the C timing covers "
                  "et_runtime_invoke plus input/output copies, TFLM's covers set_input/invoke/get_output. "
                  "dense_runtime = the same kernels on an image whose tensors are all DENSE, so it pays "
                  "the per-weight zero test of the iterator; its MACs equal the sparse run's."),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
