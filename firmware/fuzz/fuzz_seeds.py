"""Seed inputs for the fuzz targets, made by the project's own writers.

Usage:
    from fuzz_seeds import image_seeds, frame_seeds
    image_seeds(Path("runs/fuzz/image/seeds"), tflite=[Path("encoder_int8.tflite")])
    frame_seeds(Path("runs/fuzz/frames/seeds"))

Image seeds are real `.etsw` images written by entropi_tiny.export.sparse_image
for the three weight tensors of fuzz_image.c's schedule (CONV_2D [8,3,3,4],
DEPTHWISE_CONV_2D [1,3,3,8], FULLY_CONNECTED [10,8]) at several densities,
each encoding forced in turn, with dead channels, extreme zero points and
biases just inside the proven accumulator range, so the fuzzer starts from
inputs that pass every check and reach the kernels. Images of real .tflite
models (encode_model) may be added: the schedule refuses them, but the reader
and its iterators get the shapes of a real network. Frame seeds are
real frames of the Python codec (toolchain/frames_fuzz.py), in the
records of firmware/tests/et_frames_fuzz.c.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from entropi_tiny.errors import UserError
from entropi_tiny.export import sparse_format as fmt
from entropi_tiny.export.sparse_image import Requant, WeightSpec, encode_model, encode_tensors

# (shape, channel axis, op) of directory entries 0, 1, 2 in fuzz_image.c's schedule.
SCHEDULE = (((8, 3, 3, 4), 0, fmt.OP_CONV_2D), ((1, 3, 3, 8), 3, fmt.OP_DEPTHWISE_CONV_2D),
            ((10, 8), 0, fmt.OP_FULLY_CONNECTED))
DENSITIES = (1.0, 0.5, 0.15, 0.04, 0.0)


def _spec(index: int, shape, axis: int, op: int, density: float, rng, requant: Requant, big_bias: bool):
    w = rng.integers(1, 129, shape) * rng.choice([-1, 1], shape)
    w = np.clip(w * (rng.random(shape) < density), -128, 127).astype(np.int8)
    c = shape[axis]
    if density and c > 2:
        w[(slice(None),) * axis + (1,)] = 0         # one dead channel at least
    if big_bias:                                    # just inside |bias| + 128 * sum|w| <= INT32_MAX
        cm = np.moveaxis(w, axis, 0).reshape(c, -1).astype(np.int64)
        folded = ((1 << 31) - 1 - 128 * np.abs(cm).sum(axis=1) - rng.integers(0, 64, c)) * rng.choice([-1, 1], c)
        bias = np.clip(folded + requant.input_zero_point * cm.sum(axis=1), -(1 << 31) + 1, (1 << 31) - 1)
    else:
        bias = rng.integers(-5000, 5000, c)
    return WeightSpec(tensor_index=index, weights=w, channel_axis=axis, op=op,
                      scales=rng.uniform(1e-3, 2e-2, c).astype(np.float32), zero_points=np.zeros(c, np.int64),
                      bias=bias.astype(np.int32), bias_index=10 + index, requant=requant, name=f"w{index}")


def image_seeds(out: Path, tflite=()) -> list[Path]:
    """Write the image seeds into `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    requants = (Requant(0.02, 0.05, -3, 7, -128, 127), Requant(0.1, 0.01, -128, 127, 0, 127),
                Requant(0.004, 0.3, 127, -128, -128, 6))
    paths, n = [], 0
    for d_i, density in enumerate(DENSITIES):
        for allowed in [fmt.ENCODING_NAMES] + [[e] for e in fmt.ENCODING_NAMES if e != fmt.ZERO]:
            rng = np.random.default_rng(n)
            rq = requants[n % len(requants)]
            specs = [_spec(i, *s, density if i != 1 else DENSITIES[(d_i + 1) % 5], rng, rq, n % 4 == 3)
                     for i, s in enumerate(SCHEDULE)]
            try:
                image = encode_tensors(specs, list(allowed))[0]
            except UserError:                       # an encoding that cannot hold these weights
                continue
            paths.append(out / f"schedule_{n:02d}.etsw")
            paths[-1].write_bytes(image)
            n += 1
    for i, path in enumerate(tflite):
        paths.append(out / f"model_{i}.etsw")
        paths[-1].write_bytes(encode_model(Path(path).read_bytes(), label=str(path))[0])
    return paths


def frame_seeds(out: Path, tflite=()) -> list[Path]:
    """The frame target's seeds: real protocol-v2 frames of the Python codec, in the records
    firmware/tests/et_frames_fuzz.c reads (`tflite` is not used)."""
    from entropi_tiny.toolchain.frames_fuzz import write_seed_corpus

    return write_seed_corpus(out)


from fuzz_tflite import tflite_seeds  # noqa: E402,F401  (the .tflite target's seeds live with it)
