"""CNN encoders adapted to 32x32 inputs, and their split into encoder and head.

Usage:
    model = build_model("resnet18", num_classes=5, width=0.25)
    encoder, head = split_model(model)   # head is the last nn.Linear
    features = encoder(images)            # (N, feature_dim)

All models are torchvision's own modules. ResNet18 gets the usual CIFAR stem
(3x3 conv, stride 1, no max-pool); MobileNetV3 keeps its architecture but
drops the stride of the stem and of the first strided block, so a 32x32
image ends at 4x4 before pooling instead of 1x1. A width multiplier scales
every channel count for small, fast runs.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, mobilenet_v3_small
from torchvision.models.resnet import BasicBlock, ResNet

from .config import ARCHS
from .errors import UserError


def build_model(arch: str, num_classes: int, width: float = 1.0) -> nn.Module:
    """A freshly initialised classifier for 32x32 RGB images."""
    if width <= 0:
        raise UserError(f"model width must be positive, got {width}")
    if arch == "resnet18":
        return _cifar_resnet18(num_classes, width)
    if arch == "mobilenet_v3_small":
        return _cifar_mobilenet(mobilenet_v3_small, num_classes, width)
    if arch == "mobilenet_v3_large":
        return _cifar_mobilenet(mobilenet_v3_large, num_classes, width)
    raise UserError(f"unknown model '{arch}' (choose from {', '.join(ARCHS)})")


def _cifar_resnet18(num_classes: int, width: float) -> ResNet:
    # torchvision's ResNet hard-codes 64..512 channels, so build the default
    # one and then rebuild its stem and stages at the requested width.
    base = max(4, int(round(64 * width)))
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    model.inplanes = base
    model.conv1 = nn.Conv2d(3, base, kernel_size=3, stride=1, padding=1, bias=False)
    model.bn1 = nn.BatchNorm2d(base)
    model.maxpool = nn.Identity()
    model.layer1 = model._make_layer(BasicBlock, base, 2)
    model.layer2 = model._make_layer(BasicBlock, base * 2, 2, stride=2)
    model.layer3 = model._make_layer(BasicBlock, base * 4, 2, stride=2)
    model.layer4 = model._make_layer(BasicBlock, base * 8, 2, stride=2)
    model.fc = nn.Linear(base * 8, num_classes)
    # Same initialisation torchvision applies in ResNet.__init__.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def _cifar_mobilenet(factory, num_classes: int, width: float) -> nn.Module:
    model = factory(num_classes=num_classes, width_mult=width)
    # Stem: stride 2 -> 1.
    model.features[0][0].stride = (1, 1)
    # First strided depthwise conv after the stem: stride 2 -> 1. Its padding
    # is (k - 1) // 2, which is also right for stride 1.
    for block in list(model.features)[1:]:
        dw = [m for m in block.modules()
              if isinstance(m, nn.Conv2d) and m.groups > 1 and m.stride == (2, 2)]
        if dw:
            dw[0].stride = (1, 1)
            break
    return model


class Encoder(nn.Module):
    """Everything of a classifier but its last Linear layer."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.body(x), 1)


def head_of(model: nn.Module) -> nn.Linear:
    """The last Linear layer of a model built by build_model."""
    if isinstance(model, ResNet):
        return model.fc
    return model.classifier[-1]


def split_model(model: nn.Module) -> tuple[Encoder, nn.Linear]:
    """A deep copy of the encoder (head replaced by Identity) and of the head."""
    model = copy.deepcopy(model)
    head = head_of(model)
    if isinstance(model, ResNet):
        model.fc = nn.Identity()
    else:
        model.classifier[-1] = nn.Identity()
    return Encoder(model), head


def encoder_param_names(model: nn.Module) -> list[str]:
    """Names of the parameters that belong to the encoder (not the head)."""
    head_ids = {id(p) for p in head_of(model).parameters()}
    return [n for n, p in model.named_parameters() if id(p) not in head_ids]


def feature_dim(model: nn.Module) -> int:
    return head_of(model).in_features
