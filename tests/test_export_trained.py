"""Export of a trained encoder: int8 features match float features on real target data.

Usage: .venv/bin/python -m pytest tests/test_export_trained.py

A ResNet18 at width 0.25 is trained briefly (4 epochs on 1500 built-in images) on 5 CIFAR-10 classes (the
source); the other 5 classes are the target: int8 calibration, a linear head
trained on float target-train features, and evaluation on target-test images
fed once as float features and once as TFLM int8 features. A 90%-pruned copy
checks that pruned zeros are still exact zeros in the int8 weights.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from entropi_tiny.export.convert import TFLITE_NAME, export_encoder
from entropi_tiny.export.onnx_export import torch_features
from entropi_tiny.export.tflite_ops import op_name, parse_tflite, tensor_array
from entropi_tiny.export.tflm import dequantize_output, quantize_images, run_litert_ref
from entropi_tiny.models import build_model, split_model

from export_helpers import SOURCE_CLASSES, TARGET_CLASSES, linear_probe, load_cifar, train_classifier


@pytest.fixture(scope="module")
def trained_model():
    x, y = load_cifar("train", SOURCE_CLASSES, per_class=300)
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=5, width=0.25)
    return train_classifier(model, x, y, epochs=4)


@pytest.fixture(scope="module")
def target():
    xtr, ytr = load_cifar("train", TARGET_CLASSES, per_class=200)
    # Evaluation: the 80 test images per class, plus the 100 train images per class
    # that neither the encoder (source classes only) nor the probe ever sees.
    xte, yte = load_cifar("test", TARGET_CLASSES, per_class=80)
    xho, yho = load_cifar("train", TARGET_CLASSES, per_class=100, offset=200)
    return xtr, ytr, np.concatenate([xte, xho]), np.concatenate([yte, yho])


@pytest.fixture(scope="module")
def trained_export(trained_model, target, tmp_path_factory):
    xtr, _, xte, _ = target
    encoder = split_model(trained_model)[0].eval()
    out = tmp_path_factory.mktemp("trained")
    calib = xtr[::5]                                  # 200 images, all 5 classes
    report = export_encoder(encoder, calib, xte, out, max_int8_checks=150)
    return encoder, out, report


def test_trained_int8_cosine(trained_export):
    _, _, report = trained_export
    print(f"int8 cosine mean {report['int8_cosine_mean']:.5f} min {report['int8_cosine_min']:.5f}, "
          f"arena {report['tflm_arena_bytes']} B, tflite {report['tflite_bytes']} B, {report['seconds']}")
    assert report["int8_images"] >= 100
    assert report["int8_cosine_mean"] >= 0.99, report["int8_cosine_mean"]
    assert report["tflm_bitexact_litert_ref"]
    assert report["onnx_max_abs_err"] < 1e-4


def test_linear_head_loses_at_most_one_point_on_int8_features(trained_export, target):
    encoder, out, _ = trained_export
    xtr, ytr, xte, yte = target
    predict = linear_probe(torch_features(encoder, xtr), ytr)
    acc_float = float((predict(torch_features(encoder, xte)) == yte).mean())
    path = out / TFLITE_NAME
    model = parse_tflite(path)
    # LiteRT's reference kernels: bit-exact with TFLM (checked in the export) and ~3x faster.
    f_int8 = dequantize_output(run_litert_ref(path, quantize_images(xte, model)), model)
    acc_int8 = float((predict(f_int8) == yte).mean())
    print(f"target top-1: float {acc_float:.4f}, int8 {acc_int8:.4f}")
    assert acc_float > 0.4                           # the encoder learned something
    assert acc_float - acc_int8 <= 0.01, (acc_float, acc_int8)


def global_magnitude_prune(model: nn.Module, fraction: float) -> int:
    """Zero the smallest `fraction` of all conv weights (one global threshold)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    flat = torch.cat([m.weight.detach().abs().flatten() for m in convs])
    k = int(fraction * flat.numel())
    threshold = flat.kthvalue(k).values
    with torch.no_grad():
        for m in convs:
            m.weight.mul_((m.weight.abs() > threshold).float())
    return sum(int((m.weight == 0).sum()) for m in convs)


def test_pruned_zeros_stay_exact_zeros(trained_model, target, tmp_path):
    xtr, _, xte, _ = target
    model = copy.deepcopy(trained_model)
    pruned = global_magnitude_prune(model, 0.9)
    encoder = split_model(model)[0].eval()
    out = tmp_path / "pruned"
    report = export_encoder(encoder, xtr[::10], xte[::5], out, max_int8_checks=20,
                            find_arena=False)
    z = report["weight_zeros"]
    assert z["unmatched"] == 0
    assert z["float_zeros"] == pruned
    assert z["kept_zero"] == pruned and z["lost_zero"] == 0
    # Independently: count zeros in the int8 conv weights of the file.
    m = parse_tflite(out / TFLITE_NAME)
    g = m.subgraphs[0]
    int8_zeros = sum(int((tensor_array(m, op.inputs[1]) == 0).sum()) for op in g.operators
                     if op_name(m, op) in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    assert int8_zeros >= pruned
    assert report["tflm_bitexact_litert_ref"]
