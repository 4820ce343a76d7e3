"""Convert the TF translation of an encoder into a full-integer int8 .tflite.

Usage:
    tflite_bytes = convert_int8(tf_fn, calib_images_nchw)   # raises UserError on bad input
    write_tflite(path, tflite_bytes)                        # atomic

Post-training quantization with the TFLiteConverter: a representative dataset
of real target images (normalised float, NCHW turned NHWC, one image per step),
int8 input and output, TFLITE_BUILTINS_INT8 only, so every op is int8 with
per-channel int8 weights (symmetric, zero point 0) and int32 biases. After conversion the op list is
checked against what TFLM (and our own C runtime) can run; a forbidden op such
as DENSIFY, RELU_0_TO_1 or a QUANTIZE/DEQUANTIZE float island fails the export.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.modules.setdefault("triton", None)  # import-order crash, see DESIGN.md section 3

from ..atomic import write_bytes  # noqa: E402
from ..errors import UserError  # noqa: E402
from .quiet import import_quietly, quiet_fd2  # noqa: E402
from .tflite_ops import check_allowed_ops, parse_tflite  # noqa: E402

MAX_CALIB = 500   # more images barely move the ranges and cost seconds each


def convert_int8(tf_fn, calib_images_nchw: np.ndarray) -> bytes:
    """Full-integer int8 TFLite flatbuffer of `tf_fn`, calibrated on the images."""
    tf = import_quietly("tensorflow")

    calib = np.asarray(calib_images_nchw, dtype=np.float32)
    if calib.ndim != 4 or len(calib) == 0:
        raise UserError("the calibration set is empty: int8 export needs real target images")
    if calib.shape[1] != 3:
        raise UserError(f"calibration images must be NCHW with 3 channels, got shape {calib.shape}")
    calib = calib[:MAX_CALIB].transpose(0, 2, 3, 1)

    def representative():
        for img in calib:
            yield [img[None]]

    concrete = tf_fn.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], tf_fn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with quiet_fd2():
        data = converter.convert()
    check_allowed_ops(parse_tflite(data))
    return data


def write_tflite(path: Path, data: bytes) -> None:
    check_allowed_ops(parse_tflite(data))
    write_bytes(path, data)
