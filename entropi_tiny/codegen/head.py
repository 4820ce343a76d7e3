"""Generate the configuration of the on-device linear head (firmware/src/et_head.c).

Usage:
    spec = HeadSpec(feature_dim=64, num_classes=5, num_samples=200, feature_scale=0.05,
                    feature_zero_point=-128, lr=0.01, momentum=0.9, batch_size=8, epochs=5)
    report = generate_head_sources("build/head", spec)
    # -> build/head/et_head_config.h (ET_HEAD_* constants), build/head/et_head_data.c
    #    (et_head_state, the feature cache, initial weight tables), and
    #    report["memory"] == {"state_bytes": ..., "cache_bytes": ..., "init_table_bytes": ...}

Compile et_head.c and et_head_data.c with -I firmware/include -I build/head.
The head's C code is fixed and hand-written; only the sizes, the
hyperparameters and the tables are generated, so every build of it is
the same code that the tests compile with -Wall -Wextra -Werror and run
against entropi_tiny/head_reference.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .emit import banner, c_float, inputs_digest, render, write_sources

GENERATOR = "entropi_tiny.codegen.head"
FORMAT = "entropi-tiny/head-config-v1"
INIT_MODES = {"uniform": 0, "zero": 1, "table": 2}   # ET_HEAD_INIT_* in et_head.h
ROUNDINGS = {"nearest": 0, "stochastic": 1}   # ET_HEAD_ROUND_* in et_head.h
FILES = ("et_head_config.h", "et_head_data.c")


@dataclass(frozen=True)
class HeadSpec:
    """Everything the generated head depends on; checked on construction."""
    feature_dim: int                 # D, extractor outputs = head inputs
    num_classes: int                 # C, 2..256 (labels are uint8)
    num_samples: int                 # N, training samples: rows of the cache, shuffle buffer
    feature_scale: float             # dequantization x = (q - zero_point) * scale
    feature_zero_point: int = 0      # -128..127
    lr: float = 0.01
    momentum: float = 0.0            # 0 leaves out the momentum buffers
    weight_decay: float = 0.0        # L2, added to the gradient (weights and biases)
    lr_decay: float = 1.0            # lr *= lr_decay after every epoch
    batch_size: int = 1              # B; > 1 adds the gradient-sum buffers
    epochs: int = 1
    cache: bool = True               # static int8 cache [N][D] of the extractor outputs
    shuffle: bool = True             # Fisher-Yates per epoch (xorshift32 from ~seed)
    seed: int = 0                    # uint32
    init: str = "uniform"            # uniform | zero | table
    init_bound: float | None = None  # uniform: U(-bound, bound); None -> 1/sqrt(D)
    init_weight: Any = field(default=None, compare=False, repr=False)  # table: (C, D)
    init_bias: Any = field(default=None, compare=False, repr=False)    # table: (C,) or None
    weight_bits: int = 32            # weight storage: 32 float32, 16 bfloat16 (float32 math)
    momentum_bits: int = 32          # momentum buffer storage, likewise
    rounding: str = "nearest"        # bfloat16 stores: nearest (even) | stochastic

    def __post_init__(self):
        _validate(self)
        for name, shape in (("init_weight", (self.num_classes, self.feature_dim)),
                            ("init_bias", (self.num_classes,))):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _float32_table(name, value, shape))

    @property
    def bound(self) -> float:
        """The uniform init's bound as float32 (default 1/sqrt(D))."""
        b = 1.0 / math.sqrt(self.feature_dim) if self.init_bound is None else self.init_bound
        return float(np.float32(b))

    def inputs(self) -> dict:
        """The spec as hashable generator inputs (tables as arrays)."""
        out = {"format": FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (np.integer, np.floating)):
                value = value.item()
            out[f.name] = value
        return out


