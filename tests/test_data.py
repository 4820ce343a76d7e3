"""Data sources: the built-in subset and ImageFolder trees, and their bad inputs."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from entropi_tiny.config import DataConfig
from entropi_tiny.data import load_task, normalize
from entropi_tiny.errors import UserError
from helpers import SHARED_CIFAR


def test_builtin_source_and_target_are_disjoint_real_images():
    src = load_task("builtin", "source", DataConfig())
    tgt = load_task("builtin", "target", DataConfig())
    assert src.classes == ("airplane", "automobile", "bird", "cat", "deer")
    assert tgt.classes == ("dog", "frog", "horse", "ship", "truck")
    for task in (src, tgt):
        assert task.train.images.shape == (1500, 3, 32, 32)
        assert task.test.images.shape == (400, 3, 32, 32)
        assert task.train.images.dtype == torch.uint8
        assert sorted(task.train.labels.unique().tolist()) == [0, 1, 2, 3, 4]
        # Real photographs, not noise: neighbouring pixels are strongly correlated.
        x = task.train.images[:200].float()
        a, b = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.8
    assert abs(float(normalize(src.train.images).mean())) < 0.3


def test_builtin_matches_the_shared_copy():
    if not SHARED_CIFAR.is_dir():
        pytest.skip("shared CIFAR-10 copy not present")
    tgt = load_task("builtin", "target", DataConfig())
    first = np.asarray(Image.open(SHARED_CIFAR / "train" / "dog" / "0000.png").convert("RGB"))
    assert np.array_equal(tgt.train.images[0].permute(1, 2, 0).numpy(), first)


def test_imagefolder_with_train_test_split():
    if not SHARED_CIFAR.is_dir():
        pytest.skip("shared CIFAR-10 copy not present")
    task = load_task(f"imagefolder:{SHARED_CIFAR}", "target", DataConfig())
    assert len(task.classes) == 10
    assert len(task.train) == 10_000 and len(task.test) == 2_000


def _tree(root, domains, classes, n=3, size=(32, 32)):
    rng = np.random.default_rng(0)
    for d in domains:
        for c in classes:
            folder = root / d / c if d else root / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(folder / f"{i}.jpg")


def test_imagefolder_domain_tree_and_domain_choice(tmp_path):
    _tree(tmp_path, ["art", "photo", "sketch"], ["dog", "horse"], n=5, size=(64, 48))
    cfg = DataConfig(target_domains=("art", "photo"))
    task = load_task(f"imagefolder:{tmp_path}", "target", cfg)
    assert task.classes == ("dog", "horse")
    assert len(task.train) + len(task.test) == 2 * 2 * 5
    assert task.train.images.shape[1:] == (3, 32, 32)
    with pytest.raises(UserError, match="unknown domain 'cartoon'"):
        load_task(f"imagefolder:{tmp_path}", "target", DataConfig(target_domains=("cartoon",)))


@pytest.mark.parametrize("make,needle", [
    (lambda r: None, "does not exist"),
    (lambda r: r.mkdir(), "is empty"),
    (lambda r: (r / "cat").mkdir(parents=True), "no images"),
    (lambda r: (_tree(r, [""], ["cat"]), (r / "cat" / "notes.txt").write_text("x")), "not an image"),
    (lambda r: (_tree(r, [""], ["cat"]), (r / "cat" / "bad.png").write_bytes(b"\x89PNGjunk")),
     "not a readable image"),
    (lambda r: (_tree(r, [""], ["cat"]), _tree(r, [""], ["dog"], size=(40, 40))), "mixed image sizes"),
])
def test_imagefolder_bad_input(tmp_path, make, needle):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(UserError, match=needle):
        load_task(f"imagefolder:{root}", "source", DataConfig())


def test_cifar_offline_without_copy_is_a_clear_error(tmp_path, monkeypatch):
    import socket

    def no_network(*a, **k):
        raise OSError("network disabled in this test")
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(UserError, match="could not be downloaded"):
        load_task("cifar10", "source", DataConfig(data_root=str(tmp_path)))
    shutil.rmtree(tmp_path, ignore_errors=True)
