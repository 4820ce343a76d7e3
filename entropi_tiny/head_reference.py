"""Float32 reference of the on-device linear head (firmware/src/et_head.c), step by step.

Usage:
    ref = HeadReference(spec)                       # spec: codegen.head.HeadSpec
    losses = ref.fit(train_q, train_labels)         # spec.epochs epochs, int8 features [N][D]
    correct = ref.evaluate(test_q, test_labels)     # top-1 count
    ref.weight, ref.bias                            # float32 (C, D), (C,)

The same arithmetic as the C code, operation by operation in float32 numpy:
the same seeded init (xorshift32), the same shuffle, the forward sums in
the same order (over d, vectorised over classes), the same float32-only exp
(et_head_expf), the same mini-batch sums, the same bfloat16 rounding
(nearest-even, or stochastic from the same counter hash). Elementwise
float32 operations are correctly rounded on both sides, so the weights the
device computes are those computed here, bit for bit; only the reported
losses go through libm's logf vs numpy's log (1 ulp).
The tests compare the compiled C against this, and this (float32 storage)
against torch.optim.SGD; the emulator compares on-device accuracy against it.
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


U32 = np.uint32


def mix32(x: np.ndarray) -> np.ndarray:
    """murmur3's 32-bit finaliser, elementwise on uint32 (as et_head.c's mix32)."""
    x = np.asarray(x, U32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> U32(16))
        x = x * U32(0x85EBCA6B)
        x = x ^ (x >> U32(13))
        x = x * U32(0xC2B2AE35)
        x = x ^ (x >> U32(16))
    return x


def round_key(step: int, seed: int) -> int:
    return int(mix32(U32((step * 0x9E3779B9 + seed) & MASK32)))


def to_bf16(v: np.ndarray, key: int | None, index: np.ndarray | None) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16): nearest-even (key None) or stochastic."""
    u = np.asarray(v, F32).view(U32)
    with np.errstate(over="ignore"):
        if key is None:
            u = u + U32(0x7FFF) + ((u >> U32(16)) & U32(1))
        else:
            u = u + (mix32(U32(key) ^ index) & U32(0xFFFF))
    return (u >> U32(16)).astype(np.uint16)


def from_bf16(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, U32) << U32(16)).view(F32)


def expf(x: np.ndarray) -> np.ndarray:
    """et_head_expf: 2^n times a degree-7 Taylor polynomial, float32 operations only."""
    x = np.minimum(np.asarray(x, F32), F32(88))
    n = np.floor(x * F32(float.fromhex("0x1.715476p+0")) + F32(0.5)).astype(F32)
    r = (x - n * F32(float.fromhex("0x1.62e4p-1"))) - n * F32(float.fromhex("0x1.7f7d1cp-20"))
    p = F32(1) / F32(5040)
    for c in (F32(1) / F32(720), F32(1) / F32(120), F32(1) / F32(24), F32(1) / F32(6),
              F32(0.5), F32(1), F32(1)):
        p = (p * r + c).astype(F32)
    scale = ((np.clip(n, -126, 127).astype(np.int32) + 127).astype(U32) << U32(23)).view(F32)
    return np.where(x < F32(-80), F32(0), p * scale).astype(F32)


