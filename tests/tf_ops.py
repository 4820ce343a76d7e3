"""Tiny full-int8 .tflite models, one or a few ops each, built from tf.functions for golden tests.

Usage:
    data = tflite_of("conv", input_shape=(1, 9, 7, 5), density=0.1, k=3, stride=2, padding="SAME")
    ops = op_names(data)

Each builder makes random weights pruned to `density` (one whole output
channel zeroed too, so live and dead channels meet), converts with a
representative dataset drawn from `calib` (an asymmetric range gives the
activations non-zero zero points, which exercises padding corrections)
and returns the .tflite bytes. TensorFlow is imported lazily, after
torch (see DESIGN.md section 3).
"""
from __future__ import annotations

import functools
import sys

import numpy as np


def _tf():
    import torch  # noqa: F401  (import order)
    import torchvision  # noqa: F401

    sys.modules.setdefault("triton", None)
    import tensorflow as tf

    return tf


def pruned(rng, shape, density, channel_axis):
    w = rng.normal(0, 0.5, shape).astype(np.float32)
    w *= rng.random(shape) < density
    if 0 < density < 1 and shape[channel_axis] > 2:
        idx = [slice(None)] * len(shape)
        idx[channel_axis] = 1
        w[tuple(idx)] = 0
    return w


def _act(tf, x, act):
    return {"NONE": lambda v: v, "RELU": tf.nn.relu, "RELU6": tf.nn.relu6}[act](x)


def _hswish(tf, x):
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def make_fn(tf, kind, shape, density, seed, k=3, stride=1, padding="SAME", act="NONE", cout=6,
            keep_dims=False):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    if kind in ("conv", "pad_conv", "block", "reshape", "block_chain"):
        w = tf.constant(pruned(rng, (k, k, c, cout), density, 3))
        b = tf.constant(rng.normal(0, 0.3, cout).astype(np.float32))
    if kind == "conv":
        return lambda x: _act(tf, tf.nn.conv2d(x, w, stride, padding) + b, act)
    if kind == "pad_conv":
        return lambda x: _act(tf, tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), w, stride, "VALID") + b, act)
    if kind == "dw":
        wd = tf.constant(pruned(rng, (k, k, c, 1), density, 2))
        bd = tf.constant(rng.normal(0, 0.3, c).astype(np.float32))
        return lambda x: _act(tf, tf.nn.depthwise_conv2d(x, wd, [1, stride, stride, 1], padding) + bd, act)
    if kind == "fc":
        wf = tf.constant(pruned(rng, (c, cout), density, 1))
        bf = tf.constant(rng.normal(0, 0.3, cout).astype(np.float32))
        return lambda x: _act(tf, tf.matmul(x, wf) + bf, act)
    if kind == "block":                       # conv -> relu -> conv, + x, relu: the ResNet pattern
        w2 = tf.constant(pruned(rng, (k, k, cout, c), density, 3))
        return lambda x: tf.nn.relu(tf.nn.conv2d(tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME") + b), w2, 1, "SAME") + x)
    if kind == "block_chain":                 # block -> stride-2 conv (PAD fused) -> mean: a ResNet stage
        w2 = tf.constant(pruned(rng, (k, k, cout, c), density, 3))
        w3 = tf.constant(pruned(rng, (k, k, c, cout), density, 3))

        def chain(x):
            y = tf.nn.relu(tf.nn.conv2d(tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME") + b), w2, 1, "SAME") + x)
            z = tf.nn.relu(tf.nn.conv2d(tf.pad(y, [[0, 0], [1, 1], [1, 1], [0, 0]]), w3, 2, "VALID") + b)
            return tf.reduce_mean(z, axis=[1, 2])
        return chain
    if kind == "reshape":
        return lambda x: tf.reshape(tf.nn.conv2d(x, w, stride, padding) + b, (1, -1))
    cvec = tf.constant(rng.normal(0, 1, c).astype(np.float32))
    return {
        "add_hswish": lambda x: x + _hswish(tf, x),
        "add_mean": lambda x: _act(tf, x + tf.reduce_mean(x, [1, 2], keepdims=True), act),
        "add_const": lambda x: tf.nn.relu6(x + cvec),
        "mul_mean": lambda x: x * tf.reduce_mean(x, [1, 2], keepdims=True),
        "mul_const": lambda x: x * 0.37,
        "mul_hswish": lambda x: _act(tf, x * _hswish(tf, x), act),
        "mean": lambda x: tf.reduce_mean(x, [1, 2], keepdims=keep_dims),
        "pad": lambda x: tf.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]]),
        "hswish": lambda x: _hswish(tf, x),
    }[kind]


@functools.lru_cache(maxsize=None)
def tflite_of(kind: str, input_shape: tuple, density: float = 1.0, seed: int = 0, calib=(-1.0, 1.0),
              **kw) -> bytes:
    tf = _tf()
    fn = make_fn(tf, kind, input_shape, density, seed, **kw)
    concrete = tf.function(fn).get_concrete_function(tf.TensorSpec(input_shape, tf.float32))

    def representative():
        rng = np.random.default_rng(seed + 1)
        for _ in range(16):
            yield [rng.uniform(calib[0], calib[1], input_shape).astype(np.float32)]

    return int8_tflite(tf, concrete, representative)


def int8_tflite(tf, concrete, representative) -> bytes:
    """Full-integer int8 conversion of a concrete function, without the exporter's op
    check: these test models use ops (FULLY_CONNECTED) the exporter never emits."""
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def op_names(data: bytes) -> list[str]:
    from entropi_tiny.export.tflite_model import read_tflite

    return [op.opcode for op in read_tflite(data).operators]
