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
An unknown section or key, or a value of the wrong type, is a UserError.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import UserError

ARCHS = ("resnet18", "mobilenet_v3_small", "mobilenet_v3_large")
DATASETS = ("builtin", "cifar10", "cifar100", "imagefolder:PATH")


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


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"{section}.{key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"config key '{where}' must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"config key '{where}' must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"config key '{where}' must be a number, got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key '{where}' must be a list, got {value!r}")
        kind = type(default[0]) if default else type(value[0]) if value else str
        return tuple(_coerce(section, key, v, kind()) for v in value)
    if not isinstance(value, str):
        raise UserError(f"config key '{where}' must be a string, got {value!r}")
    return value


def _apply(cfg: Config, updates: dict[str, Any], origin: str) -> Config:
    sections = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    for section, values in updates.items():
        if section not in sections:
            raise UserError(f"unknown config section '{section}' in {origin} "
                            f"(known: {', '.join(sections)})")
        if not isinstance(values, dict):
            raise UserError(f"config section '{section}' in {origin} must be a table")
        current = sections[section]
        known = {f.name: getattr(current, f.name) for f in fields(current)}
        changes = {}
        for key, value in values.items():
            if key not in known:
                raise UserError(f"unknown config key '{section}.{key}' in {origin}")
            changes[key] = _coerce(section, key, value, known[key])
        sections[section] = dataclasses.replace(current, **changes)
    return Config(**sections)


def parse_override(text: str) -> dict[str, dict[str, Any]]:
    """'prune.epochs=3' -> {'prune': {'epochs': 3}} (the value is read as TOML)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise UserError(f"override '{text}' must look like section.key=value")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return {section: {key: value}}


def load_config(preset: str = "quick", toml_path: str | Path | None = None,
                overrides: tuple[str, ...] | list[str] = ()) -> Config:
    if preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    cfg = _apply(Config(), {**PRESETS[preset], **PRESET_DATA.get(preset, dict)()},
                 f"preset {preset}")
    if toml_path is not None:
        path = Path(toml_path)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as e:
            raise UserError(f"cannot read config file {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"config file {path} is not valid TOML: {e}") from None
        cfg = _apply(cfg, data, str(path))
    for text in overrides:
        cfg = _apply(cfg, parse_override(text), f"--set {text}")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    if cfg.model.arch not in ARCHS:
        raise UserError(f"unknown model '{cfg.model.arch}' (choose from {', '.join(ARCHS)})")
    if cfg.model.width <= 0:
        raise UserError(f"model.width must be positive, got {cfg.model.width}")
    for role in ("source", "target"):
        spec = getattr(cfg.data, role)
        if spec not in DATASETS[:3] and not spec.startswith("imagefolder:"):
            raise UserError(f"unknown dataset '{spec}' for data.{role} "
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
                        f"got '{cfg.select.criterion}'")
    _validate_issue12(cfg)
    if not 0.0 < cfg.data.test_fraction < 1.0:
        raise UserError("data.test_fraction must be in (0, 1)")
    if cfg.export.calib_images < 1 or cfg.export.check_images < 1:
        raise UserError("export.calib_images and export.check_images must be >= 1")
    f = cfg.firmware
    if min(f.train_per_class, f.test_per_class, f.epochs, f.batch_size) < 1:
        raise UserError("firmware.train_per_class, test_per_class, epochs and batch_size must be >= 1")
    t = cfg.transfer
    if t.epochs < 1 or t.batch_size < 1 or not t.seeds:
        raise UserError("transfer.epochs, transfer.batch_size must be >= 1 and seeds non-empty")


def _validate_issue12(cfg: Config) -> None:
    """The control, seed, subset-entropy and head-recipe fields."""
    p, s, t = cfg.prune, cfg.select, cfg.transfer
    if p.matched_control not in ("none", "selected", "all"):
        raise UserError(f"prune.matched_control must be 'none', 'selected' or 'all', "
                        f"got '{p.matched_control}'")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in p.source_seeds) \
            or len(set(p.source_seeds)) != len(p.source_seeds):
        raise UserError(f"prune.source_seeds must be distinct integers >= 0, got {list(p.source_seeds)}")
    if s.subset_k < 1 or s.subset_draws < 1:
        raise UserError("select.subset_k and select.subset_draws must be >= 1")
    if t.init not in ("random", "ridge"):
        raise UserError(f"transfer.init must be 'random' or 'ridge', got '{t.init}'")
    if t.ridge <= 0 or not 0.0 < t.holdout_fraction < 1.0:
        raise UserError("transfer.ridge must be > 0 and transfer.holdout_fraction in (0, 1)")
