"""Size benchmark: our sparse weight image vs dense and TFLite-sparse .tflite, ResNet18-CIFAR.

Usage:
    .venv/bin/python benchmarks/bench_sparse_image.py [--out benchmarks/results/sparse_image.json]
        [--alphas 0.0077,0.01,0.1,1.0] [--no-stress]

Builds a full-width CIFAR ResNet18 directly in tf.keras (3x3 stem, stride 1,
no max-pool, 4 stages of 2 BasicBlocks, 64-128-256-512 channels, global
average pool, 10 classes), initialised like torchvision's ResNet (Kaiming
normal, fan_out) with random batch-norm statistics so the folded biases are
not zero. For each alpha it prunes all conv kernels by one global magnitude
threshold (the FC layer stays dense), converts to full-int8 TFLite, converts
again with Optimize.EXPERIMENTAL_SPARSITY, encodes our image from the dense
file and reports the three sizes side by side. The "stress" run gives every
conv layer the same weight distribution, so global pruning leaves every
layer at the same density: the hardest case for position coding.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch  # noqa: F401  (import order: torch/torchvision before TensorFlow, DESIGN.md 3)
import torchvision  # noqa: F401

sys.modules.setdefault("triton", None)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from entropi_tiny.atomic import write_json  # noqa: E402
from entropi_tiny.export.sparse_image import encode_model  # noqa: E402

TARGET = 2.25  # bytes per non-zero, all metadata included


def build_resnet18(tf, init: str, seed: int = 0):
    """CIFAR ResNet18 in tf.keras; init 'torchvision' or 'uniform' (same std in every conv)."""
    L = tf.keras.layers
    rng = np.random.default_rng(seed)

    def kinit():  # a fresh initializer per layer: a reused Keras 3 initializer repeats its values
        seed_i = int(rng.integers(2**31))
        if init == "torchvision":
            return tf.keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal", seed=seed_i)
        return tf.keras.initializers.RandomNormal(0.0, 0.05, seed=seed_i)

    def conv(x, ch, k, stride=1):
        return L.Conv2D(ch, k, stride, padding="same", use_bias=False, kernel_initializer=kinit())(x)

    def bn(x):
        return L.BatchNormalization()(x)

    inp = tf.keras.Input((32, 32, 3))
    x = L.ReLU()(bn(conv(inp, 64, 3)))
    cin = 64
    for stage, ch in enumerate([64, 128, 256, 512]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = L.ReLU()(bn(conv(x, ch, 3, stride)))
            y = bn(conv(y, ch, 3))
            short = bn(conv(x, ch, 1, stride)) if stride != 1 or cin != ch else x
            x = L.ReLU()(L.Add()([y, short]))
            cin = ch
    x = L.Dense(10)(L.GlobalAveragePooling2D()(x))
    model = tf.keras.Model(inp, x)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n),
                               rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)])
    return model


def prune_convs(tf, model, alpha: float) -> int:
    """Global magnitude pruning of every conv kernel to the fraction alpha; returns the kept count."""
    convs = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    kernels = [layer.get_weights()[0] for layer in convs]
    flat = np.concatenate([np.abs(k).ravel() for k in kernels])
    keep = int(round(alpha * flat.size))
    threshold = np.partition(flat, flat.size - keep)[flat.size - keep] if keep < flat.size else 0.0
    for layer, k in zip(convs, kernels):
        layer.set_weights([np.where(np.abs(k) >= threshold, k, 0.0).astype(np.float32)])
    return int(sum(np.count_nonzero(layer.get_weights()[0]) for layer in convs))


def convert(tf, model, sparse: bool) -> bytes:
    def representative():
        rng = np.random.default_rng(0)
        for _ in range(4):
            yield [rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)]

    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT] + ([tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else [])
    c.representative_dataset = representative
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = c.inference_output_type = tf.int8
    return c.convert()


def run(tf, alpha: float, init: str) -> dict:
    t0 = time.time()
    tf.keras.utils.set_random_seed(0)
    model = build_resnet18(tf, init)
    conv_nnz = prune_convs(tf, model, alpha)
    dense = convert(tf, model, sparse=False)
    sparse = convert(tf, model, sparse=True)
    image, report = encode_model(dense)
    t = report["totals"]
    nnz = t["nnz"]
    row = {
        "alpha": alpha, "init": init,
        "conv_params": sum(r["size"] for r in report["tensors"] if r["op"] == "CONV_2D"),
        "conv_nnz": conv_nnz, "nnz": nnz,
        "dense_tflite_bytes": len(dense),
        "tflite_sparse_bytes": len(sparse), "tflite_sparse_bytes_per_nnz": len(sparse) / nnz,
        "bytes": t["bytes"], "bytes_per_nnz": t["bytes_per_nnz"],
        "channels": t["channels"], "live_channels": t["live_channels"],
        "weight_bytes": t["weight_bytes"], "weight_bytes_per_nnz": t["weight_bytes_per_nnz"],
        "param_bytes": t["param_bytes"], "header_bytes": t["header_bytes"],
        "encodings": t["encodings"], "seconds": round(time.time() - t0, 1),
        "tensors": [{k: r[k] for k in ("tensor_index", "shape", "nnz", "density", "encoding", "bytes")}
                    for r in report["tensors"]],
    }
    print(f"alpha={alpha:<7} init={init:<11} nnz={nnz:>8}  dense.tflite={len(dense):>9} B  "
          f"tflite-sparse={len(sparse):>9} B ({len(sparse) / nnz:.2f} B/nnz)  "
          f"image={t['bytes']:>9} B ({t['bytes_per_nnz']:.3f} B/nnz; weights only "
          f"{t['weight_bytes_per_nnz']:.3f}; live channels {t['live_channels']}/{t['channels']})  {t['encodings']}", flush=True)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/sparse_image.json"))
    ap.add_argument("--alphas", default="0.0077,0.01,0.1,1.0")
    ap.add_argument("--no-stress", action="store_true", help="skip the equal-density stress run")
    args = ap.parse_args(argv)
    import tensorflow as tf

    runs = [run(tf, float(a), "torchvision") for a in args.alphas.split(",")]
    if not args.no_stress:
        runs.append(run(tf, 0.0077, "uniform"))
    head = runs[0]
    write_json(args.out, {
        "benchmark": "sparse weight image size, ResNet18-CIFAR int8",
        "target_bytes_per_nnz": TARGET,
        "bytes_per_nnz": head["bytes_per_nnz"], "alpha": head["alpha"],
        "meets_target": head["bytes_per_nnz"] <= TARGET,
        "image_format_version": 2,
        "weight_bytes_per_nnz": head["weight_bytes_per_nnz"],
        "notes": ("nnz counts every stored weight (pruned convs + the dense 512x10 FC); bytes is the "
                  "whole image (format v2): header, directory, live-channel bitmaps, offset tables, "
                  "positions, values, and everything the device needs to requantize: per live output "
                  "channel an int32 folded bias, int32 multiplier and int8 shift, per dead (all-zero) "
                  "channel its int8 output constant. weight_bytes: offset tables, positions and values only."),
        "runs": runs,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
