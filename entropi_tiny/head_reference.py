"""Float32 reference of the on-device linear head (firmware/src/et_head.c), step by step.

Usage:
    ref = HeadReference(spec)                       # spec: codegen.head.HeadSpec
    losses = ref.fit(train_q, train_labels)         # spec.epochs epochs, int8 features [N][D]
    correct = ref.evaluate(test_q, test_labels)     # top-1 count
    ref.weight, ref.bias                            # float32 (C, D), (C,)

The same arithmetic as the C code in float32 numpy: the same seeded init
(xorshift32, bit-exact), the same shuffle, the same mini-batch grouping and
the same order of the sums that carry state (gradient sums, loss sums).
Only the dot products of the forward pass (numpy's summation order) and
exp/log (numpy's vs libm's) may differ from the device by a few ulps, so the
device's weights and losses agree with these to about 1e-6 relative.
The tests compare the compiled C against this, and this against
torch.optim.SGD; the emulator compares on-device accuracy against it.
"""
from __future__ import annotations

import numpy as np

F32 = np.float32
MASK32 = 0xFFFFFFFF


def xorshift32(state: int) -> int:
    """One step of Marsaglia's xorshift32 (13, 17, 5), as et_head_rand."""
    state ^= (state << 13) & MASK32
    state ^= state >> 17
    state ^= (state << 5) & MASK32
    return state


def seed_state(seed: int) -> int:
    s = (seed ^ 0x9E3779B9) & MASK32
    return s or 1


def uniform_init(seed: int, bound: float, num_classes: int, feature_dim: int):
    """W (C, D) then b (C,), each (2 * (r >> 8) * 2^-24 - 1) * bound in float32."""
    s, draws = seed_state(seed), []
    for _ in range(num_classes * feature_dim + num_classes):
        s = xorshift32(s)
        draws.append(s >> 8)
    u = np.array(draws, dtype=F32) * F32(2.0 ** -24)
    v = (F32(2) * u - F32(1)) * F32(bound)
    return v[:-num_classes].reshape(num_classes, feature_dim).copy(), v[-num_classes:].copy()


def dequantize(q: np.ndarray, zero_point: int, scale: float) -> np.ndarray:
    """x = (q - zero_point) * scale: exact int32 subtraction, one float32 rounding."""
    return (np.asarray(q, np.int32) - np.int32(zero_point)).astype(F32) * F32(scale)


def loss_grad(z: np.ndarray, label: int) -> tuple[np.float32, np.ndarray]:
    """Softmax cross-entropy with the max subtracted; (loss, dL/dz) as et_head_loss_grad."""
    m = z.max()
    e = np.exp(z - m).astype(F32)
    s = F32(0)
    for v in e:                      # the C sum's order
        s = F32(s + v)
    d = e / s
    d[label] -= F32(1)
    return F32(np.log(s)) - F32(z[label] - m), d


class HeadReference:
    """The device head's state and SGD, in float32 numpy."""

    def __init__(self, spec):
        self.spec = spec
        c, d = spec.num_classes, spec.feature_dim
        if spec.init == "uniform":
            self.weight, self.bias = uniform_init(spec.seed, spec.bound, c, d)
        elif spec.init == "table":
            self.weight = np.array(spec.init_weight, F32)
            self.bias = (np.array(spec.init_bias, F32) if spec.init_bias is not None
                         else np.zeros(c, F32))
        else:
            self.weight, self.bias = np.zeros((c, d), F32), np.zeros(c, F32)
        self.momentum_on = spec.momentum != 0
        self.weight_buf, self.bias_buf = np.zeros((c, d), F32), np.zeros(c, F32)
        self.grad_weight, self.grad_bias = np.zeros((c, d), F32), np.zeros(c, F32)
        self.pending = 0
        self.momentum, self.weight_decay = F32(spec.momentum), F32(spec.weight_decay)
        self.lr = F32(spec.lr)
        self.rng = seed_state(~spec.seed & MASK32)

    # -- one sample -----------------------------------------------------------
    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return dequantize(q, self.spec.feature_zero_point, self.spec.feature_scale)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return (self.weight @ x).astype(F32) + self.bias

    def predict(self, x: np.ndarray) -> int:
        return int(np.argmax(self.forward(x)))    # first maximum, as the C code

    # -- SGD -------------------------------------------------------------------
    def _update(self, p, g, buf, lr):
        """g += wd * p; buf = momentum * buf + g; p -= lr * buf (in place)."""
        g = g + self.weight_decay * p
        if self.momentum_on:
            buf[...] = self.momentum * buf + g
            g = buf
        p[...] = p - F32(lr) * g

    def sgd_step(self, x: np.ndarray, label: int, lr) -> np.float32:
        loss, dz = loss_grad(self.forward(x), label)
        self._update(self.weight, np.outer(dz, x).astype(F32), self.weight_buf, lr)
        self._update(self.bias, dz, self.bias_buf, lr)
        return loss

    def accumulate(self, x: np.ndarray, label: int) -> np.float32:
        loss, dz = loss_grad(self.forward(x), label)
        self.grad_weight += np.outer(dz, x).astype(F32)
        self.grad_bias += dz
        self.pending += 1
        return loss

    def apply(self, lr) -> None:
        if self.pending == 0:
            return
        inv = F32(1) / F32(self.pending)
        self._update(self.weight, self.grad_weight * inv, self.weight_buf, lr)
        self._update(self.bias, self.grad_bias * inv, self.bias_buf, lr)
        self.grad_weight[...] = 0
        self.grad_bias[...] = 0
        self.pending = 0

    # -- epochs ----------------------------------------------------------------
    def shuffle(self, n: int) -> np.ndarray:
        order = list(range(n))
        if self.spec.shuffle:
            for i in range(n - 1, 0, -1):
                self.rng = xorshift32(self.rng)
                j = self.rng % (i + 1)
                order[i], order[j] = order[j], order[i]
        return np.array(order)

    def train_epoch(self, q: np.ndarray, labels: np.ndarray, lr) -> np.float32:
        n, b = len(q), self.spec.batch_size
        order = self.shuffle(n)
        total = F32(0)
        for start in range(0, n, b):
            for idx in order[start:start + b]:
                x = self.dequantize(q[idx])
                if b > 1:
                    total = F32(total + self.accumulate(x, int(labels[idx])))
                else:
                    total = F32(total + self.sgd_step(x, int(labels[idx]), lr))
            if b > 1:
                self.apply(lr)
        return total / F32(n)

    def fit(self, q: np.ndarray, labels: np.ndarray, epochs: int | None = None) -> list[float]:
        """Epochs with lr_e = lr_{e-1} * lr_decay; the mean loss of each."""
        losses = []
        for _ in range(self.spec.epochs if epochs is None else epochs):
            losses.append(float(self.train_epoch(q, labels, self.lr)))
            self.lr = F32(self.lr * F32(self.spec.lr_decay))
        return losses

    def evaluate(self, q: np.ndarray, labels: np.ndarray) -> int:
        x = self.dequantize(q)
        logits = (x @ self.weight.T).astype(F32) + self.bias
        return int(np.sum(np.argmax(logits, axis=1) == np.asarray(labels)))