def _as_float32(value):
    """float32(value); inf where it overflows (no warning)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(value, np.float64).astype(np.float32)


def _int(spec, name, lo, hi):
    v = getattr(spec, name)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise UserError(f"head spec: {name} must be an integer, got {v!r}")
    if not lo <= int(v) <= hi:
        raise UserError(f"head spec: {name} must be in [{lo}, {hi}], got {v}")


def _float(spec, name, lo, hi, lo_open=False, hi_open=False):
    v = getattr(spec, name)
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)):
        raise UserError(f"head spec: {name} must be a number, got {v!r}")
    f32 = _as_float32(v)
    if not np.all(np.isfinite(f32)):
        raise UserError(f"head spec: {name} must be a finite float32, got {v!r}")
    if v != 0 and f32 == 0:
        raise UserError(f"head spec: {name}={v!r} underflows to 0 in float32")
    if v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
        raise UserError(f"head spec: {name} must be in {'(' if lo_open else '['}{lo}, "
                        f"{hi}{')' if hi_open else ']'}, got {v!r}")


def _validate(spec: HeadSpec) -> None:
    _int(spec, "feature_dim", 1, 1 << 16)
    _int(spec, "num_classes", 2, 256)
    _int(spec, "num_samples", 1, 65535)
    _int(spec, "feature_zero_point", -128, 127)
    _int(spec, "batch_size", 1, 65535)
    _int(spec, "epochs", 1, (1 << 31) - 1)
    _int(spec, "seed", 0, (1 << 32) - 1)
    if spec.batch_size > spec.num_samples:
        raise UserError(f"head spec: batch_size {spec.batch_size} exceeds num_samples "
                        f"{spec.num_samples}")
    _float(spec, "feature_scale", 0.0, math.inf, lo_open=True)
    _float(spec, "lr", 0.0, math.inf, lo_open=True)
    _float(spec, "momentum", 0.0, 1.0, hi_open=True)
    _float(spec, "weight_decay", 0.0, math.inf)
    _float(spec, "lr_decay", 0.0, 1.0, lo_open=True)
    for name in ("cache", "shuffle"):
        if not isinstance(getattr(spec, name), bool):
            raise UserError(f"head spec: {name} must be true or false, got {getattr(spec, name)!r}")
    for name in ("weight_bits", "momentum_bits"):
        if getattr(spec, name) not in (16, 32) or isinstance(getattr(spec, name), bool):
            raise UserError(f"head spec: {name} must be 16 or 32, got {getattr(spec, name)!r}")
    if spec.rounding not in ROUNDINGS:
        raise UserError(f"head spec: rounding must be one of {', '.join(ROUNDINGS)}, "
                        f"got {spec.rounding!r}")
    if spec.init not in INIT_MODES:
        raise UserError(f"head spec: init must be one of {', '.join(INIT_MODES)}, got {spec.init!r}")
    if spec.init_bound is not None:
        _float(spec, "init_bound", 0.0, math.inf)
    if (spec.init == "table") != (spec.init_weight is not None):
        raise UserError("head spec: init='table' needs init_weight, and init_weight needs "
                        "init='table'")
    if spec.init_bias is not None and spec.init != "table":
        raise UserError("head spec: init_bias needs init='table'")


def _float32_table(name: str, value, shape: tuple) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"head spec: {name} must be an array of numbers") from None
    if arr.shape != shape:
        raise UserError(f"head spec: {name} must have shape {shape}, got {arr.shape}")
    out = _as_float32(arr)
    if not np.all(np.isfinite(out)):
        raise UserError(f"head spec: {name} has non-finite values or values beyond float32")
    out.setflags(write=False)
    return out


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def head_memory(spec: HeadSpec) -> dict:
    """Bytes of the head state (sizeof(et_head_t)) by part, the RAM cache and the flash tables.

    With w, m the storage bytes per weight / momentum value (4 or 2), M = 1 when
    momentum != 0, G = 1 when batch_size > 1 (B the batch size):
      weights   align4(C*D*w) + 4*C             (biases stay float32)
      optimizer M * (align4(C*D*m) + 4*C)       (momentum buffers)
      batch     G * 4*(B*C + B)                 (per-sample dL/dz and one feature each:
                                                 there is no C x D gradient buffer)
      scratch   4*D + 8*C + 24 + 2*N + B*D      (x, logits, dL/dz, hyperparameters,
                                                 counters, shuffle order, extractor rows)
    state = their sum rounded up to 4; cache = N*D when cache is on;
    init tables = 4 * (C*D + C) in flash for init='table'.
    """
    c, d, n, b = spec.num_classes, spec.feature_dim, spec.num_samples, spec.batch_size
    weights = _align4(c * d * spec.weight_bits // 8) + 4 * c
    optimizer = _align4(c * d * spec.momentum_bits // 8) + 4 * c if spec.momentum != 0 else 0
    batch = 4 * (b * c + b) if b > 1 else 0
    scratch = 4 * d + 8 * c + 24 + 2 * n + b * d
    state = _align4(weights + optimizer + batch + scratch)
    return {"state_bytes": state, "weight_bytes": weights, "optimizer_bytes": optimizer,
            "gradient_bytes": batch, "scratch_bytes": state - weights - optimizer - batch,
            "cache_bytes": n * d if spec.cache else 0,
            "init_table_bytes": 4 * (c * d + c) if spec.init == "table" else 0}


def _constants(spec: HeadSpec) -> list[tuple[str, str, str]]:
    """(name, C value, comment) of every #define in et_head_config.h."""
    return [
        ("ET_HEAD_D", f"{spec.feature_dim}u", "features (extractor outputs)"),
        ("ET_HEAD_C", f"{spec.num_classes}u", "classes"),
        ("ET_HEAD_TRAIN_N", f"{spec.num_samples}u", "training samples (cache rows)"),
        ("ET_HEAD_BATCH", f"{spec.batch_size}u", "samples per SGD update"),
        ("ET_HEAD_EPOCHS", f"{spec.epochs}u", "epochs of et_head_fit"),
        ("ET_HEAD_CACHE", str(int(spec.cache)), "static int8 feature cache"),
        ("ET_HEAD_SHUFFLE", str(int(spec.shuffle)), "reshuffle every epoch"),
        ("ET_HEAD_SEED", f"{spec.seed}u", "init and shuffle seed"),
        ("ET_HEAD_LR", c_float(spec.lr), "initial learning rate"),
        ("ET_HEAD_LR_DECAY", c_float(spec.lr_decay), "lr multiplier per epoch"),
        ("ET_HEAD_MOMENTUM", c_float(spec.momentum), "SGD momentum"),
        ("ET_HEAD_MOMENTUM_ENABLED", str(int(spec.momentum != 0)), "momentum buffers present"),
        ("ET_HEAD_WEIGHT_DECAY", c_float(spec.weight_decay), "L2 added to the gradient"),
        ("ET_HEAD_FEAT_SCALE", c_float(spec.feature_scale), "x = (q - zero_point) * scale"),
        ("ET_HEAD_FEAT_ZERO_POINT", f"({spec.feature_zero_point})", "int8 zero point"),
        ("ET_HEAD_INIT_MODE", f"ET_HEAD_INIT_{spec.init.upper()}", "initial weights"),
        ("ET_HEAD_INIT_BOUND", c_float(spec.bound), "uniform init range"),
        ("ET_HEAD_WEIGHT_BITS", str(spec.weight_bits), "weight storage: 32 float, 16 bfloat16"),
        ("ET_HEAD_MOMENTUM_BITS", str(spec.momentum_bits), "momentum storage"),
        ("ET_HEAD_ROUNDING", f"ET_HEAD_ROUND_{spec.rounding.upper()}", "bfloat16 stores"),
    ]


def render_head_sources(spec: HeadSpec) -> tuple[dict[str, str], str]:
    """({file name: text} of the generated sources, inputs sha256)."""
    digest = inputs_digest(spec.inputs())
    ctx = {"banner": banner(GENERATOR, digest), "spec": spec, "constants": _constants(spec),
           "memory": head_memory(spec)}
    if spec.init == "table":
        bias = spec.init_bias if spec.init_bias is not None else np.zeros(spec.num_classes, np.float32)
        ctx["weight_rows"] = list(spec.init_weight)
        ctx["bias"] = bias
    return {name: render(name + ".j2", **ctx) for name in FILES}, digest


def generate_head_sources(out_dir, spec: HeadSpec) -> dict:
    """Write et_head_config.h and et_head_data.c atomically; return a report."""
    if not isinstance(spec, HeadSpec):
        raise UserError(f"generate_head_sources needs a HeadSpec, got {type(spec).__name__}")
    out_dir = Path(out_dir)
    texts, digest = render_head_sources(spec)
    files = write_sources(out_dir, texts)
    return {"generator": GENERATOR, "inputs_sha256": digest, "files": files,
            "constants": {name: value for name, value, _ in _constants(spec)},
            "memory": head_memory(spec)}
