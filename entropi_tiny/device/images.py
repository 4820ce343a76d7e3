"""Images for `device predict`: files in, the model's int8 input out.

Usage:
    q = load_inputs([Path("cat.png"), Path("x.npy")], RunPaths(Path("export/default")))

An image file (anything PIL reads) goes through the pipeline's own steps:
RGB, 32x32 bilinear, the fixed mean/std normalisation, then the exported
model's input quantization (scale and zero point from the run's .tflite). A
`.npy` file is taken as an already quantized int8 input of the model's
shape. What cannot be read, or has another shape, is one line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..paths import RunPaths


def _image_file(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from ..data import IMAGE_SIZE

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        raise UserError(f"not a readable image: {path}") from None
    if rgb.size != (IMAGE_SIZE, IMAGE_SIZE):
        rgb = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    return np.array(rgb, dtype=np.uint8)   # a writable copy, for torch.from_numpy


def _quantizer(paths: RunPaths):
    import torch

    from ..data import normalize
    from ..export.tflite_ops import parse_tflite
    from ..export.tflm import quantize_images

    if not paths.tflite.is_file():
        raise UserError(f"{paths.tflite} is missing: export the model of this run first")
    model = parse_tflite(paths.tflite)

    def quantize(rgb: np.ndarray) -> np.ndarray:
        x = normalize(torch.from_numpy(rgb).permute(2, 0, 1)[None]).numpy()
        return quantize_images(x, model)[0]
    return quantize


def load_inputs(files: list[Path], paths: RunPaths, sample_bytes: int) -> list[np.ndarray]:
    quantize = None
    out = []
    for f in map(Path, files):
        if not f.is_file():
            raise UserError(f"image not found: {f}")
        if f.suffix == ".npy":
            try:
                q = np.load(f, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise UserError(f"{f} is not a readable .npy file: {e}") from None
        else:
            quantize = quantize or _quantizer(paths)
            q = quantize(_image_file(f))
        if q.dtype != np.int8 or q.size != sample_bytes:
            raise UserError(f"{f}: {q.size} {q.dtype} values, the device takes {sample_bytes} "
                            "int8 values (the model's quantized input)")
        out.append(q)
    return out
