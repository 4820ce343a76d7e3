"""A non-saturating entropy criterion: eq. 6 over random subsets of k neurons, averaged.

Usage:
    bits, spread = subset_entropy(indices, k=4, draws=64)   # indices: (n, N) eq. 2 values

Why: eq. 6 counts the joint states of all N outputs. With N in the hundreds and
|D| in the thousands nearly every sample is its own state, so H = log2 |D| for
most encoders (saturation) and the criterion cannot tell them apart. The joint
entropy of k neurons at a time cannot saturate when k * log2(M + 1) < log2 |D|
(k = 4, M = 4: at most 9.3 bits against 10.6 for 1,500 samples), yet it still
sees how neurons co-vary, which the per-neuron bound (eq. 8) ignores.

What: H_k = mean over `draws` random k-subsets S of H(q_S), with q quantised
exactly as for eq. 6 (the same global Delta of eq. 3) and S drawn without
replacement by a generator seeded with 0, so the value is reproducible. By Han's
inequality the average subset entropy per neuron, H_k / k, decreases from the
mean per-neuron entropy (k = 1, eq. 8 / N) to H / N (k = N, eq. 6 / N): this
criterion sits between the two the paper defines. k >= N gives eq. 6 itself.
The spread over the draws is returned beside the mean.
"""
from __future__ import annotations

import math

import numpy as np


def subset_entropy(indices: np.ndarray, k: int, draws: int, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation (bits) of the joint entropy of random k-neuron subsets."""
    n, n_neurons = indices.shape
    if n == 0:
        raise ValueError("no samples")
    k = min(int(k), n_neurons)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws if k < n_neurons else 1):
        cols = np.sort(rng.choice(n_neurons, size=k, replace=False))
        _, counts = np.unique(indices[:, cols], axis=0, return_counts=True)
        values.append(_bits(counts, n))
    mean = math.fsum(values) / len(values)
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return mean, spread


def subset_ceiling(n_samples: int, n_neurons: int, span: int, k: int) -> float:
    """The most bits one k-subset can carry: min(k log2 span, log2 |D|)."""
    return min(min(k, n_neurons) * math.log2(max(span, 1)), math.log2(n_samples))


def _bits(counts: np.ndarray, total: int) -> float:
    c = counts[counts > 1].astype(np.float64)
    return max(0.0, math.log2(total) - math.fsum((c * np.log2(c)).tolist()) / total)
