"""Tests of the exact activation entropy (paper eqs. 2-9) and of level selection.

Usage: .venv/bin/python -m pytest tests/test_entropy.py
"""
import math
from collections import Counter

import numpy as np
import pytest
import torch

from entropi_tiny.errors import UserError
from entropi_tiny.models import build_model, split_model
from entropi_tiny.selection.entropy import (EntropyCounter, encoder_entropy,
                                            entropy_of_batches, select_level)


def entropy(y, levels=4, batch=None):
    """entropy_of_batches over y cut into batches of `batch` rows (all if None)."""
    step = batch or len(y)
    return entropy_of_batches(lambda: (y[i:i + step] for i in range(0, len(y), step)), levels)


def naive(y, levels):
    """Per-sample reference with Python floats and tuple keys: (exact, bound, states)."""
    rows = np.asarray(y, np.float64).reshape(len(y), -1).tolist()
    lo, hi = min(map(min, rows)), max(map(max, rows))
    delta = (hi - lo) / levels
    q = [tuple(math.floor(v / delta + 0.5) if delta else 0 for v in row) for row in rows]

    def h(counts):
        return -sum(c / len(q) * math.log2(c / len(q)) for c in counts)
    states = Counter(q)
    return h(states.values()), sum(h(Counter(col).values()) for col in zip(*q)), len(states)


def random_data(n=300, neurons=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, neurons)).astype(np.float32)


def structured_data(n=300, neurons=8, seed=1):
    # ReLU of a rank-2 projection: neurons are strongly dependent, so the
    # joint entropy sits far below the sum of the per-neuron entropies.
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1, 1, size=(n, 2)) @ rng.normal(size=(2, neurons))
    return np.maximum(z, 0).astype(np.float32)


def test_hand_worked_two_neurons():
    # M = 2, min 0, max 1 -> Delta = 0.5, q = floor(2y + 1/2):
    #   y = (0.0, 1.0) -> (0, 2)     y = (0.2, 0.9) -> (0, 2)
    #   y = (0.6, 0.4) -> (1, 1)     y = (1.0, 0.0) -> (2, 0)
    # states: (0,2) x2, (1,1), (2,0): H = 1/2*1 + 2 * 1/4*2 = 1.5 bits.
    # neuron 0 q's {0,0,1,2}: 1.5 bits; neuron 1 {2,2,1,0}: 1.5 bits; bound 3.
    r = entropy(np.array([[0.0, 1.0], [0.2, 0.9], [0.6, 0.4], [1.0, 0.0]]), levels=2)
    assert (r.exact_bits, r.bound_bits, r.n_states, r.delta) == (1.5, 3.0, 3, 0.5)
    assert not r.saturated
    assert r.max_bits == 2.0  # min(2 * log2(3), log2(4))


def test_negative_outputs_are_shifted_and_saturate():
    # M = 4, min -1, max 1 -> Delta = 0.5; q = floor(2y + 1/2) = -2, 0, 1, 2:
    # four distinct states in four samples: H = log2 4 = 2 bits, saturated.
    r = entropy(np.array([[-1.0], [-0.2], [0.3], [1.0]]), levels=4)
    assert (r.exact_bits, r.bound_bits, r.n_states) == (2.0, 2.0, 4)
    assert r.saturated and r.max_bits == 2.0


def test_exact_halves_round_up():
    # M = 2, Delta = 0.5: y/Delta + 1/2 = 0.5, 1.0, 2.0, 2.5 -> q = 0, 1, 2, 2
    # (np.round would give 0, 0, 2, 2). States 0, 1, 2x2: H = 1.5 bits.
    r = entropy(np.array([[0.0], [0.25], [0.75], [1.0]]), levels=2)
    assert (r.exact_bits, r.n_states) == (1.5, 3)


def test_constant_outputs_have_zero_entropy():
    r = entropy(np.full((5, 3), 3.0))
    assert (r.exact_bits, r.bound_bits, r.delta, r.n_states, r.max_bits) == (0.0, 0.0, 0.0, 1, 0.0)
    assert not r.saturated


@pytest.mark.parametrize("data", [random_data(), structured_data(), random_data(200, 2)])
@pytest.mark.parametrize("levels", [2, 4, 300])
def test_matches_per_sample_reference(data, levels):
    exact, bound, states = naive(data, levels)
    r = entropy(data, levels, batch=64)
    assert r.n_states == states
    assert r.exact_bits == pytest.approx(exact, abs=1e-9)
    assert r.bound_bits == pytest.approx(bound, abs=1e-9)


@pytest.mark.parametrize("data", [random_data(), structured_data(), random_data(1000, 2)])
def test_entropy_within_its_bounds(data):
    r = entropy(data, levels=4)
    ceiling = min(data.shape[1] * math.log2(5), math.log2(len(data)))
    assert r.max_bits == pytest.approx(ceiling)
    assert 0.0 < r.exact_bits <= r.max_bits + 1e-12
    assert r.exact_bits <= r.bound_bits + 1e-9
    assert r.bound_bits <= data.shape[1] * math.log2(5) + 1e-9


def test_structured_data_is_far_below_its_bound():
    r = entropy(structured_data(), levels=4)
    assert r.exact_bits < r.bound_bits - 1.0 and not r.saturated