def loss_grad(z: np.ndarray, label: int) -> tuple[np.float32, np.ndarray]:
    """Softmax cross-entropy with the max subtracted; (loss, dL/dz) as et_head_loss_grad."""
    m = z.max()
    e = expf(z - m)
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
            w, self.bias = uniform_init(spec.seed, spec.bound, c, d)
        elif spec.init == "table":
            w = np.array(spec.init_weight, F32)
            self.bias = (np.array(spec.init_bias, F32) if spec.init_bias is not None
                         else np.zeros(c, F32))
        else:
            w, self.bias = np.zeros((c, d), F32), np.zeros(c, F32)
        self.weight = self._store(w, spec.weight_bits, None, None)   # init: nearest-even
        self.momentum_on = spec.momentum != 0
        self.weight_buf, self.bias_buf = np.zeros((c, d), F32), np.zeros(c, F32)
        self.index = np.arange(c * d, dtype=U32).reshape(c, d) * U32(2)
        self.batch_dz, self.batch_q = [], []
        self.step = 0
        self.momentum, self.weight_decay = F32(spec.momentum), F32(spec.weight_decay)
        self.lr = F32(spec.lr)
        self.rng = seed_state(~spec.seed & MASK32)

    @staticmethod
    def _store(v: np.ndarray, bits: int, key, index) -> np.ndarray:
        """What the device keeps of a float32 value: itself, or its bfloat16 rounding."""
        return v.astype(F32) if bits == 32 else from_bf16(to_bf16(v, key, index))

    @property
    def pending(self) -> int:
        return len(self.batch_dz)

    # -- one sample -----------------------------------------------------------
    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return dequantize(q, self.spec.feature_zero_point, self.spec.feature_scale)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """z = (sum_d W[:, d] x[d], in increasing d) + b: the C loop's roundings."""
        return self._logits(np.asarray(x, F32)[None, :])[0]

    def _logits(self, x: np.ndarray) -> np.ndarray:
        acc = np.zeros((len(x), self.spec.num_classes), F32)
        for d in range(self.spec.feature_dim):
            acc += x[:, d:d + 1] * self.weight[None, :, d]
        return acc + self.bias

    def predict(self, x: np.ndarray) -> int:
        return int(np.argmax(self.forward(x)))    # first maximum, as the C code

    # -- SGD -------------------------------------------------------------------
    def _update_weights(self, grad: np.ndarray, lr) -> None:
        """et_head.c's update_weight on every weight, storage roundings included."""
        spec = self.spec
        key = round_key(self.step, spec.seed) if spec.rounding == "stochastic" else None
        self.step += 1
        g = grad + self.weight_decay * self.weight
        if self.momentum_on:
            g = (self.momentum * self.weight_buf + g).astype(F32)
            self.weight_buf = self._store(g, spec.momentum_bits, key, self.index + U32(1))
        self.weight = self._store(self.weight - F32(lr) * g, spec.weight_bits, key, self.index)

    def _update_bias(self, grad: np.ndarray, lr) -> None:
        g = grad + self.weight_decay * self.bias
        if self.momentum_on:
            self.bias_buf = (self.momentum * self.bias_buf + g).astype(F32)
            g = self.bias_buf
        self.bias = (self.bias - F32(lr) * g).astype(F32)

    def sgd_step(self, x: np.ndarray, label: int, lr) -> np.float32:
        loss, dz = loss_grad(self.forward(x), label)
        self._update_weights(np.outer(dz, x).astype(F32), lr)
        self._update_bias(dz, lr)
        return loss

    def accumulate(self, x: np.ndarray, label: int, q: np.ndarray) -> np.float32:
        """One sample of a mini-batch: its loss; keeps dL/dz and its int8 row q."""
        loss, dz = loss_grad(self.forward(x), label)
        self.batch_dz.append(dz)
        self.batch_q.append(np.asarray(q))
        return loss

    def apply(self, lr) -> None:
        """G = sum of dz_i[c] x_i[d] in sample order, then grad = G * (1/k)."""
        if self.pending == 0:
            return
        inv = F32(1) / F32(self.pending)
        g, gb = np.zeros_like(self.weight), np.zeros_like(self.bias)
        for dz, q in zip(self.batch_dz, self.batch_q):
            g += np.outer(dz, self.dequantize(q)).astype(F32)
            gb += dz
        self._update_weights(g * inv, lr)
        self._update_bias(gb * inv, lr)
        self.batch_dz, self.batch_q = [], []

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
                    total = F32(total + self.accumulate(x, int(labels[idx]), q[idx]))
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
        logits = self._logits(self.dequantize(q))
        return int(np.sum(np.argmax(logits, axis=1) == np.asarray(labels)))
