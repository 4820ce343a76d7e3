"""Exact activation entropy of an encoder's output over a dataset (paper eqs. 2-9).

Usage:
    result = encoder_entropy(encoder, images, batch_size=256, levels=4)
    result = entropy_of_batches(lambda: iter_feature_batches(), levels=4)
    level = select_level(rows, criterion="exact")

What is computed, for one layer with N outputs over a dataset D:
  eq. 3    Delta = (max - min) / M, max and min over all samples and neurons;
  eq. 2    q = floor(y / Delta + 1/2), per neuron (a value exactly halfway rounds up);
  eq. 4-6  a sample's state is its vector of N q's; exact_bits = -sum p log2 p over
           the distinct states, counted exactly (no sampling, no hashing);
  eq. 8-9  bound_bits = sum over neurons of the entropy of that neuron's q.
Logs are base 2: every entropy here is in bits.

Ceiling: because of the +1/2, q takes M + 1 values per neuron (min -> q0, max ->
q0 + M), not M as the paper's log(M^N) says, and |D| samples carry at most
log2 |D| bits: max_bits = min(N * log2(M + 1), log2 |D|). With hundreds of neurons
nearly every sample is its own state: exact_bits then equals log2 |D| and the
result is `saturated`; bound_bits still discriminates such encoders.

Streaming: pass 1 finds min and max, pass 2 quantizes and counts. Memory grows
with the number of distinct states (N bytes each), not with the dataset.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..errors import UserError
from .subsets import subset_ceiling, subset_entropy

CRITERIA = ("exact", "bound", "subset")
MAX_LEVELS = 1024  # keeps the per-neuron histogram (N x (M + 1) counts) small
TIE_BITS = 1e-9  # entropies closer than this are equal for select_level

Batch = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class EntropyResult:
    """The entropy of one layer's output over one dataset, in bits."""

    exact_bits: float  # eq. 6, entropy of the joint states
    bound_bits: float  # eq. 8, sum of per-neuron entropies (>= exact_bits)
    n_samples: int  # |D|
    n_states: int  # distinct states seen
    n_neurons: int  # N
    levels: int  # M
    delta: float  # eq. 3; 0.0 when every output is equal
    y_min: float
    y_max: float
    saturated: bool  # every sample is its own state: exact_bits == log2 |D|
    max_bits: float  # ceiling of exact_bits: min(N * log2(M + 1), log2 |D|)
    # The "subset" criterion (selection/subsets.py), when asked for (subset_k > 0):
    subset_k: int = 0  # neurons per subset
    subset_draws: int = 0
    subset_bits: float | None = None  # mean joint entropy of k-neuron subsets
    subset_bits_std: float | None = None  # its spread over the draws
    subset_max_bits: float | None = None  # min(k log2(M + 1), log2 |D|)

    def to_dict(self) -> dict:
        return asdict(self)


