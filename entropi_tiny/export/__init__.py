"""Export a trained (possibly pruned) encoder: float ONNX and full-int8 TFLite for TFLM.

Usage:
    from entropi_tiny.export import export_encoder
    report = export_encoder(encoder, calib_images, check_images, out_dir)

Modules, in pipeline order: fold (BatchNorm into conv), onnx_export (+ onnxruntime
check), onnx_to_tf (NHWC TF graph), tflite (int8 conversion), tflite_ops
(flatbuffer validation and op inspection), tflm (TFLM / LiteRT runs, arena
size), weights (pruned zeros stay zeros), pipeline (all of it, with the report).
Importing this package imports torch first, then TensorFlow lazily: keep it so.
"""
from .pipeline import ONNX_NAME, REPORT_NAME, TFLITE_NAME, export_encoder

__all__ = ["export_encoder", "ONNX_NAME", "TFLITE_NAME", "REPORT_NAME"]
