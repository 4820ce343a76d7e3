"""The whole export of one encoder: float ONNX, int8 TFLite, and every check.

Usage:
    report = export_encoder(encoder, calib_images, check_images, Path("run/export"))
    # writes encoder.onnx, encoder_int8.tflite, export_report.json

Steps: fold BatchNorm -> ONNX (checked with onnxruntime against the original
PyTorch encoder) -> TF translation (checked against onnxruntime) -> int8
TFLite calibrated on `calib_images` (op list checked) -> TFLM and LiteRT
BUILTIN_REF on `check_images` (bit-exact flag, cosine similarity of the
dequantized features to PyTorch's) -> minimum TFLM arena. Images are float
normalised NCHW arrays (N, 3, 32, 32) of real target data.

Nothing is written to `out_dir` until every check has passed; then each file
is written atomically, the report last, so its presence means a complete export.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch  # noqa: F401  (import order: torch before TensorFlow, DESIGN.md section 3)
from torch import nn

sys.modules.setdefault("triton", None)

from ..atomic import write_bytes, write_json  # noqa: E402
from ..errors import UserError  # noqa: E402
from .fold import fold_batchnorm  # noqa: E402
from .onnx_export import check_onnx, export_onnx, run_onnx, torch_features  # noqa: E402
from .onnx_to_tf import onnx_to_tf  # noqa: E402
from .tflite import convert_int8  # noqa: E402
from .tflite_ops import describe_ops, io_quant, op_counts, parse_tflite  # noqa: E402
from .tflm import (dequantize_output, min_arena_size, quantize_images,  # noqa: E402
                   run_litert_ref, run_tflm)
from .weights import int8_weight_zeros  # noqa: E402

ONNX_NAME = "encoder.onnx"
TFLITE_NAME = "encoder_int8.tflite"
REPORT_NAME = "export_report.json"
TF_CHECK_IMAGES = 8          # the TF graph runs one image per call; a few suffice


def export_encoder(encoder: nn.Module, calib_images: np.ndarray, check_images: np.ndarray,
                   out_dir: Path, max_int8_checks: int = 100, find_arena: bool = True) -> dict:
    """Export `encoder` to out_dir/encoder.onnx and out_dir/encoder_int8.tflite; return the report."""
    calib_images = np.asarray(calib_images, np.float32)
    check_images = np.asarray(check_images, np.float32)
    if calib_images.ndim != 4 or len(calib_images) == 0:
        raise UserError("the calibration set is empty: int8 export needs real target images")
    if check_images.ndim != 4 or len(check_images) == 0:
        raise UserError("no check images: the export must be verified on real images")
    if calib_images.shape[1:] != check_images.shape[1:] or calib_images.shape[1] != 3:
        raise UserError(f"images must be (N, 3, H, W); got {calib_images.shape} and {check_images.shape}")
    size = calib_images.shape[-1]
    encoder = encoder.eval()
    t = {}

    t0 = time.perf_counter()
    folded = fold_batchnorm(encoder)
    onnx_bytes = export_onnx(folded, image_size=size)
    onnx_err = check_onnx(onnx_bytes, encoder, check_images)
    t["onnx_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tf_fn = onnx_to_tf(onnx_bytes, image_size=size)
    few = check_images[:TF_CHECK_IMAGES]
    tf_out = np.concatenate([tf_fn(img[None].transpose(0, 2, 3, 1)).numpy() for img in few])
    ort_out = run_onnx(onnx_bytes, few)
    tf_err = float(np.max(np.abs(tf_out - ort_out)))
    if not tf_err < 1e-4 * max(1.0, float(np.max(np.abs(ort_out)))):
        raise UserError(f"the TF translation differs from ONNX by {tf_err:.3g}")
    t["tf_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tfl_bytes = convert_int8(tf_fn, calib_images)
    model = parse_tflite(tfl_bytes)
    t["convert_s"] = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="entropi-tflite-") as tmp:
        path = Path(tmp) / TFLITE_NAME
        path.write_bytes(tfl_bytes)
        t0 = time.perf_counter()
        imgs = check_images[:max_int8_checks]
        q = quantize_images(imgs, model)
        out_tflm = run_tflm(path, q)
        out_ref = run_litert_ref(path, q)
        t["verify_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        arena = min_arena_size(path) if find_arena else None
        t["arena_s"] = time.perf_counter() - t0

    ref = torch_features(encoder, imgs)
    deq = dequantize_output(out_tflm, model)
    cos = _cosine(deq, ref)
    report = {
        "onnx_bytes": len(onnx_bytes),
        "tflite_bytes": len(tfl_bytes),
        "onnx_ops": dict(sorted(_onnx_op_counts(onnx_bytes).items())),
        "tflite_ops": dict(sorted(op_counts(model).items())),
        "tflite_op_variants": op_variants(model),
        "io_quant": io_quant(model),
        "onnx_max_abs_err": onnx_err,
        "tf_max_abs_err": tf_err,
        "int8_images": int(len(imgs)),
        "int8_cosine_mean": float(cos.mean()),
        "int8_cosine_min": float(cos.min()),
        "tflm_bitexact_litert_ref": bool(np.array_equal(out_tflm, out_ref)),
        "tflm_litert_ref_max_lsb": int(np.max(np.abs(out_tflm.astype(int) - out_ref.astype(int)))),
        "tflm_arena_bytes": arena,
        "weight_zeros": int8_weight_zeros(folded, model),
        "seconds": {k: round(v, 2) for k, v in t.items()},
    }
    out_dir = Path(out_dir)
    json.dumps(report)           # fail on an unserialisable field before writing anything
    write_bytes(out_dir / ONNX_NAME, onnx_bytes)
    write_bytes(out_dir / TFLITE_NAME, tfl_bytes)
    write_json(out_dir / REPORT_NAME, report)
    return report


def op_variants(model) -> list[dict]:
    """Distinct (op, options) combinations with counts: what a C runtime must implement."""
    seen: dict[str, dict] = {}
    for d in describe_ops(model):
        key_fields = {k: v for k, v in d.items() if k not in ("inputs", "outputs", "per_channel")}
        if d["op"] in ("MEAN", "PAD", "RESHAPE"):
            key_fields = {k: v for k, v in key_fields.items() if k not in ("new_shape",)}
        key = repr(sorted(key_fields.items()))
        entry = seen.setdefault(key, {**_plain(key_fields), "count": 0})
        entry["count"] += 1
    return list(seen.values())


def _plain(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def _onnx_op_counts(onnx_bytes: bytes) -> dict:
    counts: dict[str, int] = {}
    for n in onnx.load_from_string(onnx_bytes).graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), 1.0)
