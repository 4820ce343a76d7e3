"""Data sources: the built-in CIFAR-10 subset, CIFAR-10/100 and ImageFolder trees.

Usage:
    task = load_task("builtin", role="source", cfg=DataConfig())
    x = normalize(task.train.images[:8])    # float (8, 3, 32, 32)

Every source becomes a `Task` of two `Split`s held in memory as uint8 NCHW
tensors at 32x32 (the tasks here are small; this also makes shuffling and
augmentation seedable, which exact resume needs). Specs:
    builtin            the shipped subset; role source = labels 0-4, target = 5-9
    cifar10, cifar100  torchvision's copies under data_root (downloaded if online)
    imagefolder:PATH   PATH/{train,test}/<class>/*, PATH/<class>/*, or
                       PATH/<domain>/<class>/* (PACS, VLCS; choose domains)
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .config import DataConfig
from .errors import UserError

IMAGE_SIZE = 32
# CIFAR-10 channel statistics; one fixed normalisation for source and target,
# because the encoder is frozen after training on the source.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
BUILTIN_ZIP = Path(__file__).parent / "assets" / "builtin_cifar10.zip"
BUILTIN_SOURCE_LABELS = range(0, 5)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor      # uint8 (N, 3, 32, 32)
    labels: torch.Tensor      # int64 (N,)

    def __len__(self) -> int:
        return int(self.labels.numel())


@dataclass(frozen=True)
class Task:
    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float NCHW with the fixed mean and std."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def load_task(spec: str, role: str, cfg: DataConfig) -> Task:
    keep = cfg.source_classes if role == "source" else cfg.target_classes
    return keep_classes(_load_task(spec, role, cfg), keep)


def _load_task(spec: str, role: str, cfg: DataConfig) -> Task:
    domains = cfg.source_domains if role == "source" else cfg.target_domains
    if spec == "builtin":
        return _builtin(role)
    if spec in ("cifar10", "cifar100"):
        return _torchvision_cifar(spec, cfg.data_root)
    if spec.startswith("imagefolder:"):
        return _imagefolder(Path(spec.split(":", 1)[1]), domains, cfg.test_fraction)
    raise UserError(f"unknown dataset '{spec}' (choose builtin, cifar10, cifar100 "
                    "or imagefolder:PATH)")


def keep_classes(task: Task, keep: tuple[str, ...]) -> Task:
    """The task restricted to the named classes (all when `keep` is empty),
    relabelled 0..k-1 in the order given: how one folder of ten classes serves
    as two disjoint tasks (data.source_classes / data.target_classes)."""
    if not keep:
        return task
    unknown = [c for c in keep if c not in task.classes]
    if unknown:
        raise UserError(f"class '{unknown[0]}' is not in {task.name} "
                        f"(classes: {', '.join(task.classes)})")
    old = torch.tensor([task.classes.index(c) for c in keep])

    def restrict(split: Split) -> Split:
        hit = split.labels.unsqueeze(1) == old.unsqueeze(0)       # (n, k)
        rows = hit.any(1)
        return Split(split.images[rows].contiguous(), hit[rows].int().argmax(1).to(torch.int64))

    tag = "+".join(keep) if len(keep) <= 3 else f"{keep[0]}..{keep[-1]}({len(keep)})"
    return Task(f"{task.name}[{tag}]", tuple(keep), restrict(task.train), restrict(task.test))


# -- built-in subset -----------------------------------------------------------

def _builtin(role: str) -> Task:
    """The shipped CIFAR-10 subset: source = labels 0-4, target = 5-9 (as 0-4)."""
    with zipfile.ZipFile(BUILTIN_ZIP) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
        all_classes = sorted({n.split("/")[1] for n in names})
        keep = [c for i, c in enumerate(all_classes)
                if (i in BUILTIN_SOURCE_LABELS) == (role == "source")]
        splits = {}
        for split in ("train", "test"):
            chosen = [n for n in names if n.startswith(split + "/") and n.split("/")[1] in keep]
            images = [_decode(z.read(n), n) for n in chosen]
            labels = [keep.index(n.split("/")[1]) for n in chosen]
            splits[split] = _to_split(images, labels, f"builtin/{split}")
    return Task(f"builtin-{role}", tuple(keep), splits["train"], splits["test"])


# -- torchvision CIFAR ---------------------------------------------------------

def _torchvision_cifar(name: str, data_root: str) -> Task:
    from torchvision import datasets

    root = Path(data_root or Path.home() / ".cache" / "entropi-tiny" / "data")
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    splits = {}
    for split in ("train", "test"):
        try:
            ds = cls(str(root), train=(split == "train"), download=False)
        except RuntimeError:
            try:
                ds = cls(str(root), train=(split == "train"), download=True)
            except Exception as e:  # noqa: BLE001 - any network or archive failure
                raise UserError(f"{name} is not under {root} and could not be downloaded "
                                f"({type(e).__name__}); pass --data-root") from None
        images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        splits[split] = Split(images, torch.tensor(ds.targets, dtype=torch.int64))
    return Task(name, tuple(ds.classes), splits["train"], splits["test"])


# -- ImageFolder trees -----------------------------------------------------------

def _imagefolder(root: Path, domains: tuple[str, ...], test_fraction: float) -> Task:
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist")
    subdirs = _visible_dirs(root)
    if not subdirs:
        raise UserError(f"data folder {root} is empty (expected class or domain folders)")
    names = {d.name for d in subdirs}
    if {"train", "test"} <= names:
        train, test = _class_tree(root / "train"), _class_tree(root / "test")
        classes = sorted(set(train) | set(test))
        return Task(f"imagefolder:{root}", tuple(classes),
                    _load_files(train, classes, root), _load_files(test, classes, root))
    if any(_has_images(d) for d in subdirs):
        per_class = _class_tree(root)             # one domain: PATH/<class>/*
    else:
        per_class = _domain_tree(root, subdirs, domains)
    classes = sorted(per_class)
    train, test = _split_files(per_class, test_fraction)
    return Task(f"imagefolder:{root}", tuple(classes),
                _load_files(train, classes, root), _load_files(test, classes, root))


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has_images(folder: Path) -> bool:
    return any(p.is_file() and not p.name.startswith(".") for p in folder.iterdir())


def _class_tree(folder: Path) -> dict[str, list[Path]]:
    """<folder>/<class>/<file>: every visible file must be an image."""
    if not folder.is_dir():
        raise UserError(f"data folder {folder} does not exist")
    tree = {}
    for d in _visible_dirs(folder):
        files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
        for p in files:
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise UserError(f"not an image file: {p}")
        if files:
            tree[d.name] = files
    if not tree:
        raise UserError(f"data folder {folder} holds no images")
    return tree


def _domain_tree(root: Path, subdirs: list[Path], domains: tuple[str, ...]) -> dict:
    available = [d.name for d in subdirs]
    unknown = [d for d in domains if d not in available]
    if unknown:
        raise UserError(f"unknown domain '{unknown[0]}' in {root} "
                        f"(available: {', '.join(available)})")
    merged: dict[str, list[Path]] = {}
    for d in subdirs:
        if domains and d.name not in domains:
            continue
        for cls, files in _class_tree(d).items():
            merged.setdefault(cls, []).extend(files)
    return merged


def _split_files(per_class: dict, test_fraction: float) -> tuple[dict, dict]:
    """Deterministic per-class split: a fixed-seed permutation, the first share is test."""
    train, test = {}, {}
    rng = np.random.default_rng(0)
    for cls in sorted(per_class):
        files = per_class[cls]
        order = rng.permutation(len(files))
        n_test = max(1, int(round(test_fraction * len(files)))) if len(files) > 1 else 0
        test[cls] = [files[i] for i in sorted(order[:n_test])]
        train[cls] = [files[i] for i in sorted(order[n_test:])]
    return train, test


def _load_files(tree: dict[str, list[Path]], classes: list[str], root: Path) -> Split:
    images, labels, first_size = [], [], None
    for cls, files in sorted(tree.items()):
        for p in files:
            img = _open(p)
            if first_size is None:
                first_size = (img.size, p)
            elif img.size != first_size[0]:
                raise UserError(f"mixed image sizes in {root}: {first_size[1]} is "
                                f"{first_size[0][0]}x{first_size[0][1]}, {p} is "
                                f"{img.size[0]}x{img.size[1]}")
            images.append(_resize(img))
            labels.append(classes.index(cls))
    return _to_split(images, labels, str(root))


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        raise UserError(f"not a readable image: {path}") from None


def _decode(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return _resize(img.convert("RGB"))
    except (UnidentifiedImageError, OSError):
        raise UserError(f"not a readable image: {name}") from None


def _resize(img: Image.Image) -> np.ndarray:
    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _to_split(images: list[np.ndarray], labels: list[int], where: str) -> Split:
    if not images:
        raise UserError(f"no images in {where}")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Split(x, torch.tensor(labels, dtype=torch.int64))
