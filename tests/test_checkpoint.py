"""Level and resume checkpoints with hostile metadata, masks and epochs (issues 16, 17):
each refused in one line before any model is built from it."""
import math

import pytest
import torch

from entropi_tiny import models
from entropi_tiny.config import load_config
from entropi_tiny.errors import UserError
from entropi_tiny.pruning import checkpoint as ckpt
from entropi_tiny.pruning.masks import full_masks, prunable_parameters
from entropi_tiny.pruning.train import make_optimizer

CFG = load_config("quick", None, ["model.width=0.125"])


def _level(tmp_path, meta_edit=None, mask_edit=None, weight_edit=None):
    torch.manual_seed(0)
    model = models.build_model("resnet18", 5, 0.125)
    params = prunable_parameters(model, CFG.prune.include)
    masks = full_masks(params)
    meta = {"level": 0, "alpha_target": 1.0, "alpha_actual": 1.0, "alpha_encoder": 1.0,
            "nonzero": 10, "prunable": 10, "train_acc": 50.0, "test_acc": 40.0,
            "train_loss": 1.5, "arch": "resnet18", "width": 0.125, "num_classes": 5,
            "classes": ["a", "b", "c", "d", "e"], "config": CFG.to_dict()}
    if meta_edit:
        meta_edit(meta)
    if mask_edit:
        mask_edit(masks)
    if weight_edit:
        weight_edit(model, masks)
    path = tmp_path / "checkpoint.pt"
    ckpt.save_level(path, model, masks, meta)
    return path


def test_a_good_level_checkpoint_loads(tmp_path):
    model, masks, meta = ckpt.load_level(_level(tmp_path))
    assert meta["num_classes"] == 5 and models.feature_dim(model) > 0 and masks


def _drop(key):
    return lambda m: m.pop(key)


def _put(key, value):
    return lambda m: m.__setitem__(key, value)


@pytest.mark.parametrize("edit,needle", [
    (_drop("alpha_actual"), "lacks 'alpha_actual'"),
    (_drop("width"), "lacks 'width'"),
    (_put("num_classes", "five"), "'num_classes' must be an integer"),
    (_put("num_classes", 10**12), "'num_classes'"),
    (_put("num_classes", 1), "'num_classes'"),
    (_put("num_classes", True), "'num_classes' must be an integer"),
    (_put("width", 1e9), "model.width"),
    (_put("width", 2.0), "weights do not fit"),             # in range, but not these weights
    (lambda m: m.update(num_classes=90_000, classes=[f"c{i}" for i in range(90_000)]),
     "weights do not fit"),
    (_put("arch", "mobilenet_v3_large"), "weights do not fit"),
    (_put("width", math.nan), "finite"),
    (_put("width", "wide"), "model.width"),
    (_put("alpha_actual", 7.0), "'alpha_actual'"),
    (_put("alpha_actual", math.inf), "'alpha_actual'"),
    (_put("test_acc", None), "'test_acc' must be a number"),
    (_put("train_loss", math.nan), "'train_loss'"),
    (_put("nonzero", 11), "non-zero"),
    (_put("arch", "vgg\n\x1b[31m"), "'arch'"),
    (_put("classes", ["a"]), "'classes'"),
    (_put("config", []), "'config'"),
    (lambda m: m["config"]["prune"].__setitem__("include", ["everything"]), "prune.include"),
])
def test_hostile_metadata_is_refused_before_a_model_is_built(tmp_path, monkeypatch, edit, needle):
    path = _level(tmp_path, meta_edit=edit)
    built = []
    real = models.build_model

    def spy(*a, **k):                      # a model on the meta device costs no memory
        if torch.empty(0).device.type != "meta":
            built.append(a)
        return real(*a, **k)
    monkeypatch.setattr(models, "build_model", spy)
    with pytest.raises(UserError, match=None) as e:
        ckpt.load_level(path)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and "\x1b" not in msg, msg
    assert not built                       # refused before any allocation


@pytest.mark.parametrize("mask_edit,weight_edit,needle", [
    (lambda m: m.pop(sorted(m)[0]), None, "do not cover"),
    (lambda m: m.__setitem__("conv1.weight", torch.ones(3, dtype=torch.bool)), None, "shape"),
    (lambda m: m.__setitem__("conv1.weight", torch.ones_like(m["conv1.weight"], dtype=torch.float32)),
     None, "not a bool tensor"),
    (lambda m: m.__setitem__("nonsense.weight", torch.ones(1, dtype=torch.bool)), None, "names no weight"),
    (lambda m: m.__setitem__("conv1.weight", torch.zeros_like(m["conv1.weight"])), None, "non-zero"),
])
def test_hostile_level_masks(tmp_path, mask_edit, weight_edit, needle):
    path = _level(tmp_path, mask_edit=mask_edit, weight_edit=weight_edit)
    with pytest.raises(UserError, match=needle):
        ckpt.load_level(path)


def _partial(tmp_path, edit):
    torch.manual_seed(0)
    model = models.build_model("resnet18", 5, 0.125)
    params = prunable_parameters(model, CFG.prune.include)
    opt = make_optimizer(model, CFG.prune)
    obj = {"masks": full_masks(params), "epoch": 2, "losses": [2.0, 1.0]}
    edit(obj, opt)
    path = tmp_path / "partial.pt"
    ckpt.save_partial(path, model, opt, obj["masks"], obj["epoch"], obj["losses"])
    fresh = models.build_model("resnet18", 5, 0.125)
    return path, fresh, make_optimizer(fresh, CFG.prune), list(params)


def test_a_good_partial_loads(tmp_path):
    path, model, opt, names = _partial(tmp_path, lambda o, opt: None)
    masks, epoch, losses = ckpt.load_partial(path, model, opt, names=names, epochs=3)
    assert epoch == 2 and losses == [2.0, 1.0] and set(masks) == set(names)


def _momentum(value):
    def edit(obj, opt):
        opt.param_groups[0]["momentum"] = value
    return edit


def _buffer(obj, opt):
    p = opt.param_groups[0]["params"][0]
    opt.state[p]["momentum_buffer"] = torch.zeros(7)


@pytest.mark.parametrize("edit,needle", [
    (lambda o, opt: o.__setitem__("masks", {}), "has no masks"),
    (lambda o, opt: o["masks"].pop(sorted(o["masks"])[0]), "do not cover"),
    (lambda o, opt: o["masks"].__setitem__("fc.weight", torch.ones(2, 2, dtype=torch.bool)), "shape"),
    (lambda o, opt: o.__setitem__("epoch", "x"), "resume epoch"),
    (lambda o, opt: o.__setitem__("epoch", 10**6), "resume epoch"),
    (lambda o, opt: o.__setitem__("epoch", -3), "resume epoch"),
    (lambda o, opt: o.__setitem__("losses", [1.0]), "resume losses"),
    (lambda o, opt: o.__setitem__("losses", [1.0, math.nan]), "resume losses"),
    (_momentum(-5.0), "optimizer settings"),
    (_buffer, "optimizer buffer"),
])
def test_hostile_resume_files(tmp_path, edit, needle):
    path, model, opt, names = _partial(tmp_path, edit)
    with pytest.raises(UserError, match=needle) as e:
        ckpt.load_partial(path, model, opt, names=names, epochs=3)
    assert "\n" not in str(e.value)
