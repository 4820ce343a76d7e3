"""Whole encoders from entropi_tiny.models to full-int8 .tflite, for the runtime's model tests.

Usage:
    model = build_model("resnet18", 10, width=0.25); prune_global(model, 0.1)
    data = encoder_tflite(model, calib_images_nchw)   # bytes; ops within the runtime's set

A small stand-in for the project's exporter (entropi_tiny/export on the
export branch) so these tests do not depend on it: it walks torchvision's
ResNet and MobileNetV3 modules, folds every BatchNorm into its conv, and
writes the forward pass as a tf.function with constant weights (NHWC). A
conv whose PyTorch padding is not TF's SAME becomes tf.pad + VALID, which
TFLite keeps as a PAD op (the fusion pass meets it). Hardsigmoid is
relu6(x + 3) / 6, as in the exporter. TensorFlow is imported lazily.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import ResNet
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation

from tf_ops import _tf, int8_tflite


def prune_global(model: nn.Module, alpha: float) -> None:
    """Keep the fraction alpha of conv weights with the largest magnitude (one global threshold)."""
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    flat = torch.cat([w.detach().abs().flatten() for w in convs])
    keep = int(round(alpha * flat.numel()))
    thr = torch.kthvalue(flat, flat.numel() - keep).values if 0 < keep < flat.numel() else (-1 if keep else np.inf)
    with torch.no_grad():
        for w in convs:
            w.mul_((w.abs() > thr).float())


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics, so folded biases and scales are not all alike."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d | None):
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is not None:
        s = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        w = w * s.view(-1, 1, 1, 1)
        b = (b - bn.running_mean.double()) * s + bn.bias.detach().double()
    return w.float().numpy(), b.float().numpy()


def _conv(tf, x, conv: nn.Conv2d, bn=None):
    w, b = _fold(conv, bn)
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    if conv.groups > 1:
        wt = tf.constant(w.transpose(2, 3, 0, 1))                   # [O,1,k,k] -> [k,k,C,1]
        op = lambda v, pad: tf.nn.depthwise_conv2d(v, wt, [1, s, s, 1], pad)  # noqa: E731
    else:
        wt = tf.constant(w.transpose(2, 3, 1, 0))                   # [O,I,k,k] -> [k,k,I,O]
        op = lambda v, pad: tf.nn.conv2d(v, wt, s, pad)  # noqa: E731
    if s == 1 and p == (k - 1) // 2:
        y = op(x, "SAME")
    else:
        y = op(tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]) if p else x, "VALID")
    return y + tf.constant(b)


def _act(tf, x, m):
    if isinstance(m, nn.ReLU):
        return tf.nn.relu(x)
    if isinstance(m, nn.ReLU6):
        return tf.nn.relu6(x)
    if isinstance(m, nn.Hardswish):
        return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)
    if isinstance(m, nn.Hardsigmoid):
        return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)
    if isinstance(m, (nn.Identity, nn.Dropout)):
        return x
    raise NotImplementedError(type(m).__name__)


def _cna(tf, x, seq: Conv2dNormActivation):
    mods = list(seq)
    y = _conv(tf, x, mods[0], mods[1] if len(mods) > 1 and isinstance(mods[1], nn.BatchNorm2d) else None)
    return _act(tf, y, mods[2]) if len(mods) > 2 else y


def _se(tf, x, se: SqueezeExcitation):
    s = tf.reduce_mean(x, [1, 2], keepdims=True)
    s = _act(tf, _conv(tf, s, se.fc1), se.activation)
    s = _act(tf, _conv(tf, s, se.fc2), se.scale_activation)
    return x * s


def _resnet(tf, m: ResNet, x):
    x = tf.nn.relu(_conv(tf, x, m.conv1, m.bn1))
    for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
        for blk in layer:
            y = tf.nn.relu(_conv(tf, x, blk.conv1, blk.bn1))
            y = _conv(tf, y, blk.conv2, blk.bn2)
            short = _conv(tf, x, blk.downsample[0], blk.downsample[1]) if blk.downsample is not None else x
            x = tf.nn.relu(y + short)
    return tf.reduce_mean(x, [1, 2])


def _mobilenet(tf, m, x):
    for feat in m.features:
        if isinstance(feat, Conv2dNormActivation):
            x = _cna(tf, x, feat)
            continue
        y = x
        for part in feat.block:
            y = _se(tf, y, part) if isinstance(part, SqueezeExcitation) else _cna(tf, y, part)
        x = x + y if feat.use_res_connect else y
    x = tf.reduce_mean(x, [1, 2])
    lin = m.classifier[0]
    x = tf.matmul(x, tf.constant(lin.weight.detach().numpy().T)) + tf.constant(lin.bias.detach().numpy())
    return _act(tf, x, m.classifier[1])


def encoder_tflite(model: nn.Module, calib_nchw: np.ndarray) -> bytes:
    """Full-int8 .tflite of the encoder (everything but the last Linear), calibrated on real images."""
    tf = _tf()
    model = model.eval()
    body = _resnet if isinstance(model, ResNet) else _mobilenet
    shape = (1, calib_nchw.shape[2], calib_nchw.shape[3], 3)
    fn = tf.function(lambda x: body(tf, model, x)).get_concrete_function(tf.TensorSpec(shape, tf.float32))

    def representative():
        for img in calib_nchw:
            yield [img.transpose(1, 2, 0)[None].astype(np.float32)]

    return int8_tflite(tf, fn, representative)


def quantize_input(images_nchw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    x = images_nchw.transpose(0, 2, 3, 1)
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)
