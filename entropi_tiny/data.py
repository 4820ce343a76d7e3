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

In an ImageFolder tree, the images in nested subfolders of a class belong to
that class; hidden files and folders are ignored; files that are not images
by their suffix (Thumbs.db, desktop.ini, notes) are skipped with a count in
the log. Every image is resized to 32x32, whatever its size. A tree needs two
classes or more (a head over one class learns nothing). An image is refused
from its declared size, before it is decoded, when it would exceed
MAX_PIXELS, so a decompression bomb costs neither memory nor time; JPEGs are
decoded at a reduced scale where the format allows it.
"""
from __future__ import annotations

import io
import logging
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .config import DataConfig
from .errors import UserError, printable as _name

IMAGE_SIZE = 32
# CIFAR-10 channel statistics; one fixed normalisation for source and target,
# because the encoder is frozen after training on the source.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
BUILTIN_ZIP = Path(__file__).parent / "assets" / "builtin_cifar10.zip"
BUILTIN_SOURCE_LABELS = range(0, 5)
MAX_PIXELS = 40_000_000        # declared width x height; a 24 MP camera photo passes
log = logging.getLogger(__name__)


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
        raise UserError(f"data folder {_name(root)} does not exist")
    subdirs = _visible_dirs(root)
    if not subdirs:
        raise UserError(f"data folder {_name(root)} is empty (expected class or domain folders)")
    names = {d.name for d in subdirs}
    skipped: list[Path] = []
    if {"train", "test"} <= names:
        train = _class_tree(root / "train", skipped)
        test = _class_tree(root / "test", skipped)
        classes = _check_classes(sorted(set(train) | set(test)), root)
        _report_skipped(skipped, root)
        return Task(f"imagefolder:{root}", tuple(classes),
                    _load_files(train, classes, root), _load_files(test, classes, root))
    if any(_has_files(d) for d in subdirs):
        per_class = _class_tree(root, skipped)    # one domain: PATH/<class>/*
    else:
        per_class = _domain_tree(root, subdirs, domains, skipped)
    classes = _check_classes(sorted(per_class), root)
    _report_skipped(skipped, root)
    train, test = _split_files(per_class, test_fraction)
    return Task(f"imagefolder:{root}", tuple(classes),
                _load_files(train, classes, root), _load_files(test, classes, root))


def _check_classes(classes: list[str], root: Path) -> list[str]:
    if len(classes) < 2:
        found = f"only '{_name(classes[0])}'" if classes else "none"
        raise UserError(f"data folder {_name(root)} has {found} as its classes; a classification "
                        "head needs two classes or more")
    return classes


def _report_skipped(skipped: list[Path], root: Path) -> None:
    if skipped:
        examples = ", ".join(sorted({_name(p.name) for p in skipped})[:3])
        log.warning("skipped %d non-image file(s) in %s (%s)", len(skipped), _name(root), examples)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has_files(folder: Path) -> bool:
    return any(p.is_file() and not p.name.startswith(".") for p in folder.iterdir())


def _class_files(folder: Path, skipped: list[Path]) -> list[Path]:
    """Every visible image under `folder`, nested subfolders included (symlinked
    folders are not followed, so a link loop cannot recurse); non-images go to
    `skipped`."""
    files = []
    for top, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in sorted(names):
            p = Path(top) / n
            if n.startswith(".") or not p.is_file():
                continue
            (files if p.suffix.lower() in IMAGE_SUFFIXES else skipped).append(p)
    return files


def _class_tree(folder: Path, skipped: list[Path]) -> dict[str, list[Path]]:
    """<folder>/<class>/**/<image>: a class's images, however deeply nested."""
    if not folder.is_dir():
        raise UserError(f"data folder {_name(folder)} does not exist")
    tree = {}
    for d in _visible_dirs(folder):
        files = _class_files(d, skipped)
        if files:
            tree[d.name] = files
    if not tree:
        raise UserError(f"data folder {_name(folder)} holds no images")
    return tree


def _domain_tree(root: Path, subdirs: list[Path], domains: tuple[str, ...],
                 skipped: list[Path]) -> dict:
    available = [d.name for d in subdirs]
    unknown = [d for d in domains if d not in available]
    if unknown:
        raise UserError(f"unknown domain '{_name(unknown[0])}' in {_name(root)} "
                        f"(available: {', '.join(available)})")
    merged: dict[str, list[Path]] = {}
    for d in subdirs:
        if domains and d.name not in domains:
            continue
        for cls, files in _class_tree(d, skipped).items():
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
    images, labels = [], []
    for cls, files in sorted(tree.items()):
        for p in files:
            images.append(_open(p))
            labels.append(classes.index(cls))
    return _to_split(images, labels, _name(root))


def _open(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            return _decode_file(f, path)
    except OSError as e:
        raise UserError(f"cannot read image {_name(path)}: {e.strerror or e}") from None


def _decode(data: bytes, name: str) -> np.ndarray:
    return _decode_file(io.BytesIO(data), name)


def _decode_file(f, name) -> np.ndarray:
    """One image file as 32x32 RGB uint8. The header is read first: a declared
    size over MAX_PIXELS is refused before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f) as img:
                w, h = img.size
                if w * h > MAX_PIXELS or w < 1 or h < 1:
                    raise UserError(f"image {_name(name)} declares {w}x{h} pixels, more than the "
                                    f"{MAX_PIXELS:,} accepted (a decompression bomb?)")
                img.draft("RGB", (IMAGE_SIZE * 4, IMAGE_SIZE * 4))   # JPEG: decode at 1/2..1/8
                return _resize(img.convert("RGB"))
    except Image.DecompressionBombError:
        raise UserError(f"image {_name(name)} declares more pixels than accepted "
                        "(a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise UserError(f"not a readable image: {_name(name)}") from None


def _resize(img: Image.Image) -> np.ndarray:
    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _to_split(images: list[np.ndarray], labels: list[int], where: str) -> Split:
    if not images:
        raise UserError(f"no images in {where}")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Split(x, torch.tensor(labels, dtype=torch.int64))
