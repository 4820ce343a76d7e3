"""Small helpers for the export tests: real CIFAR-10 images and a short training run.

Usage:
    x, y = load_cifar("test", ["cat", "dog"], per_class=20)   # float NCHW normalised, int labels

Images come from the built-in CIFAR-10 subset shipped in the package
(entropi_tiny/assets/builtin_cifar10.zip: 300 train and 80 test images per
class), so the tests run the same in any clone, with or without ../shared.
"""
from __future__ import annotations

import io
import zipfile

import numpy as np
import torch
from PIL import Image

from entropi_tiny.data import BUILTIN_ZIP

SOURCE_CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]
TARGET_CLASSES = ["dog", "frog", "horse", "ship", "truck"]
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32).reshape(1, 3, 1, 1)


def load_cifar(split: str, classes: list[str], per_class: int, offset: int = 0):
    """(images (N, 3, 32, 32) float32 normalised, labels (N,) int64), classes in order.

    Asking for more images than the built-in subset holds is an error, not a
    silent shortfall."""
    xs, ys = [], []
    with zipfile.ZipFile(BUILTIN_ZIP) as z:
        names = z.namelist()
        for label, cls in enumerate(classes):
            files = sorted(n for n in names if n.startswith(f"{split}/{cls}/"))
            files = files[offset:offset + per_class]
            if len(files) < per_class:
                raise ValueError(f"built-in {split}/{cls} has {len(files)} images from {offset}, "
                                 f"{per_class} asked")
            for f in files:
                xs.append(np.asarray(Image.open(io.BytesIO(z.read(f))).convert("RGB"), np.uint8))
                ys.append(label)
    x = np.stack(xs).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return (x - MEAN) / STD, np.array(ys, np.int64)


def train_classifier(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int,
                     lr: float = 0.05, batch: int = 64, seed: int = 0) -> torch.nn.Module:
    """A few epochs of SGD with random flips; short, for fixtures."""
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            xb = xt[idx]
            flip = torch.rand(len(idx)) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            loss = torch.nn.functional.cross_entropy(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def linear_probe(train_f: np.ndarray, train_y: np.ndarray, steps: int = 500, seed: int = 0):
    """Logistic regression on raw features (full-batch Adam), like the paper's linear head.

    Inputs are only scaled by one global factor, not standardised per feature:
    per-feature standardisation would blow up int8 rounding noise on
    low-variance features, which no on-device head does.
    """
    torch.manual_seed(seed)
    f = torch.from_numpy(train_f.astype(np.float32))
    mu, sd = torch.zeros(()), f.std() + 1e-6
    head = torch.nn.Linear(f.shape[1], int(train_y.max()) + 1)
    opt = torch.optim.Adam(head.parameters(), lr=0.01, weight_decay=1e-4)
    y = torch.from_numpy(train_y)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(head((f - mu) / sd), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def predict(feats: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return head((torch.from_numpy(feats.astype(np.float32)) - mu) / sd).argmax(1).numpy()
    return predict
