"""Real-looking int8 features for the head tests: built-in CIFAR through a small frozen encoder.

Usage:
    from head_data import cifar_features, build_head
    f = cifar_features()       # dict: train_q, train_y, test_q, test_y, scale, zero_point
    exe = build_head(tmp_dir, spec, "firmware/tests/et_head_driver.c", sanitize=False)

The encoder is ResNet18 at width 0.125 with a fixed random init (D = 64),
as a pruned, trained one would be: frozen, its outputs quantized to int8
with one scale and zero point (-128, since they follow a ReLU). A stratified
subset keeps the tests quick; the result is cached for the whole session.
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np
import torch

from entropi_tiny.codegen.head import generate_head_sources

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 96, 100
GCC_WARNINGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion",
                "-Wfloat-conversion"]


@functools.lru_cache(maxsize=1)
def cifar_features() -> dict:
    from entropi_tiny.config import DataConfig
    from entropi_tiny.data import load_task
    from entropi_tiny.models import build_model, split_model
    from entropi_tiny.transfer import encode

    task = load_task("builtin", "target", DataConfig())
    torch.manual_seed(0)
    encoder, _ = split_model(build_model("resnet18", task.num_classes, 0.125))
    gen = torch.Generator().manual_seed(0)
    pick = {s: torch.randperm(len(getattr(task, s)), generator=gen)[:n]
            for s, n in (("train", N_TRAIN), ("test", N_TEST))}
    feats = {s: encode(encoder, getattr(task, s).images[i]).numpy() for s, i in pick.items()}
    zero_point, scale = -128, float(np.float32(feats["train"].max() / 255.0))
    out = {"scale": scale, "zero_point": zero_point, "float_train": feats["train"]}
    for s, idx in pick.items():
        q = np.clip(np.round(feats[s] / scale) + zero_point, -128, 127).astype(np.int8)
        out[f"{s}_q"] = q
        out[f"{s}_y"] = getattr(task, s).labels[idx].numpy().astype(np.uint8)
    return out


def build_head(build_dir: Path, spec, driver: str, sanitize: bool = False,
               cc: str = "gcc") -> Path:
    """Generate the config for spec, compile et_head.c + data + driver; the executable."""
    build_dir = Path(build_dir)
    generate_head_sources(build_dir, spec)
    exe = build_dir / (Path(driver).stem + ("_san" if sanitize else ""))
    flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"] \
        if sanitize else ["-O2"]
    subprocess.run([cc, *GCC_WARNINGS, *flags, f"-I{ROOT / 'firmware/include'}", f"-I{build_dir}",
                    str(ROOT / "firmware/src/et_head.c"), str(build_dir / "et_head_data.c"),
                    str(ROOT / driver), "-lm", "-o", str(exe)], check=True)
    return exe
