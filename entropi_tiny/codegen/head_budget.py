"""Pick the richest head storage that fits the board's RAM, with a byte breakdown.

Usage:
    plan = choose_head(spec, ram_budget=320 * 1024, arena_bytes=135168, test_rows=50,
                       other_bytes=8192 + 6000)            # stack + everything else
    spec = plan.spec                  # spec with weight_bits / momentum_bits / rounding set
    plan.breakdown                    # {"arena": ..., "head_weights": ..., ...}, bytes
    plan.check()                      # raises UserError naming the part that does not fit

The head's state dominates the RAM at the paper's scale (100 classes x 512
features in float32 is 205 KB, momentum doubles it), so the build asks this
function which storage to use. Candidates, richest first: float32 weights and
momentum; float32 weights with bfloat16 momentum; bfloat16 weights and
momentum (stochastic rounding, see docs/head.md for what each costs in
accuracy). The first whose total fits is chosen. An explicit choice (the
spec's own weight_bits / momentum_bits when `explicit` is true) is only
checked. The optimizer's semantics (momentum, batch size) are never changed
behind the user's back: when nothing fits, the error names the component
that overflows and its size.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import UserError
from .head import HeadSpec, head_memory

# RAM outside the arena, the head, the caches and the stack, with room to spare: measured
# 176 B in the plain image and about 6 KB more in the streaming one (frame buffers, one
# sample's features and logits), both of which the build links.
REST_BYTES = 8192
# (weight_bits, momentum_bits, rounding), richest first.
CANDIDATES = ((32, 32, "nearest"), (32, 16, "stochastic"), (16, 16, "stochastic"))
# The order in which the parts are laid against the budget: the first whose running
# total passes it is the one the error names.
PARTS = ("arena", "other", "feature_cache", "head_weights", "optimizer_state", "gradient",
         "head_scratch")
LABELS = {"arena": "the extractor's arena", "other": "stack and the rest",
          "feature_cache": "the feature cache", "head_weights": "the head weights",
          "optimizer_state": "the momentum buffers", "gradient": "the mini-batch dL/dz",
          "head_scratch": "the head scratch"}


@dataclass(frozen=True)
class HeadPlan:
    spec: HeadSpec
    breakdown: dict
    ram_budget: int

    @property
    def total(self) -> int:
        return sum(self.breakdown.values())

    @property
    def fits(self) -> bool:
        return self.total <= self.ram_budget

    def overflow_part(self) -> str | None:
        """The first part (in PARTS order) whose running total passes the budget."""
        running = 0
        for part in PARTS:
            running += self.breakdown[part]
            if running > self.ram_budget:
                return part
        return None

    def check(self, board: str = "the board") -> None:
        part = self.overflow_part()
        if part is None:
            return
        s = self.spec
        raise UserError(
            f"head does not fit {board}'s RAM: {LABELS[part]} ({self.breakdown[part]:,} B) "
            f"overflows it by {self.total - self.ram_budget:,} B (budget {self.ram_budget:,} B; "
            f"{s.num_classes} classes x {s.feature_dim} features, weights {s.weight_bits}-bit, "
            f"momentum {'off' if s.momentum == 0 else f'{s.momentum_bits}-bit'}, batch "
            f"{s.batch_size}); use fewer classes or samples, firmware.momentum=0 or a sparser model")


def breakdown(spec: HeadSpec, arena_bytes: int, test_rows: int, other_bytes: int) -> dict:
    """RAM by part: the head's state split as head_memory() does, the cache = train + test rows."""
    mem = head_memory(spec)
    return {"arena": int(arena_bytes), "other": int(other_bytes),
            "feature_cache": mem["cache_bytes"] + int(test_rows) * spec.feature_dim,
            "head_weights": mem["weight_bytes"], "optimizer_state": mem["optimizer_bytes"],
            "gradient": mem["gradient_bytes"], "head_scratch": mem["scratch_bytes"]}


def choose_head(spec: HeadSpec, ram_budget: int, arena_bytes: int, test_rows: int,
                other_bytes: int, explicit: bool = False) -> HeadPlan:
    """The richest candidate storage that fits (or the spec's own, when explicit)."""
    if explicit:
        options = [spec]
    else:
        seen, options = set(), []
        for w, m, rounding in CANDIDATES:
            if spec.momentum == 0:
                m = 32                       # no buffers: their width is moot
            if (w, m) in seen:
                continue
            seen.add((w, m))
            stochastic = w == 16 or (m == 16 and spec.momentum != 0)
            options.append(replace(spec, weight_bits=w, momentum_bits=m,
                                   rounding=rounding if stochastic else "nearest"))
    plans = [HeadPlan(s, breakdown(s, arena_bytes, test_rows, other_bytes), int(ram_budget))
             for s in options]
    return next((p for p in plans if p.fits), plans[-1])
