"""The head budget chooser: richest storage that fits, honest breakdown, one-line errors naming the part.

Usage: .venv/bin/python -m pytest tests/test_head_budget.py
"""
import pytest

from entropi_tiny.codegen.head import HeadSpec, head_memory
from entropi_tiny.codegen.head_budget import choose_head
from entropi_tiny.errors import UserError

RAM, ARENA, OTHER = 327_680, 135_168, 14_000   # ResNet18 at alpha 0.0077 on the F746


def spec(**kw):
    base = dict(feature_dim=512, num_classes=100, num_samples=100, feature_scale=0.05,
                feature_zero_point=-128)
    return HeadSpec(**{**base, **kw})


def test_small_head_keeps_float32():
    plan = choose_head(spec(num_classes=5, momentum=0.9), RAM, ARENA, 5, OTHER)
    assert plan.fits and (plan.spec.weight_bits, plan.spec.momentum_bits) == (32, 32)
    assert plan.spec.rounding == "nearest"


def test_paper_scale_head_narrows_to_bf16():
    plan = choose_head(spec(), RAM, ARENA, 5, OTHER)
    assert plan.fits and plan.spec.weight_bits == 16 and plan.spec.rounding == "stochastic"
    # float32 would not have fitted: the chooser did not narrow for nothing
    wide = choose_head(spec(), RAM, ARENA, 5, OTHER, explicit=True)
    assert not wide.fits and wide.overflow_part() == "head_weights"
    mem = head_memory(plan.spec)
    b = plan.breakdown
    assert b["head_weights"] == 2 * 512 * 100 + 4 * 100 and b["gradient"] == 0
    assert b["feature_cache"] == 100 * 512 + 5 * 512
    assert b["head_weights"] + b["optimizer_state"] + b["gradient"] + b["head_scratch"] == \
        mem["state_bytes"]
    assert plan.total == sum(b.values()) <= RAM


def test_middle_candidate_bf16_momentum_only():
    # room for float32 weights but not for float32 momentum as well
    s = spec(num_classes=30, momentum=0.9)
    plan = choose_head(s, RAM, ARENA, 5, OTHER)
    assert plan.fits and (plan.spec.weight_bits, plan.spec.momentum_bits) == (32, 16)


def test_nothing_fits_names_the_part():
    plan = choose_head(spec(momentum=0.9), RAM, ARENA, 5, OTHER)
    assert not plan.fits and plan.overflow_part() == "optimizer_state"
    with pytest.raises(UserError) as e:
        plan.check("nucleo-f746")
    msg = str(e.value)
    assert "\n" not in msg and "the momentum buffers" in msg and "nucleo-f746" in msg
    with pytest.raises(UserError, match="the extractor's arena"):
        choose_head(spec(num_classes=5), 100_000, ARENA, 5, OTHER).check()


def test_explicit_storage_settings_reach_the_spec_and_are_only_checked():
    """firmware.head_weight_bits / head_momentum_bits fix the storage; 0 leaves it to the build."""
    from types import SimpleNamespace

    from entropi_tiny.stages.codegen import _explicit_storage

    auto = SimpleNamespace(head_weight_bits=0, head_momentum_bits=0, head_rounding="stochastic")
    assert _explicit_storage(auto) == {}
    fixed = SimpleNamespace(head_weight_bits=32, head_momentum_bits=16, head_rounding="stochastic")
    s = spec(num_classes=5, momentum=0.9, **_explicit_storage(fixed))
    plan = choose_head(s, RAM, ARENA, 5, OTHER, explicit=True)
    assert (plan.spec.weight_bits, plan.spec.momentum_bits, plan.spec.rounding) == \
        (32, 16, "stochastic")
    # a fixed float32 head at the paper's scale is refused in one line naming the weights
    wide = SimpleNamespace(head_weight_bits=32, head_momentum_bits=32, head_rounding="nearest")
    plan = choose_head(spec(**_explicit_storage(wide)), RAM, ARENA, 5, OTHER, explicit=True)
    with pytest.raises(UserError, match="head weights"):
        plan.check("nucleo-f746")


@pytest.mark.parametrize("override, needle", [
    ("firmware.head_weight_bits=8", "firmware.head_weight_bits"),
    ("firmware.head_weight_bits=16", "both 0"),
    ("firmware.head_rounding=\"up\"", "stochastic or nearest"),
])
def test_bad_head_storage_settings_are_one_line_errors(override, needle):
    from entropi_tiny.config import load_config

    with pytest.raises(UserError, match=needle):
        load_config("quick", None, [override])