class EntropyCounter:
    """Two-pass exact counter for one layer: observe_range() every batch, freeze(),
    count() the same batches (any grouping or order; it freezes if needed), result()."""

    def __init__(self, levels: int = 4, subset_k: int = 0, subset_draws: int = 0):
        _check_levels(levels)
        self.levels = int(levels)
        # subset_k > 0 keeps every sample's indices (n x N bytes) for subsets.py.
        self.subset_k, self.subset_draws = int(subset_k), int(subset_draws)
        self._kept: list[np.ndarray] = []
        self._n_neurons: int | None = None
        self._y_min, self._y_max = math.inf, -math.inf
        self._n_range = self._n_counted = 0
        self._frozen = False
        self._delta, self._q0, self._span = 0.0, 0, 1
        self._dtype = np.dtype(np.uint8)
        self._states: Counter[bytes] = Counter()
        self._hist = np.zeros(0, np.int64)

    def observe_range(self, batch: Batch) -> None:
        """Pass 1: widen the running min and max (eq. 3)."""
        if self._frozen:
            raise RuntimeError("observe_range() after freeze(): pass 1 is over")
        rows = self._rows(batch)
        if rows.shape[0] == 0:
            return
        lo, hi = float(rows.min()), float(rows.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise UserError("layer outputs contain NaN or infinity: their entropy is undefined")
        self._y_min, self._y_max = min(self._y_min, lo), max(self._y_max, hi)
        self._n_range += rows.shape[0]

    def freeze(self) -> None:
        """End pass 1: fix Delta and the range [q0, q0 + span) of q."""
        if self._frozen:
            return
        if self._n_range == 0:
            raise UserError("empty dataset: no samples to measure the entropy of")
        self._delta = (self._y_max - self._y_min) / self.levels
        if self._delta > 0:
            # q is monotonic in y even in floating point, so every q lies in
            # [q(min), q(max)], M + 1 values (up to rounding at the ends).
            q_lo, q_hi = _quantize(np.array([self._y_min, self._y_max]), self._delta)
            self._q0, self._span = int(q_lo), int(q_hi - q_lo) + 1
        self._dtype = np.min_scalar_type(self._span - 1)  # smallest uint for span - 1
        self._hist = np.zeros(self._n_neurons * self._span, np.int64)
        self._frozen = True

    def count(self, batch: Batch) -> None:
        """Pass 2: quantize a batch; count its states and each neuron's q."""
        self.freeze()
        rows = self._rows(batch)
        if rows.shape[0] == 0:
            return
        if not (rows.min() >= self._y_min and rows.max() <= self._y_max):
            raise RuntimeError("pass 2 saw outputs outside pass 1's range: "
                               "both passes must see the same data")
        idx = self._indices(rows)
        # One state = the N indices packed into N bytes (uint8 for M < 255); the
        # Counter compares these byte strings exactly, so no state is merged.
        keys = idx.view(np.dtype((np.void, idx.shape[1] * idx.itemsize))).ravel()
        self._states.update(keys.tolist())
        # Eq. 9 for every neuron at once: neuron i's value v goes to bin i*span + v.
        bins = idx.astype(np.intp) + np.arange(idx.shape[1], dtype=np.intp) * self._span
        self._hist += np.bincount(bins.ravel(), minlength=self._hist.size)
        self._n_counted += rows.shape[0]
        if self.subset_k > 0:
            self._kept.append(idx)

    def result(self) -> EntropyResult:
        """Eqs. 6 and 8 from the counts of pass 2."""
        self.freeze()
        n = self._n_counted
        if n != self._n_range:
            raise RuntimeError(f"pass 1 saw {self._n_range} samples but pass 2 counted {n}: "
                               "both passes must see the same data")
        counts = np.fromiter(self._states.values(), np.int64, len(self._states))
        per_neuron = self._hist.reshape(self._n_neurons, self._span)
        subset = {}
        if self.subset_k > 0:
            bits, spread = subset_entropy(np.concatenate(self._kept), self.subset_k,
                                          max(self.subset_draws, 1))
            subset = {"subset_k": self.subset_k, "subset_draws": max(self.subset_draws, 1),
                      "subset_bits": bits, "subset_bits_std": spread,
                      "subset_max_bits": subset_ceiling(n, self._n_neurons, self._span,
                                                        self.subset_k)}
        return EntropyResult(
            exact_bits=_entropy_bits(counts, n),
            bound_bits=math.fsum(_entropy_bits(row, n) for row in per_neuron),
            n_samples=n, n_states=len(counts), n_neurons=self._n_neurons,
            levels=self.levels, delta=self._delta, y_min=self._y_min, y_max=self._y_max,
            saturated=len(counts) == n,
            max_bits=min(self._n_neurons * math.log2(self._span), math.log2(n)),
            **subset,
        )

    def _rows(self, batch: Batch) -> np.ndarray:
        """A batch as (samples, neurons), trailing dims flattened, N checked."""
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().cpu().numpy()
        arr = np.asarray(batch)
        if arr.ndim < 2:
            raise UserError(f"a feature batch needs shape (samples, neurons...), got {arr.shape}")
        arr = arr.reshape(arr.shape[0], math.prod(arr.shape[1:]))
        if self._n_neurons is None:
            if arr.shape[1] == 0:
                raise UserError("layer has no outputs: its entropy is undefined")
            self._n_neurons = arr.shape[1]
        elif arr.shape[1] != self._n_neurons:
            raise UserError(f"layer output size changed from {self._n_neurons} to {arr.shape[1]}")
        return arr

    def _indices(self, rows: np.ndarray) -> np.ndarray:
        """Eq. 2 shifted by q0: each q - q0 as a small unsigned int, C-contiguous."""
        if self._delta == 0:
            return np.zeros(rows.shape, self._dtype)
        return np.ascontiguousarray((_quantize(rows, self._delta) - self._q0).astype(self._dtype))


def entropy_of_batches(make_batches: Callable[[], Iterable[Batch]], levels: int = 4,
                       subset_k: int = 0, subset_draws: int = 0) -> EntropyResult:
    """Entropy of a stream of (n, N) batches; make_batches() is called once per
    pass and must yield the same data both times."""
    counter = EntropyCounter(levels, subset_k, subset_draws)
    for batch in make_batches():
        counter.observe_range(batch)
    counter.freeze()
    for batch in make_batches():
        counter.count(batch)
    return counter.result()


def encoder_entropy(encoder: nn.Module, images: torch.Tensor, batch_size: int = 256,
                    levels: int = 4, normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    progress: bool = False, subset_k: int = 0,
                    subset_draws: int = 0) -> EntropyResult:
    """Entropy of encoder(images), with two forward passes in eval mode.

    images: (n, C, H, W) as stored. normalize, if given, maps each raw batch
    (e.g. uint8) to the encoder's float input, on the CPU; without it uint8 is
    scaled to [0, 1] and float is taken as is. The encoder's mode is restored.
    """
    images = torch.as_tensor(images)
    if images.ndim != 4:
        raise UserError(f"images must have shape (n, channels, height, width), got {tuple(images.shape)}")
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    device = next(encoder.parameters(), torch.empty(0)).device
    passes = iter(("entropy pass 1/2 (range)", "entropy pass 2/2 (count)"))

    def features() -> Iterator[torch.Tensor]:
        starts = range(0, len(images), batch_size)
        for start in tqdm(starts, desc=next(passes), disable=not progress, unit="batch"):
            x = images[start:start + batch_size]
            if normalize is not None:
                x = normalize(x)
            elif x.dtype == torch.uint8:
                x = x.float() / 255
            yield _forward(encoder, x.to(device, torch.float32))

    was_training = encoder.training
    encoder.eval()
    try:
        return entropy_of_batches(features, levels, subset_k, subset_draws)
    finally:
        encoder.train(was_training)


def select_level(rows: list[dict], criterion: str = "exact") -> int:
    """The `level` value of the row with the highest entropy under `criterion`.

    rows: dicts with level, alpha, exact_bits, bound_bits (saturated is not read).
    "exact" (default) maximises eq. 6, the entropy the paper selects on (Fig. 3).
    Ties within TIE_BITS, typically several encoders saturated at log2 |D|, go to
    the higher bound_bits: the sum of per-neuron entropies does not saturate at
    log2 |D|, so it is the best remaining measure of how spread the outputs are.
    "bound" maximises eq. 8, ties going to the higher exact_bits.
    "subset" maximises the mean entropy of random k-neuron subsets (subsets.py),
    which does not saturate; ties go to the higher bound_bits.
    Remaining ties go to the smaller alpha: the sparser encoder costs less on
    the device, and the paper's selected encoders are the sparse ones.
    """
    if criterion not in CRITERIA:
        raise UserError(f"unknown entropy criterion '{criterion}' (choose from {', '.join(CRITERIA)})")
    if not rows:
        raise UserError("no pruning levels to select from")
    keys = {"exact": ("exact_bits", "bound_bits"), "bound": ("bound_bits", "exact_bits"),
            "subset": ("subset_bits", "bound_bits")}[criterion]
    need = {"level", "alpha", *keys}
    missing = need - set.intersection(*(set(k for k, v in r.items() if v is not None) for r in rows))
    if missing:
        raise UserError(f"a level's entropy record lacks {', '.join(sorted(missing))}")
    candidates = rows
    for key in keys:
        best = max(row[key] for row in candidates)
        candidates = [row for row in candidates if row[key] >= best - TIE_BITS]
    return int(min(candidates, key=lambda row: (row["alpha"], row["level"]))["level"])


def _check_levels(levels: int) -> None:
    is_int = isinstance(levels, (int, np.integer)) and not isinstance(levels, bool)
    if not is_int or not 2 <= levels <= MAX_LEVELS:
        raise UserError(f"quantization levels M must be >= 2 (and an integer <= {MAX_LEVELS}), "
                        f"got {levels!r}")


def _quantize(y: np.ndarray, delta: float) -> np.ndarray:
    """Eq. 2 in float64: floor(y / Delta + 1/2)."""
    return np.floor(y.astype(np.float64) / delta + 0.5)


def _entropy_bits(counts: np.ndarray, total: int) -> float:
    """-sum p log2 p with p = counts / total, as log2(total) - sum c log2 c / total.

    That form is exactly log2(total) when every count is 1 (saturation), and
    math.fsum rounds once, so the result does not depend on the order of counts.
    """
    c = counts[counts > 1].astype(np.float64)
    return max(0.0, math.log2(total) - math.fsum((c * np.log2(c)).tolist()) / total)


def _forward(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """encoder(x) without gradients; an input it cannot take is a UserError."""
    try:
        with torch.no_grad():
            return encoder(x)
    except torch.OutOfMemoryError:
        raise  # a resource problem, not a bad input
    except RuntimeError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"encoder cannot take images of shape {tuple(x.shape[1:])}: {first}") from e
