"""Export a trained (possibly pruned) encoder: float ONNX, full-int8 TFLite for TFLM,
and our sparse weight image.

Usage:
    from entropi_tiny.export.convert import export_encoder
    report = export_encoder(encoder, calib_images, check_images, out_dir)

Modules, in pipeline order: fold (BatchNorm into conv), onnx_export (+ onnxruntime
check), onnx_to_tf (NHWC TF graph), tflite (int8 conversion), tflite_ops (op
inspection and the allowed-op check), tflm (TFLM / LiteRT runs, arena size),
weights (pruned zeros stay zeros), convert (all of it, with the report), cut
(a user model cut at its feature tensor); then
tflite_model + flatbuf (the one .tflite reader: bounds-checked, its work
budgeted by the file size; tflite_ops is a layer over it), sparse_* (the sparse
weight image, docs/sparse_image.md), quiet (TensorFlow imported without its
log lines). This file imports nothing, so reading a
sparse image never loads TensorFlow; modules that do import torch first.
"""

import logging
import os

# TensorFlow's start-up chatter (oneDNN notices, CPU feature lines) is not ours
# to print; errors still come through. The absl lines that ignore this variable
# are dropped by quiet.import_quietly. torch warns that triton is missing (we
# hide it on purpose, DESIGN.md section 3) when the ONNX export loads its flop counter.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
logging.getLogger("torch.utils.flop_counter").setLevel(logging.ERROR)
