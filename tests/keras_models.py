"""Small int8 .tflite models built directly with tf.keras, for tests.

Usage:
    data = pruned_cnn_tflite()      # bytes of a full-int8 model, pruned per layer
    data = pruned_cnn_tflite(tflite_sparsity=True)   # the same with TFLite's own sparse encoding

Independent of the project's ONNX->TFLite converter on purpose. TensorFlow is
imported inside the function, after torch/torchvision (see DESIGN.md 3).
"""
from __future__ import annotations

import functools
import sys

import numpy as np

# Fraction of weights kept per layer, chosen so the image chooser meets every encoding.
DENSITIES = {"conv_dense": 1.0, "dw_half": 0.5, "conv_12pct": 0.12, "conv_1pct": 0.01,
             "conv_empty": 0.0, "fc": 1.0}


def prune_by_magnitude(w: np.ndarray, keep: float) -> np.ndarray:
    """Zero all but the `keep` fraction of largest-magnitude weights."""
    n = int(round(keep * w.size))
    if n == 0:
        return np.zeros_like(w)
    threshold = np.sort(np.abs(w).ravel())[-n]
    return np.where(np.abs(w) >= threshold, w, 0).astype(w.dtype)


@functools.lru_cache(maxsize=None)  # built once per test session
def pruned_cnn_tflite(seed: int = 0, tflite_sparsity: bool = False) -> bytes:
    import torch  # noqa: F401  (import order, see module docstring)
    import torchvision  # noqa: F401

    sys.modules.setdefault("triton", None)
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    inp = tf.keras.Input((12, 12, 3))
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="conv_dense")(inp)
    x = L.ReLU()(L.BatchNormalization()(x))
    x = L.ReLU()(L.DepthwiseConv2D(3, padding="same", name="dw_half")(x))
    x = L.ReLU()(L.Conv2D(64, 3, padding="same", name="conv_12pct")(x))
    x = L.ReLU()(L.Conv2D(32, 3, strides=2, name="conv_1pct")(x))
    x = L.Conv2D(8, 1, name="conv_empty")(x)
    x = L.Dense(10, name="fc")(L.GlobalAveragePooling2D()(x))
    model = tf.keras.Model(inp, x)
    for name, keep in DENSITIES.items():
        layer = model.get_layer(name)
        weights = layer.get_weights()
        weights[0] = prune_by_magnitude(weights[0], keep)
        if len(weights) > 1:  # non-zero biases, so the image has something to carry
            weights[1] = np.random.default_rng(seed).normal(0, 0.1, weights[1].shape).astype(np.float32)
        layer.set_weights(weights)

    def representative():
        rng = np.random.default_rng(seed)
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 12, 12, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if tflite_sparsity:
        conv.optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()
