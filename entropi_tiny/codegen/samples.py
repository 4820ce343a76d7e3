"""Embedded target samples: int8 images and labels as C tables in flash.

Usage:
    report = generate_sample_sources(out_dir, train_q, train_y, test_q, test_y, "sha256...")
    # writes et_samples.h and et_samples.c

The images are already quantized to the encoder's int8 input (NHWC, the
.tflite's input scale and zero point), so the firmware feeds them to the
extractor as they are. `pick_balanced` chooses the same number of samples
from every class, first ones first, so a small budget still covers each class.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .emit import banner, inputs_digest, render, write_sources


def pick_balanced(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` samples of each class, interleaved by class."""
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]
    if any(len(g) == 0 for g in groups):
        raise UserError("a class has no samples to embed")
    rows = [g[i] for i in range(max(len(g) for g in groups)) for g in groups if i < len(g)]
    return np.asarray(rows, dtype=np.int64)


def c_int8_rows(images: np.ndarray, per_line: int = 24) -> list[str]:
    """One C initializer per image: its int8 values, line-wrapped."""
    out = []
    for img in images.reshape(len(images), -1):
        vals = [str(int(v)) for v in img]
        lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
        out.append(",\n        ".join(lines))
    return out


def fixed_inputs(shape: tuple[int, ...], count: int, seed: int) -> np.ndarray:
    """`count` int8 inputs of `shape`, uniform over -128..127 from a seeded generator:
    the samples of an inference-only firmware (no target data)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(count, *shape), dtype=np.int16).astype(np.int8)


def generate_sample_sources(out_dir: Path, train_q: np.ndarray, train_y: np.ndarray,
                            test_q: np.ndarray, test_y: np.ndarray, model_sha256: str,
                            inference_only: bool = False) -> dict:
    for name, q, y in (("train", train_q, train_y), ("test", test_q, test_y)):
        if q.dtype != np.int8 or q.ndim != 4 or len(q) != len(y) or len(q) == 0:
            raise UserError(f"embedded {name} samples must be a non-empty int8 (N, H, W, C) array "
                            "with one label each")
    if train_q.shape[1:] != test_q.shape[1:]:
        raise UserError("train and test samples differ in shape")
    digest = inputs_digest({"model_sha256": model_sha256, "train": train_q.astype(np.float32),
                            "train_labels": train_y.astype(np.float32),
                            "test": test_q.astype(np.float32),
                            "test_labels": test_y.astype(np.float32),
                            **({"inference_only": True} if inference_only else {})})
    context = {"banner": banner("entropi_tiny.codegen.samples", digest,
                                f"the model with sha256 {model_sha256[:16]}..."),
               "model_sha256": model_sha256, "sample_bytes": int(np.prod(train_q.shape[1:])),
               "inference_only": bool(inference_only),
               "shape": list(train_q.shape[1:]),
               "sets": [{"name": "train", "count": len(train_q), "rows": c_int8_rows(train_q),
                         "labels": ", ".join(str(int(v)) for v in train_y)},
                        {"name": "test", "count": len(test_q), "rows": c_int8_rows(test_q),
                         "labels": ", ".join(str(int(v)) for v in test_y)}]}
    out_dir = Path(out_dir)
    files = {"et_samples.h": render("et_samples.h.j2", **context),
             "et_samples.c": render("et_samples.c.j2", **context)}
    write_sources(out_dir, files)
    return {"files": sorted(files), "train": len(train_q), "test": len(test_q),
            "flash_bytes": (len(train_q) + len(test_q)) * (context["sample_bytes"] + 1),
            "inputs_sha256": digest}
