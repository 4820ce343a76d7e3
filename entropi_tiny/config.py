"""Typed, frozen configuration: presets, TOML files and `--set` overrides.

Usage:
    cfg = load_config(preset="quick", toml_path=None, overrides=["prune.epochs=3"])
    cfg.prune.epochs  # -> 3

The dataclass defaults are the paper's hyperparameters (preset `paper`);
preset `quick` shrinks the run so that the whole pipeline finishes in
minutes on two CPU cores. A TOML file has one table per section:

    [model]
    arch = "mobilenet_v3_small"
    [prune]
    epochs = 5

Precedence, lowest first: dataclass defaults, preset, TOML file, `--set`.
An unknown section or key, a value of the wrong type, or a number outside
its declared range (RANGES below; NaN and infinities never pass) is a
UserError, raised before any work starts, so a bad setting never reaches a
run folder's config.json.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import UserError, printable as _name

ARCHS = ("resnet18", "mobilenet_v3_small", "mobilenet_v3_large")
DATASETS = ("builtin", "cifar10", "cifar100", "imagefolder:PATH")
NO_TARGET = "none"       # data.target: no target data (a user's model, inference only)


@dataclass(frozen=True)
class DataConfig:
    source: str = "builtin"          # builtin | cifar10 | cifar100 | imagefolder:PATH
    target: str = "builtin"
    data_root: str = ""              # where cifar10/cifar100 live or download to
    source_domains: tuple[str, ...] = ()   # for imagefolder domain trees (PACS, VLCS)
    target_domains: tuple[str, ...] = ()
    test_fraction: float = 0.2       # held-out share when a tree has no train/test split
    augment: bool = True             # random crop (pad 4) + horizontal flip on source
    source_classes: tuple[str, ...] = ()   # keep only these classes of the source (all if empty)
    target_classes: tuple[str, ...] = ()   # ... and of the target, relabelled 0..k-1 in order


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "resnet18"
    width: float = 1.0


@dataclass(frozen=True)
class PruneConfig:
    rate: float = 0.25               # alpha_{k+1} = (1 - rate) * alpha_k
    levels: int = 20                 # level 0 is dense; stop after this many levels ...
    min_alpha: float = 0.0           # ... or before alpha would fall below this
    epochs: int = 90                 # training epochs per level
    batch_size: int = 128
    lr: float = 0.1                  # cosine-annealed to 0 within every level
    momentum: float = 0.9
    weight_decay: float = 1e-4
    include: tuple[str, ...] = ("conv", "linear")   # prunable: conv, linear, head
    rewind: bool = False             # lottery-ticket rewinding of surviving weights
    rewind_epoch: int = 0            # rewind to the weights after this many dense epochs
    seed: int = 0
    # Budget-matched dense control (pruning/control.py): "selected" trains it up to
    # the selected level's epoch budget when `transfer` runs; "all" trains one per
    # level in `prune`; "none" skips it. It never changes a level.
    matched_control: str = "selected"
    source_seeds: tuple[int, ...] = ()   # IMP once per seed, in seeds/seed_N/ (seeds.py)


@dataclass(frozen=True)
class SelectConfig:
    levels_m: int = 4                # M, quantization levels of eq. 3
    criterion: str = "exact"         # exact (eq. 6) | bound (eq. 8) | subset (eq. 6 on k neurons)
    batch_size: int = 256
    subset_k: int = 4                # neurons per random subset of the "subset" criterion
    subset_draws: int = 64           # subsets averaged (fixed seed 0)


@dataclass(frozen=True)
class TransferConfig:
    lr: float = 1e-5                 # Adam
    lr_decay: float = 0.99           # exponential, per epoch
    batch_size: int = 128
    epochs: int = 100
    seeds: tuple[int, ...] = (0, 1, 2)
    standardize: bool = False        # z-score features with the train set's mean and std
    init: str = "random"             # random (nn.Linear default) | ridge (closed-form start)
    ridge: float = 1e-2              # ridge penalty per sample of the closed-form start
    holdout_fraction: float = 0.2    # share of target train held out by the validation baseline


@dataclass(frozen=True)
class ExportConfig:
    calib_images: int = 300          # real target train images for int8 calibration
    check_images: int = 100          # real target test images for the checks
    level: int = -1                  # level to export; -1: the entropy-selected one
    tflite: str = ""                 # a user's own int8 .tflite instead of a pruned level
    feature_tensor: str = ""         # its feature tensor ("": input of the last classifier)


@dataclass(frozen=True)
class FirmwareConfig:
    train_per_class: int = 20        # embedded training samples per class (flash)
    test_per_class: int = 10         # embedded test samples per class
    epochs: int = 10                 # on-device SGD epochs over the embedded samples
    lr: float = 0.01
    lr_decay: float = 0.95
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 1
    seed: int = 0
    stack_bytes: int = 8192
    # Head storage (docs/head.md): 0 lets the build pick the richest that fits the board;
    # 16 (bfloat16) or 32 (float32) is a fixed choice, only checked against the budget.
    head_weight_bits: int = 0
    head_momentum_bits: int = 0
    head_rounding: str = "stochastic"   # for 16-bit stores: stochastic | nearest


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    firmware: FirmwareConfig = field(default_factory=FirmwareConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {f.name: _plain(dataclasses.asdict(getattr(self, f.name))) for f in fields(self)}


# The tuned host head (standardised features, ridge start, then Adam): the
# comparison is then between encoders, not between under-trained heads. The
# paper's head recipe stays in `paper` (and `--set transfer.init=random
# --set transfer.standardize=false` anywhere).
TUNED_HEAD = {"lr": 1e-3, "epochs": 40, "standardize": True, "init": "ridge"}
# The medium preset's source and target: the ten classes of the shared
# 12,000-image CIFAR-10 subset split into two disjoint five-class tasks (the same
# split as the built-in data, so the target is new classes, never a subtask of the
# source), or the built-in data when that subset is not on this machine.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
SHARED_CIFAR10_ENV = "ENTROPI_TINY_CIFAR10_SUBSET"


def shared_cifar10() -> Path | None:
    """The shared CIFAR-10 subset ({train,test}/<class>/*.png), if present: the
    folder named by $ENTROPI_TINY_CIFAR10_SUBSET, else shared/data/cifar10 beside
    the checkout (or beside its parent, for a worktree)."""
    import os

    repo = Path(__file__).resolve().parents[1]
    env = os.environ.get(SHARED_CIFAR10_ENV)
    candidates = [Path(env)] if env else [repo.parent / "shared" / "data" / "cifar10",
                                          repo.parent.parent / "shared" / "data" / "cifar10"]
    return next((c for c in candidates if (c / "train").is_dir() and (c / "test").is_dir()), None)


def _medium_data() -> dict[str, Any]:
    root = shared_cifar10()
    if root is None:
        return {}
    spec = f"imagefolder:{root}"
    return {"source": spec, "target": spec, "source_classes": list(CIFAR10_CLASSES[:5]),
            "target_classes": list(CIFAR10_CLASSES[5:])}


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {},
    "quick": {
        "model": {"width": 0.25},
        "prune": {"epochs": 3, "levels": 10, "rate": 0.4, "lr": 0.05},
        "transfer": TUNED_HEAD,
    },
    # Under an hour on two cores: 5,000 source images, 8 epochs per level (a dense
    # level 0 that has converged on them), alpha down to 0.01 in 6 levels, and a
    # matched dense control for every level (the dense-vs-pruned curve).
    "medium": {   # + "data": _medium_data(), resolved when the preset is loaded
        "model": {"width": 0.25},
        "prune": {"epochs": 8, "levels": 6, "rate": 0.6, "lr": 0.05, "matched_control": "all"},
        "transfer": TUNED_HEAD,
    },
}


# Presets whose data depends on the machine: computed at load time.
PRESET_DATA = {"medium": lambda: {"data": _medium_data()} if _medium_data() else {}}


def _plain(d: dict) -> dict:
    """Tuples to lists, so a config compares equal after a JSON round trip."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass(frozen=True)
class Range:
    """Closed interval [low, high] of a numeric setting, open at an end when asked;
    `multiple` requires an integer multiple of it (the stack's 8-byte alignment)."""
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    multiple: int = 1

    def text(self) -> str:
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else f"{x:g}"
        return (f"{'(' if self.low_open else '['}{num(self.low)}, {num(self.high)}"
                f"{')' if self.high_open else ']'}")

    def holds(self, v: float) -> bool:
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return above and below and (self.multiple == 1 or v % self.multiple == 0)


_COUNT = Range(1, 1_000_000)           # epochs, batch sizes, image counts
_SEED = Range(0, 2**32 - 1)            # numpy and the C head's xorshift take 32 bits
_LR = Range(0, 10, low_open=True)
_UNIT = Range(0, 1, high_open=True)    # momentum: 1 would never forget a gradient
# The declared range of every numeric setting, checked as a value is read (a
# tuple's elements each). A numeric key missing here gets FALLBACK_RANGE;
# tests/test_config.py requires every key of Config() to be listed.
RANGES: dict[str, Range] = {
    "data.test_fraction": Range(0, 1, low_open=True, high_open=True),
    "model.width": Range(0, 4, low_open=True),
    "prune.rate": Range(0, 1, low_open=True, high_open=True),
    "prune.levels": Range(1, 100),
    "prune.min_alpha": _UNIT,
    "prune.epochs": _COUNT,
    "prune.batch_size": _COUNT,
    "prune.lr": _LR,
    "prune.momentum": _UNIT,
    "prune.weight_decay": Range(0, 1),
    "prune.rewind_epoch": Range(0, 1_000_000),
    "prune.seed": _SEED,
    "select.levels_m": Range(2, 256),
    "select.batch_size": _COUNT,
    "select.subset_k": Range(1, 4096),          # neurons per subset (a feature vector's size)
    "select.subset_draws": Range(1, 100_000),
    "prune.source_seeds": _SEED,
    "transfer.ridge": Range(0, 1e6, low_open=True),
    "transfer.holdout_fraction": Range(0, 1, low_open=True, high_open=True),
    "transfer.lr": _LR,
    "transfer.lr_decay": Range(0, 1, low_open=True),
    "transfer.batch_size": _COUNT,
    "transfer.epochs": _COUNT,
    "transfer.seeds": _SEED,
    "export.calib_images": _COUNT,
    "export.check_images": _COUNT,
    "export.level": Range(-1, 99),              # -1: the selected level; levels < prune.levels
    # Firmware settings end up as C constants and sizes in a 320 KiB RAM.
    "firmware.train_per_class": Range(1, 10_000),
    "firmware.test_per_class": Range(1, 10_000),
    "firmware.epochs": Range(1, 100_000),
    "firmware.lr": _LR,
    "firmware.lr_decay": Range(0, 1, low_open=True),
    "firmware.momentum": _UNIT,
    "firmware.weight_decay": Range(0, 1),
    "firmware.batch_size": Range(1, 1_000),
    "firmware.seed": _SEED,
    # Below 2 KiB not even the startup code and printf fit; above 256 KiB
    # nothing is left of the F746's RAM for the model. AAPCS wants 8-byte alignment.
    "firmware.stack_bytes": Range(2048, 256 * 1024, multiple=8),
    "firmware.head_weight_bits": Range(0, 32, multiple=16),
    "firmware.head_momentum_bits": Range(0, 32, multiple=16),
}
FALLBACK_RANGE = Range(-(2**31), 2**31 - 1)
MAX_LIST = 1000                        # seeds, domains, prunable kinds


def _show(value: Any, limit: int = 60) -> str:
    """A value for an error message: repr (which escapes newlines), cut short."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<{type(value).__name__} nested too deeply>"
    return text if len(text) <= limit else text[:limit] + "..."


def _check_range(where: str, value: float) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"config key '{where}' must be a finite number, got {value}")
    rng = RANGES.get(where, FALLBACK_RANGE)
    if not rng.holds(value):
        extra = f" and a multiple of {rng.multiple}" if rng.multiple > 1 else ""
        raise UserError(f"config key '{where}' must be in {rng.text()}{extra}, got {_show(value)}")


def check_number(where: str, value: Any, integer: bool = False) -> float | int:
    """`value` as the setting `where` ("model.width") requires, or UserError: the
    same type and range check as a config file, for values read back from
    elsewhere (a checkpoint's metadata, a run folder's config.json)."""
    default = 0 if integer else 0.0
    section, _, key = where.partition(".")
    return _coerce(section, key, value, default)


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"{section}.{key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"config key '{where}' must be true or false, got {_show(value)}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"config key '{where}' must be an integer, got {_show(value)}")
        _check_range(where, value)
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"config key '{where}' must be a number, got {_show(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise UserError(f"config key '{where}' is too large, got {_show(value)}") from None
        _check_range(where, number)
        return number
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key '{where}' must be a list, got {_show(value)}")
        if len(value) > MAX_LIST:
            raise UserError(f"config key '{where}' lists {len(value)} items, more than {MAX_LIST}")
        kind = type(default[0]) if default else type(value[0]) if value else str
        return tuple(_coerce(section, key, v, kind()) for v in value)
    if not isinstance(value, str):
        raise UserError(f"config key '{where}' must be a string, got {_show(value)}")
    return value


def _apply(cfg: Config, updates: dict[str, Any], origin: str) -> Config:
    sections = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    origin = _name(origin)
    for section, values in updates.items():
        if section not in sections:
            raise UserError(f"unknown config section '{_name(section)}' in {origin} "
                            f"(known: {', '.join(sections)})")
        if not isinstance(values, dict):
            raise UserError(f"config section '{section}' in {origin} must be a table")
        current = sections[section]
        known = {f.name: getattr(current, f.name) for f in fields(current)}
        changes = {}
        for key, value in values.items():
            if key not in known:
                raise UserError(f"unknown config key '{section}.{_name(key)}' in {origin}")
            changes[key] = _coerce(section, key, value, known[key])
        sections[section] = dataclasses.replace(current, **changes)
    return Config(**sections)


def parse_override(text: str) -> dict[str, dict[str, Any]]:
    """'prune.epochs=3' -> {'prune': {'epochs': 3}} (the value is read as TOML)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise UserError(f"override '{_name(text)}' must look like section.key=value")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = _parse_toml(f"v = {raw}", f"--set {section}.{key}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return {section: {key: value}}


def config_from_dict(saved: Any, origin: str) -> Config:
    """A config saved as JSON (a run folder's config.json), checked like a TOML file."""
    if not isinstance(saved, dict):
        raise UserError(f"{origin} is damaged: expected a JSON object of config sections")
    cfg = _apply(Config(), saved, origin)
    validate(cfg)
    return cfg


def _parse_toml(text: str, origin: str) -> dict:
    """tomllib.loads, with a nesting too deep for its recursion a UserError."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise UserError(f"{_name(origin)} nests arrays or tables too deeply") from None


def load_config(preset: str = "quick", toml_path: str | Path | None = None,
                overrides: tuple[str, ...] | list[str] = (), base: Config | None = None) -> Config:
    """Preset (or `base`, e.g. a run folder's saved config), then TOML, then --set."""
    if base is not None:
        cfg = base
    elif preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    else:
        cfg = _apply(Config(), {**PRESETS[preset], **PRESET_DATA.get(preset, dict)()},
                     f"preset {preset}")
    if toml_path is not None:
        path = Path(toml_path)
        try:
            data = _parse_toml(path.read_bytes().decode("utf-8"), f"config file {path}")
        except OSError as e:
            raise UserError(f"cannot read config file {_name(path)}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise UserError(f"config file {_name(path)} is not UTF-8 text "
                            f"(byte {e.start}); TOML files must be UTF-8") from None
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"config file {_name(path)} is not valid TOML: {e}") from None
        cfg = _apply(cfg, data, str(path))
    for text in overrides:
        cfg = _apply(cfg, parse_override(text), f"--set {text}")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    for section in fields(cfg):        # types and ranges again: a Config built in code
        current = getattr(cfg, section.name)
        for f in fields(current):
            _coerce(section.name, f.name, getattr(current, f.name), f.default
                    if f.default is not dataclasses.MISSING else f.default_factory())
    if cfg.model.arch not in ARCHS:
        raise UserError(f"unknown model '{_name(cfg.model.arch)}' "
                        f"(choose from {', '.join(ARCHS)})")
    if cfg.model.width <= 0:
        raise UserError(f"model.width must be positive, got {cfg.model.width}")
    for role in ("source", "target"):
        spec = getattr(cfg.data, role)
        if role == "target" and spec == NO_TARGET:
            continue
        if spec not in DATASETS[:3] and not spec.startswith("imagefolder:"):
            raise UserError(f"unknown dataset '{_name(spec)}' for data.{role} "
                            f"(choose from {', '.join(DATASETS)})")
    p = cfg.prune
    if not 0.0 < p.rate < 1.0:
        raise UserError(f"prune.rate must be in (0, 1), got {p.rate}")
    if p.levels < 1 or p.epochs < 1 or p.batch_size < 1:
        raise UserError("prune.levels, prune.epochs and prune.batch_size must be >= 1")
    bad = set(p.include) - {"conv", "linear", "head"}
    if bad or not p.include:
        raise UserError(f"prune.include must name some of conv, linear, head; got {list(p.include)}")
    if p.rewind and p.rewind_epoch > p.epochs:
        raise UserError("prune.rewind_epoch cannot exceed prune.epochs")
    if cfg.select.levels_m < 2:
        raise UserError(f"select.levels_m (M) must be >= 2, got {cfg.select.levels_m}")
    if cfg.select.criterion not in ("exact", "bound", "subset"):
        raise UserError(f"select.criterion must be 'exact', 'bound' or 'subset', "
                        f"got '{_name(cfg.select.criterion)}'")
    _validate_issue12(cfg)
    if not 0.0 < cfg.data.test_fraction < 1.0:
        raise UserError("data.test_fraction must be in (0, 1)")
    if cfg.export.calib_images < 1 or cfg.export.check_images < 1:
        raise UserError("export.calib_images and export.check_images must be >= 1")
    if cfg.export.level < -1:
        raise UserError(f"export.level must be a level number or -1 (the selected one), "
                        f"got {cfg.export.level}")
    f = cfg.firmware
    if min(f.train_per_class, f.test_per_class, f.epochs, f.batch_size) < 1:
        raise UserError("firmware.train_per_class, test_per_class, epochs and batch_size must be >= 1")
    if f.head_rounding not in ("stochastic", "nearest"):
        raise UserError(f"firmware.head_rounding must be stochastic or nearest, "
                        f"got {_name(f.head_rounding)}")
    if (f.head_weight_bits == 0) != (f.head_momentum_bits == 0):
        raise UserError("firmware.head_weight_bits and head_momentum_bits are both 0 (automatic) "
                        "or both set (16 or 32)")
    t = cfg.transfer
    if t.epochs < 1 or t.batch_size < 1 or not t.seeds:
        raise UserError("transfer.epochs, transfer.batch_size must be >= 1 and seeds non-empty")


def _validate_issue12(cfg: Config) -> None:
    """The control, seed, subset-entropy and head-recipe fields."""
    p, s, t = cfg.prune, cfg.select, cfg.transfer
    if p.matched_control not in ("none", "selected", "all"):
        raise UserError(f"prune.matched_control must be 'none', 'selected' or 'all', "
                        f"got '{_name(p.matched_control)}'")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in p.source_seeds) \
            or len(set(p.source_seeds)) != len(p.source_seeds):
        raise UserError(f"prune.source_seeds must be distinct integers >= 0, got {list(p.source_seeds)}")
    if s.subset_k < 1 or s.subset_draws < 1:
        raise UserError("select.subset_k and select.subset_draws must be >= 1")
    if t.init not in ("random", "ridge"):
        raise UserError(f"transfer.init must be 'random' or 'ridge', got '{_name(t.init)}'")
    if t.ridge <= 0 or not 0.0 < t.holdout_fraction < 1.0:
        raise UserError("transfer.ridge must be > 0 and transfer.holdout_fraction in (0, 1)")
