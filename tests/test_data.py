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
    (lambda r: (_tree(r, ["", ""], ["cat", "dog"]), (r / "cat" / "bad.png").write_bytes(b"\x89PNGjunk")),
     "not a readable image"),
    (lambda r: _tree(r, [""], ["cat"]), "needs two classes"),
    (lambda r: _tree(r, ["photo", "art"], ["cat"]), "needs two classes"),
    (lambda r: (_tree(r / "train", [""], ["cat"]), _tree(r / "test", [""], ["cat"])), "needs two classes"),
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


# -- datasets as users have them (issues 9 and 16) ----------------------------------

import logging  # noqa: E402
import struct  # noqa: E402
import zlib  # noqa: E402


def test_stray_files_are_skipped_with_a_count(tmp_path, caplog):
    _tree(tmp_path, [""], ["cat", "dog"], n=3)
    (tmp_path / "cat" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0junk")
    (tmp_path / "dog" / "desktop.ini").write_text("[.ShellClassInfo]\n")
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    with caplog.at_level(logging.WARNING, logger="entropi_tiny.data"):
        task = load_task(f"imagefolder:{tmp_path}", "target", DataConfig())
    assert len(task.train) + len(task.test) == 6
    assert "skipped 2 non-image file(s)" in caplog.text and "Thumbs.db" in caplog.text


def test_mixed_sizes_and_nested_subfolders_are_all_used(tmp_path):
    _tree(tmp_path, [""], ["cat"], n=2, size=(64, 48))
    _tree(tmp_path, [""], ["dog"], n=2, size=(17, 300))
    _tree(tmp_path / "cat", [""], ["2019", "2020"], n=2, size=(40, 40))   # cat/2019/*.jpg
    _tree(tmp_path / "cat" / "2020", [""], ["deep"], n=1)                # cat/2020/deep/*.jpg
    (tmp_path / "dog" / ".thumbnails").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "dog" / ".thumbnails" / "hidden.png")
    task = load_task(f"imagefolder:{tmp_path}", "target", DataConfig())
    assert task.classes == ("cat", "dog")
    counts = (torch.cat([task.train.labels, task.test.labels]).bincount()).tolist()
    assert counts == [2 + 4 + 1, 2]                     # nested cat images counted, hidden not
    assert task.train.images.shape[1:] == (3, 32, 32)


def _png_declaring(width: int, height: int) -> bytes:
    """A small, valid-CRC PNG whose header declares width x height pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


def _jpeg_declaring(width: int, height: int) -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


BOMB_SCRIPT = r"""
import resource, sys, time
from entropi_tiny.config import DataConfig
from entropi_tiny.data import load_task
from entropi_tiny.errors import UserError
# Address space: what is mapped now (torch is imported) plus 300 MB for the work.
pages = int(open("/proc/self/statm").read().split()[0])
limit = pages * resource.getpagesize() + (300 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for root in sys.argv[1:]:
    t0 = time.process_time()
    try:
        load_task("imagefolder:" + root, "target", DataConfig())
        print("ACCEPTED", 0, root)
    except UserError as e:
        print("REFUSED", time.process_time() - t0, e)
"""
BOMBS = {"bomb.png": lambda: _png_declaring(100_000, 100_000),
         "huge.png": lambda: _png_declaring(2**31 - 1, 2**31 - 1),
         "big.png": lambda: _png_declaring(8000, 8000),          # 64 M pixels: over MAX_PIXELS
         "bomb.jpg": lambda: _jpeg_declaring(65_000, 65_000)}


def test_decompression_bombs_are_refused_in_bounded_memory_and_time(tmp_path):
    import subprocess
    import sys

    from helpers import cli_env

    roots = []
    for name, make in BOMBS.items():
        root = tmp_path / name.replace(".", "_")
        _tree(root, [""], ["cat", "dog"], n=2)
        (root / "cat" / name).write_bytes(make())
        roots.append(str(root))
    r = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, *roots], capture_output=True,
                       text=True, env=cli_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == len(BOMBS), r.stdout
    for line, name in zip(lines, BOMBS):
        verdict, cpu, msg = line.split(" ", 2)
        assert verdict == "REFUSED" and name in msg and "declares" in msg, line
        assert float(cpu) < 5.0, line
