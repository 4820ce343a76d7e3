"""The float32 head reference against PyTorch: loss, gradient and torch.optim.SGD semantics.

Usage: .venv/bin/python -m pytest tests/test_head_reference.py

The C head is tested against entropi_tiny/head_reference.py; this file ties
that reference to PyTorch (nn.Linear + F.cross_entropy + torch.optim.SGD
with momentum, dampening 0, weight decay on every parameter), so the device
trains what the paper's framework would.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from entropi_tiny.codegen.head import HeadSpec
from entropi_tiny.head_reference import HeadReference, loss_grad, uniform_init

from head_data import cifar_features


def test_loss_grad_matches_torch():
    rng = np.random.default_rng(0)
    for scale in (1.0, 30.0, 1e4):
        z = (rng.normal(0, 1, 7) * scale).astype(np.float32)
        for label in (0, 3, 6):
            loss, grad = loss_grad(z.copy(), label)
            zt = torch.tensor(z, requires_grad=True)
            want = F.cross_entropy(zt[None], torch.tensor([label]))
            want.backward()
            assert np.isfinite(loss)
            np.testing.assert_allclose(loss, want.item(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(grad, zt.grad.numpy(), atol=1e-6)


def test_uniform_init_is_seeded_and_bounded():
    w, b = uniform_init(5, 0.125, 4, 32)
    w2, b2 = uniform_init(5, 0.125, 4, 32)
    w3, _ = uniform_init(6, 0.125, 4, 32)
    assert w.dtype == np.float32 and np.array_equal(w, w2) and np.array_equal(b, b2)
    assert not np.array_equal(w, w3)
    assert w.min() >= -0.125 and w.max() < 0.125 and abs(w.mean()) < 0.02
    assert np.all(np.abs(w * 2 ** 26 - np.round(w * 2 ** 26)) == 0)   # 24 bits times 1/8


@pytest.mark.parametrize("batch, momentum, wd", [(1, 0.0, 0.0), (1, 0.9, 0.05), (8, 0.9, 0.05),
                                                 (7, 0.5, 0.0)])
def test_reference_sgd_equals_torch_sgd(batch, momentum, wd):
    f = cifar_features()
    q, y = f["train_q"], f["train_y"]
    spec = HeadSpec(feature_dim=q.shape[1], num_classes=5, num_samples=len(q),
                    feature_scale=f["scale"], feature_zero_point=f["zero_point"], lr=5e-5,
                    momentum=momentum, weight_decay=wd, batch_size=batch, shuffle=False)
    ref = HeadReference(spec)
    head = torch.nn.Linear(q.shape[1], 5)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(ref.weight))
        head.bias.copy_(torch.from_numpy(ref.bias))
    opt = torch.optim.SGD(head.parameters(), lr=spec.lr, momentum=momentum, weight_decay=wd)
    x = torch.from_numpy(ref.dequantize(q))
    for _ in range(2):
        ref.train_epoch(q, y, ref.lr)
        for start in range(0, len(q), batch):
            opt.zero_grad()
            F.cross_entropy(head(x[start:start + batch]),
                            torch.from_numpy(y[start:start + batch]).long()).backward()
            opt.step()
    w = head.weight.detach().numpy()
    err = np.max(np.abs(ref.weight - w)) / np.max(np.abs(w))
    assert err < 1e-5, err
    np.testing.assert_allclose(ref.bias, head.bias.detach().numpy(), rtol=1e-5, atol=1e-7)
