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


# SHA-256 of the decoded pixels of every built-in image, in zip order (PROVENANCE.md):
# a changed or damaged asset fails here, in any clone.
BUILTIN_PIXELS_SHA256 = "5937393cd3baa668cc7468e6045a425daa0c77fd24b188a890df5972e759195c"


def test_builtin_content_is_the_recorded_subset():
    import hashlib
    import io
    import zipfile

    from entropi_tiny.data import BUILTIN_ZIP

    h = hashlib.sha256()
    with zipfile.ZipFile(BUILTIN_ZIP) as z:
        names = z.namelist()
        for n in names:
            h.update(n.encode() + np.asarray(Image.open(io.BytesIO(z.read(n))).convert("RGB")).tobytes())
    assert len(names) == 3800 and h.hexdigest() == BUILTIN_PIXELS_SHA256
    # Where the shared CIFAR-10 copy sits beside the repository, it is the same data.
    if SHARED_CIFAR.is_dir():
        tgt = load_task("builtin", "target", DataConfig())
        first = np.asarray(Image.open(SHARED_CIFAR / "train" / "dog" / "0000.png").convert("RGB"))
        assert np.array_equal(tgt.train.images[0].permute(1, 2, 0).numpy(), first)


def test_imagefolder_with_train_test_split(tmp_path):
    """A {train,test}/<class>/*.png tree written from the built-in images loads back as they were."""
    src = load_task("builtin", "target", DataConfig())
    for split, part, n in (("train", src.train, 12), ("test", src.test, 4)):
        for c, name in enumerate(src.classes):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            idx = torch.nonzero(part.labels == c).flatten()[:n]
            for i in idx.tolist():
                Image.fromarray(part.images[i].permute(1, 2, 0).numpy()).save(folder / f"{i:04d}.png")
    task = load_task(f"imagefolder:{tmp_path}", "target", DataConfig())
    assert task.classes == src.classes
    assert len(task.train) == 60 and len(task.test) == 20
    first = torch.nonzero(src.train.labels == 0).flatten()[0]
    assert torch.equal(task.train.images[0], src.train.images[first])
    if SHARED_CIFAR.is_dir():                 # an extra case where the shared copy is present
        shared = load_task(f"imagefolder:{SHARED_CIFAR}", "target", DataConfig())
        assert len(shared.classes) == 10
        assert len(shared.train) == 10_000 and len(shared.test) == 2_000


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
