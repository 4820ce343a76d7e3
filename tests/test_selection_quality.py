"""Selection quality (selection/quality.py), the subset entropy (selection/subsets.py)
and the tuned head (transfer.fit_head), on small hand-made inputs."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from entropi_tiny.config import TransferConfig
from entropi_tiny.selection.entropy import entropy_of_batches, select_level
from entropi_tiny.selection.quality import ranks, selection_quality, spearman
from entropi_tiny.selection.subsets import subset_entropy
from entropi_tiny.transfer import holdout_split, train_head


def level(k, alpha, src, exact, bound, subset, acc, held):
    return {"level": k, "alpha": alpha, "source_test_acc": src, "exact_bits": exact,
            "bound_bits": bound, "subset_bits": subset, "target_acc_mean": acc,
            "holdout_acc_mean": held}


SAT = math.log2(1500)
LEVELS = [level(0, 1.0, 70.0, 9.0, 40.0, 5.0, 50.0, 49.0),
          level(1, 0.5, 72.0, SAT, 60.0, 6.0, 58.0, 57.0),
          level(2, 0.25, 71.0, SAT, 70.0, 7.0, 55.0, 58.0),
          level(3, 0.12, 65.0, SAT, 65.0, 6.5, 52.0, 51.0)]


def test_ranks_and_spearman():
    assert ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([5, 5, 5], [1, 2, 3]) is None        # a constant criterion
    assert spearman([1, 2], [1, 2]) is None              # too few levels


def test_oracle_regret_and_baselines():
    q = selection_quality(LEVELS, selected=2, criterion="exact")
    assert q["n_evaluated"] == 4 and q["oracle"]["level"] == 1
    assert q["selected"] == {"level": 2, "alpha": 0.25, "target_acc": 55.0, "regret": 3.0}
    assert q["criteria"]["exact"]["level"] == 2          # saturated tie -> higher bound
    assert q["criteria"]["bound"]["level"] == 2
    assert q["criteria"]["subset"]["level"] == 2
    b = q["baselines"]
    assert (b["sparsest"]["level"], b["sparsest"]["regret"]) == (3, 6.0)
    assert (b["best_source"]["level"], b["best_source"]["regret"]) == (1, 0.0)
    assert (b["holdout"]["level"], b["holdout"]["regret"]) == (2, 3.0)
    assert b["dense"]["regret"] == 8.0
    # exact: ranks 1, 3, 3, 3 against 1, 4, 3, 2
    assert q["spearman"]["exact"] == pytest.approx(spearman([9, SAT, SAT, SAT], [50, 58, 55, 52]))
    # bound ranks 1, 2, 4, 3 vs top-1 ranks 1, 4, 3, 2: sum d^2 = 6, rho = 1 - 36/60
    assert q["spearman"]["bound"] == pytest.approx(0.4)


def test_unevaluated_levels_are_left_out():
    rows = [dict(r) for r in LEVELS]
    del rows[1]["target_acc_mean"]
    q = selection_quality(rows, selected=1, criterion="exact")
    assert q["evaluated_levels"] == [0, 2, 3] and q["selected"]["regret"] is None
    assert q["oracle"]["level"] == 2


def test_subset_entropy_does_not_saturate_where_eq6_does():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(1500, 128)).astype(np.float32)
    full = entropy_of_batches(lambda: [y], 4, subset_k=4, subset_draws=16)
    assert full.saturated and full.exact_bits == pytest.approx(SAT)
    assert 0 < full.subset_bits < full.subset_max_bits <= 4 * math.log2(5)
    # a copy with half the neurons constant carries visibly less per subset
    z = y.copy()
    z[:, 64:] = 0.0
    half = entropy_of_batches(lambda: [z], 4, subset_k=4, subset_draws=16)
    assert half.saturated and half.subset_bits < full.subset_bits - 0.5
    assert select_level([{"level": 0, "alpha": 1.0, **full.to_dict()},
                         {"level": 1, "alpha": 0.5, **half.to_dict()}], "subset") == 0


def test_subset_with_every_neuron_is_eq6():
    y = np.random.default_rng(1).integers(0, 3, size=(200, 5)).astype(np.float32)
    r = entropy_of_batches(lambda: [y], 4, subset_k=5, subset_draws=8)
    assert r.subset_bits == pytest.approx(r.exact_bits) and r.subset_bits_std == 0.0
    idx = np.random.default_rng(2).integers(0, 5, size=(50, 6)).astype(np.uint8)
    assert subset_entropy(idx, 3, 10) == subset_entropy(idx, 3, 10)     # seeded


def separable_features(n=600, d=32, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centers = torch.randn(classes, d, generator=g)
    scale = torch.logspace(-2, 2, d)               # features on very different scales
    x = (centers[y] + 0.7 * torch.randn(n, d, generator=g)) * scale + 50.0
    return {"train": x, "train_labels": y, "test": x, "test_labels": y, "num_classes": classes}


def test_tuned_head_fits_where_the_papers_recipe_underfits():
    feats = separable_features()
    paper = TransferConfig(lr=1e-3, epochs=10, seeds=(0,))
    tuned = dataclasses.replace(paper, standardize=True, init="ridge")
    acc_paper = train_head(feats, paper, 0)["train_acc"]
    acc_tuned = train_head(feats, tuned, 0)["train_acc"]
    assert acc_tuned > 95.0 and acc_tuned > acc_paper + 20.0
    start_only = train_head(feats, dataclasses.replace(tuned, epochs=0), 0)["train_acc"]
    assert start_only > 90.0                         # the closed form alone fits


def test_holdout_split_is_stratified_and_disjoint():
    labels = torch.arange(100) % 4
    fit, held = holdout_split(labels, 0.2)
    assert len(set(fit.tolist()) & set(held.tolist())) == 0 and len(fit) + len(held) == 100
    assert torch.bincount(labels[held]).tolist() == [5, 5, 5, 5]
