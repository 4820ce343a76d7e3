"""Pruning: the alpha schedule, global magnitude masks, and masks that hold under SGD."""
import math

import torch

from entropi_tiny.config import load_config
from entropi_tiny.data import Split
from entropi_tiny.dist import DistContext
from entropi_tiny.models import build_model
from entropi_tiny.pruning.masks import (alpha_schedule, apply_masks, density, full_masks,
                                        global_magnitude_masks, prunable_parameters)
from entropi_tiny.pruning.train import make_optimizer, train_epoch


def test_alpha_schedule_is_geometric():
    alphas = alpha_schedule(0.25, 20, 0.0)
    assert len(alphas) == 20 and alphas[0] == 1.0
    for k, a in enumerate(alphas):
        assert math.isclose(a, 0.75 ** k)
    # The paper's selected ResNet18 alphas lie inside the default schedule's range.
    assert alphas[-1] < 0.0077 < alphas[0]


def test_alpha_schedule_stops_at_min_alpha():
    assert alpha_schedule(0.5, 100, 0.1) == [1.0, 0.5, 0.25, 0.125]
    assert alpha_schedule(0.5, 2, 0.0) == [1.0, 0.5]


def test_global_magnitude_keeps_largest_and_nests():
    torch.manual_seed(0)
    model = build_model("resnet18", 5, width=0.125)
    params = prunable_parameters(model, ("conv", "linear"))
    assert all(n.endswith(".weight") and "fc" not in n for n in params)
    total = sum(p.numel() for p in params.values())
    m1 = global_magnitude_masks(params, full_masks(params), 0.5)
    assert sum(int(m.sum()) for m in m1.values()) == round(0.5 * total)
    # Every kept magnitude is >= every pruned one: one global threshold (eq. 7).
    kept = torch.cat([p.detach().abs()[m1[n]] for n, p in params.items()])
    gone = torch.cat([p.detach().abs()[~m1[n]] for n, p in params.items()])
    assert kept.min() >= gone.max()
    apply_masks(params, m1)
    m2 = global_magnitude_masks(params, m1, 0.25)
    assert sum(int(m.sum()) for m in m2.values()) == round(0.25 * total)
    assert all(bool((m2[n] <= m1[n]).all()) for n in params)


def test_head_is_prunable_only_when_asked():
    model = build_model("mobilenet_v3_small", 5, width=0.25)
    names = set(prunable_parameters(model, ("conv", "linear")))
    assert "classifier.0.weight" in names and "classifier.3.weight" not in names
    assert "classifier.3.weight" in prunable_parameters(model, ("head",))


def test_pruned_weights_stay_exactly_zero_through_sgd():
    torch.manual_seed(0)
    cfg = load_config("quick", overrides=["prune.weight_decay=0.01", "prune.momentum=0.9",
                                          "prune.batch_size=16", "prune.lr=0.5"])
    model = build_model("mobilenet_v3_small", 3, width=0.25)
    params = prunable_parameters(model, cfg.prune.include)
    opt = make_optimizer(model, cfg.prune)
    split = Split(torch.randint(0, 255, (64, 3, 32, 32), dtype=torch.uint8),
                  torch.randint(0, 3, (64,)))
    # A dense epoch first fills the momentum buffers, then prune and keep training.
    ones = full_masks(params)
    train_epoch(model, params, ones, opt, split, cfg, 0, 0, DistContext())
    masks = global_magnitude_masks(params, ones, 0.1)
    apply_masks(params, masks)
    for state in opt.state.values():
        if "momentum_buffer" in state:
            assert state["momentum_buffer"].abs().sum() > 0
    for epoch in range(2):
        train_epoch(model, params, masks, opt, split, cfg, 1, epoch, DistContext())
    for n, p in params.items():
        assert torch.all(p[~masks[n]] == 0), n
    # ... while the survivors did train (they are not all frozen at zero).
    survivors = sum(int(m.sum()) for m in masks.values())
    moving = sum(int(torch.count_nonzero(p[masks[n]])) for n, p in params.items())
    assert moving > 0.9 * survivors
    assert math.isclose(density(model, params)["alpha_actual"], 0.1, rel_tol=0.02)
