"""FLOPs and memory of one backprop step: frozen encoder (head only) vs full fine-tuning.

Usage:
    row = profile_step(model, mode="frozen", batch=16, image_size=32)
    row["mflops"], row["memory_mb"], row["memory_parts"]

FLOPs come from torch.utils.flop_counter (a multiply-add is 2 FLOPs) over
one forward and one backward pass. With a frozen encoder the backward pass
only computes the head's weight and bias gradients: no gradient flows into
the features. For pruned encoders we also count the multiply-adds whose
weight is non-zero (what a sparse kernel executes): for every conv and
linear layer, the dense MACs scaled by the layer's weight density.

Memory is the sum of four parts, each counted exactly from the tensors:
  weights     every parameter the step reads (the whole model: the frozen
              encoder still runs forward),
  gradients   one per trainable parameter,
  optimizer   optimizer state per trainable parameter (SGD with momentum:
              1 buffer; Adam: 2),
  activations tensors autograd saves for the backward pass, measured with
              saved_tensors_hooks and deduplicated by storage.
The "backprop" memory (what training adds on top of inference) is
gradients + optimizer + activations; MB means 10^6 bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models import head_of


@dataclass(frozen=True)
class StepProfile:
    mode: str
    batch: int
    image_size: int
    flops: int
    nonzero_flops: int
    weights_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int

    @property
    def backprop_bytes(self) -> int:
        return self.gradient_bytes + self.optimizer_bytes + self.activation_bytes


def trainable_parameters(model: nn.Module, mode: str) -> list[nn.Parameter]:
    if mode == "frozen":
        return list(head_of(model).parameters())
    if mode == "full":
        return list(model.parameters())
    raise ValueError(f"mode must be 'frozen' or 'full', got {mode!r}")


def _saved_activation_bytes(fn) -> int:
    """Bytes of the distinct tensors autograd saves while running fn()."""
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor):
        if not isinstance(t, nn.Parameter) and t.requires_grad is not None:
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
            if not t.is_leaf or not t.requires_grad:
                seen[key] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def _nonzero_macs_ratio(model: nn.Module, x: torch.Tensor) -> float:
    """Non-zero-weight MACs over dense MACs of one forward pass."""
    dense, sparse = [0], [0.0]

    def hook(mod, inputs, output):
        w = mod.weight
        if isinstance(mod, nn.Conv2d):
            macs = output.numel() * (w.shape[1] * w.shape[2] * w.shape[3])
        else:
            macs = output.numel() * w.shape[1]
        dense[0] += macs
        sparse[0] += macs * float(torch.count_nonzero(w)) / w.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return sparse[0] / max(dense[0], 1)


def profile_step(model: nn.Module, mode: str, batch: int = 16, image_size: int = 32,
                 optimizer: str = "sgd") -> StepProfile:
    """One training step. Frozen: the features come from a no-grad encoder pass
    (not counted: it is inference, and cacheable), then the head runs forward
    and backward. Full: the whole model runs forward and backward."""
    from .models import split_model

    model = model.eval()   # BatchNorm statistics are not what we count
    encoder, head = split_model(model)
    net = head if mode == "frozen" else model
    trainable = trainable_parameters(model, mode) if mode == "full" else list(head.parameters())
    for p in model.parameters():
        p.requires_grad_(mode == "full")
    for p in trainable:
        p.requires_grad_(True)
    x = torch.randn(batch, 3, image_size, image_size)
    y = torch.randint(0, head.out_features, (batch,))
    if mode == "frozen":
        with torch.no_grad():
            x = encoder.eval()(x)

    def step():
        nn.functional.cross_entropy(net(x), y).backward()

    counter = FlopCounterMode(display=False)
    with counter:
        activations = _saved_activation_bytes(step)
    flops = int(counter.get_total_flops())
    ratio = _nonzero_macs_ratio(model, x) if mode == "full" else 1.0
    states = {"sgd": 1, "adam": 2}[optimizer]
    train_bytes = sum(p.numel() * p.element_size() for p in trainable)
    return StepProfile(
        mode=mode, batch=batch, image_size=image_size, flops=flops,
        nonzero_flops=int(round(flops * ratio)),
        weights_bytes=sum(p.numel() * p.element_size() for p in net.parameters()),
        gradient_bytes=train_bytes, optimizer_bytes=states * train_bytes,
        activation_bytes=activations)


# Paper Table 2 (VLCS, 5 classes): (MFLOPs, MB) per model and mode. The paper's
# "MobileNet-v3" is the large variant: only its 1280-wide head gives 0.41 MFLOPs.
PAPER_TABLE2 = {("resnet18", "frozen"): (0.16, 0.03), ("resnet18", "full"): (30.03, 131.49),
                ("mobilenet_v3_large", "frozen"): (0.41, 0.08),
                ("mobilenet_v3_large", "full"): (229.05, 48.23)}


def table2_row(model_name: str, model: nn.Module, mode: str, batch: int) -> dict:
    """One row: `memory_mb` is weights + gradients + SGD momentum of the trained
    parameters (the count that reproduces the paper's frozen rows); saved
    activations are reported beside it, and in `total_memory_mb`."""
    p = profile_step(model, mode, batch=batch)
    params_mb = p.gradient_bytes / 1e6          # one float32 weight per gradient
    memory = params_mb + (p.gradient_bytes + p.optimizer_bytes) / 1e6
    paper = PAPER_TABLE2.get((model_name, mode), (None, None))
    return {"model": model_name, "mode": mode, "batch": batch,
            "mflops": p.flops / 1e6, "nonzero_mflops": p.nonzero_flops / 1e6,
            "memory_mb": memory, "activation_mb": p.activation_bytes / 1e6,
            "total_memory_mb": memory + p.activation_bytes / 1e6,
            "weights_mb": params_mb, "gradients_mb": p.gradient_bytes / 1e6,
            "optimizer_mb": p.optimizer_bytes / 1e6,
            "paper_mflops": paper[0], "paper_memory_mb": paper[1]}


METHODOLOGY = (
    "One training step (forward + backward) at batch {batch}, 32x32 inputs, float32. "
    "FLOPs: torch.utils.flop_counter (1 multiply-add = 2 FLOPs); frozen = the head only, on "
    "cached encoder features. memory_mb = weights + gradients + SGD-momentum state of the "
    "trained parameters (MB = 1e6 B); activation_mb = tensors saved for backward; "
    "nonzero_mflops counts only multiply-adds whose weight is non-zero. "
    "This reproduces the paper's frozen rows exactly; its full rows are not reproducible "
    "(see README, 'Table 2').")


def profile_rows(batch: int, classes: int, run_paths=None) -> list[dict]:
    """Table 2 rows for the three dense models at width 1, and for a run's pruned
    levels (the selected one and the dense one) when a run folder is given."""
    from . import atomic
    from .models import build_model
    from .pruning.checkpoint import load_level

    rows = []
    for name in ("resnet18", "mobilenet_v3_small", "mobilenet_v3_large"):
        torch.manual_seed(0)
        model = build_model(name, classes, 1.0)
        rows += [table2_row(name, model, mode, batch) for mode in ("frozen", "full")]
    if run_paths is not None:
        levels = run_paths.existing_levels()
        if not levels:
            from .errors import UserError
            raise UserError(f"run folder {run_paths.root} has no level checkpoints")
        chosen = None
        if run_paths.entropy_json.is_file():
            chosen = atomic.read_json(run_paths.entropy_json).get("selected_level")
        for level in sorted({levels[0], chosen if chosen is not None else levels[-1]}):
            model, _, meta = load_level(run_paths.level_checkpoint(level))
            name = f"{meta['arch']}@w{meta['width']:g}/level{level}(alpha={meta['alpha_actual']:.4f})"
            rows += [table2_row(name, model, mode, batch) for mode in ("frozen", "full")]
        atomic.write_json(run_paths.profile_json, {"methodology": METHODOLOGY.format(batch=batch),
                                                   "rows": rows})
    return rows


def table2_text(rows: list[dict]) -> str:
    def num(v, fmt):
        return format(v, fmt) if v is not None else format("-", f">{fmt.split('.')[0]}")
    lines = [f"{'model':<44} {'mode':<6} {'MFLOPs':>11} {'nz MFLOPs':>11} {'paper':>8} "
             f"{'mem MB':>9} {'paper':>7} {'act MB':>9}"]
    for r in rows:
        lines.append(f"{r['model']:<44} {r['mode']:<6} {r['mflops']:>11.2f} "
                     f"{r['nonzero_mflops']:>11.2f} {num(r['paper_mflops'], '8.2f')} "
                     f"{r['memory_mb']:>9.3f} {num(r['paper_memory_mb'], '7.2f')} "
                     f"{r['activation_mb']:>9.3f}")
    lines.append(METHODOLOGY.format(batch=rows[0]["batch"] if rows else 16))
    return "\n".join(lines)
