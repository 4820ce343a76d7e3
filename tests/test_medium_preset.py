"""The medium preset's data (two disjoint five-class tasks from one ten-class folder),
the class filter behind it, and the issue-12 config fields."""
import numpy as np
import pytest
from PIL import Image

from entropi_tiny.config import CIFAR10_CLASSES, SHARED_CIFAR10_ENV, load_config
from entropi_tiny.data import load_task
from entropi_tiny.errors import UserError


def ten_class_tree(root, per_class=3):
    for split in ("train", "test"):
        for i, cls in enumerate(CIFAR10_CLASSES):
            d = root / split / cls
            d.mkdir(parents=True)
            for j in range(per_class):
                pixels = np.full((32, 32, 3), 20 * i + j, np.uint8)
                Image.fromarray(pixels).save(d / f"{j}.png")
    return root


def test_medium_uses_the_ten_class_folder_as_two_disjoint_tasks(tmp_path, monkeypatch):
    monkeypatch.setenv(SHARED_CIFAR10_ENV, str(ten_class_tree(tmp_path / "c10")))
    cfg = load_config("medium")
    assert cfg.data.source == cfg.data.target == f"imagefolder:{tmp_path / 'c10'}"
    src = load_task(cfg.data.source, "source", cfg.data)
    tgt = load_task(cfg.data.target, "target", cfg.data)
    assert src.classes == CIFAR10_CLASSES[:5] and tgt.classes == CIFAR10_CLASSES[5:]
    assert len(src.train) == len(tgt.train) == 15 and len(tgt.test) == 15
    assert sorted(tgt.train.labels.unique().tolist()) == [0, 1, 2, 3, 4]
    # relabelled in order: target label 0 is "dog", whose pixels are 20 * 5 + j
    dog = tgt.train.images[tgt.train.labels == 0]
    assert set(dog[:, 0, 0, 0].tolist()) == {100, 101, 102}
    src_pixels = set(src.train.images[:, 0, 0, 0].tolist())
    assert src_pixels.isdisjoint(set(tgt.train.images[:, 0, 0, 0].tolist()))
    assert cfg.prune.matched_control == "all" and cfg.transfer.init == "ridge"


def test_medium_falls_back_to_the_builtin_data(tmp_path, monkeypatch):
    monkeypatch.setenv(SHARED_CIFAR10_ENV, str(tmp_path / "absent"))
    cfg = load_config("medium")
    assert (cfg.data.source, cfg.data.target, cfg.data.source_classes) == ("builtin", "builtin", ())


def test_unknown_class_is_a_clear_error():
    cfg = load_config("quick", overrides=['data.target_classes=["dog", "unicorn"]'])
    with pytest.raises(UserError, match="class 'unicorn' is not in builtin-target"):
        load_task("builtin", "target", cfg.data)


@pytest.mark.parametrize("override,needle", [
    ('prune.matched_control="some"', "matched_control"),
    ("prune.source_seeds=[1, 1]", "distinct"),
    ('select.criterion="median"', "subset"),
    ("select.subset_k=0", "subset_k"),
    ('transfer.init="zeros"', "transfer.init"),
    ("transfer.holdout_fraction=1.0", "holdout_fraction"),
])
def test_bad_issue12_fields(override, needle):
    with pytest.raises(UserError, match=needle):
        load_config("quick", overrides=[override])


def test_paper_preset_keeps_the_papers_head():
    paper, quick = load_config("paper").transfer, load_config("quick").transfer
    assert (paper.standardize, paper.init, paper.lr) == (False, "random", 1e-5)
    assert (quick.standardize, quick.init) == (True, "ridge")
    assert load_config("paper").prune.matched_control == "selected"
