"""Export a (BatchNorm-folded) encoder to ONNX and check it with onnxruntime.

Usage:
    onnx_bytes = export_onnx(folded_encoder)
    err = check_onnx(onnx_bytes, encoder, images_nchw)   # raises UserError if > tolerance

We use torch's default (dynamo) exporter at opset 18 with onnxscript's graph
optimizer: it gives a clean graph (Conv, Relu, Add, Mul, HardSwish,
HardSigmoid, ReduceMean, Reshape, Gemm), where the legacy TorchScript exporter
sprinkles Identity nodes. The batch dimension stays dynamic so onnxruntime can
check many images in one call; the TFLite model fixes it to 1 later.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError

OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "features"
ABS_TOL = 1e-4


def export_onnx(module: nn.Module, image_size: int = 32) -> bytes:
    """Serialized ONNX model of `module` (eval mode), input NCHW float, batch dynamic."""
    module = module.eval()
    example = (torch.zeros(2, 3, image_size, image_size),)
    with tempfile.TemporaryDirectory(prefix="entropi-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        # The exporter prints progress lines and warnings; keep the CLI quiet.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    module, example, str(path), dynamo=True, opset_version=OPSET,
                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                    external_data=False, verbose=False)
            except Exception as e:  # noqa: BLE001 - an unexportable encoder is bad input
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise UserError(f"cannot export the encoder to ONNX: {msg[:200]}") from None
        return path.read_bytes()


def run_onnx(onnx_bytes: bytes, images_nchw: np.ndarray, batch: int = 256) -> np.ndarray:
    """Outputs of the ONNX model in onnxruntime (CPU), float32."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(images_nchw, dtype=np.float32)
    outs = [sess.run(None, {sess.get_inputs()[0].name: x[i:i + batch]})[0]
            for i in range(0, len(x), batch)]
    return np.concatenate(outs, axis=0)


def torch_features(module: nn.Module, images_nchw: np.ndarray, batch: int = 256) -> np.ndarray:
    module = module.eval()
    with torch.no_grad():
        outs = [module(torch.from_numpy(np.ascontiguousarray(images_nchw[i:i + batch], np.float32)))
                for i in range(0, len(images_nchw), batch)]
    return torch.cat(outs).numpy()


def check_onnx(onnx_bytes: bytes, reference: nn.Module, images_nchw: np.ndarray) -> float:
    """Max abs difference between onnxruntime and `reference` in PyTorch.

    The tolerance is ABS_TOL, scaled up by the feature magnitude when features
    exceed 1 (float32 rounding grows with the values); beyond it, UserError.
    """
    if len(images_nchw) == 0:
        raise UserError("no images to check the ONNX export with")
    ref = torch_features(reference, images_nchw)
    got = run_onnx(onnx_bytes, images_nchw)
    if got.shape != ref.shape:
        raise UserError(f"ONNX output shape {got.shape} differs from PyTorch's {ref.shape}")
    err = float(np.max(np.abs(got - ref)))
    tol = ABS_TOL * max(1.0, float(np.max(np.abs(ref))))
    if not err < tol:
        raise UserError(f"ONNX export differs from PyTorch by {err:.3g} (tolerance {tol:.3g})")
    return err