def test_invariant_to_order_and_batching():
    data = structured_data(500)
    shuffled = data[np.random.default_rng(3).permutation(len(data))]
    ref = entropy(data).to_dict()
    for y, batch in [(data, 1), (data, 7), (shuffled, None), (shuffled, 7)]:
        assert entropy(y, batch=batch).to_dict() == ref


def test_saturation_when_every_sample_is_its_own_state():
    r = entropy(random_data(50, 64), levels=4)
    assert r.saturated and r.n_states == 50
    assert r.exact_bits == math.log2(50) == r.max_bits
    assert r.bound_bits > r.exact_bits


def test_tensors_and_trailing_dims():
    data = random_data(60, 12)
    ref = entropy(data).to_dict()
    assert entropy(data.reshape(60, 2, 2, 3)).to_dict() == ref
    assert entropy(torch.from_numpy(data)).to_dict() == ref


@pytest.mark.parametrize("levels", [1, 0, -3, 2.5, True])
def test_bad_levels(levels):
    with pytest.raises(UserError, match="M must be"):
        EntropyCounter(levels)


@pytest.mark.parametrize("batches", [[], [np.zeros((0, 4))]])
def test_empty_dataset(batches):
    with pytest.raises(UserError, match="empty dataset"):
        entropy_of_batches(lambda: batches)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((3, 0)), np.array([[1.0, np.nan]])])
def test_bad_batches(bad):
    with pytest.raises(UserError):
        EntropyCounter().observe_range(bad)


def test_passes_must_see_the_same_data():
    counter = EntropyCounter()
    counter.observe_range(np.array([[0.0], [1.0]]))
    with pytest.raises(RuntimeError, match="outside"):
        counter.count(np.array([[2.0]]))
    counter.count(np.array([[0.5]]))
    with pytest.raises(RuntimeError, match="pass 1 saw 2 samples"):
        counter.result()


def row(level, alpha, exact, bound):
    return {"level": level, "alpha": alpha, "exact_bits": exact, "bound_bits": bound,
            "saturated": False}


def test_select_argmax():
    rows = [row(0, 1.0, 3.0, 9.0), row(1, 0.75, 5.0, 8.0), row(2, 0.56, 4.0, 12.0)]
    assert select_level(rows) == 1
    assert select_level(rows, "exact") == 1
    assert select_level(rows, "bound") == 2


def test_select_ties():
    sat = math.log2(1000)  # several encoders saturated at log2 |D|
    rows = [row(3, 0.42, sat, 50.0), row(4, 0.32, sat, 60.0), row(5, 0.24, sat, 55.0),
            row(6, 0.18, 7.0, 70.0)]
    assert select_level(rows) == 4  # higher bound among the saturated
    rows[0]["bound_bits"] = 60.0
    assert select_level(rows) == 4  # same exact and bound: smaller alpha
    assert select_level(rows, "bound") == 6
    rows[3]["bound_bits"] = 60.0
    assert select_level(rows, "bound") == 4  # same bound: higher exact, then smaller alpha


def test_select_errors():
    with pytest.raises(UserError, match="unknown entropy criterion"):
        select_level([row(0, 1.0, 1.0, 1.0)], "max")
    with pytest.raises(UserError):
        select_level([])
    with pytest.raises(UserError, match="alpha"):
        select_level([{"level": 0, "exact_bits": 1.0, "bound_bits": 1.0}])


@pytest.fixture(scope="module")
def tiny_encoder():
    torch.manual_seed(0)
    encoder, _ = split_model(build_model("resnet18", 5, width=0.125))
    return encoder


@pytest.mark.parametrize("batch_size", [16, 40])
def test_encoder_entropy_matches_features(tiny_encoder, batch_size):
    images = torch.randint(0, 256, (40, 3, 32, 32), generator=torch.Generator().manual_seed(1),
                           dtype=torch.uint8)
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), 0.25

    def normalize(x):  # takes the raw uint8 batch, like entropi_tiny.data.normalize
        return (x.float() / 255 - mean) / std
    tiny_encoder.eval()
    with torch.no_grad():  # batch 40 is one shot; batch 16 the same cuts as the estimator's
        x = normalize(images)
        features = torch.cat([tiny_encoder(x[i:i + batch_size]) for i in range(0, 40, batch_size)])
    tiny_encoder.train()
    r = encoder_entropy(tiny_encoder, images, batch_size=batch_size, normalize=normalize)
    assert tiny_encoder.training  # mode restored
    assert r == entropy_of_batches(lambda: [features])
    assert r.n_samples == 40 and r.n_neurons == features.shape[1] and r.delta > 0


def test_encoder_rejects_images_it_cannot_take(tiny_encoder):
    with pytest.raises(UserError, match="cannot take images of shape"):
        encoder_entropy(tiny_encoder, torch.zeros(4, 1, 32, 32))
    with pytest.raises(UserError, match="images must have shape"):
        encoder_entropy(tiny_encoder, torch.zeros(4, 32, 32))
    with pytest.raises(UserError, match="empty dataset"):
        encoder_entropy(tiny_encoder, torch.zeros(0, 3, 32, 32))


def test_encoder_entropy_scales_uint8_by_default(tiny_encoder):
    images = torch.randint(0, 256, (24, 3, 32, 32), generator=torch.Generator().manual_seed(2),
                           dtype=torch.uint8)
    r = encoder_entropy(tiny_encoder, images, batch_size=8)
    assert r == encoder_entropy(tiny_encoder, images.float() / 255, batch_size=8)
