"""QuantSpec presets and the config's ``quant`` value: presets, custom roles, clear errors."""

import pytest

from tqpinn.errors import UserError
from tqpinn.formats import MX_INT8, MX_INT12, SMX_INT8, SMX_INT12, BlockFormat
from tqpinn.quant import PRESETS, ROLES, Operand, resolve_quant


def test_presets_follow_the_design():
    assert resolve_quant("fp32") is None and resolve_quant(None) is None
    smx, mx = resolve_quant("smx_paper"), resolve_quant("mx_int8")
    for spec, act, grad in ((smx, SMX_INT8, SMX_INT12), (mx, MX_INT8, MX_INT12)):
        for role in ROLES:
            want = grad if role.endswith("grad_output") else act
            assert spec.role(role) == Operand(want), role


@pytest.mark.parametrize("name", sorted(n for n, s in PRESETS.items() if s is not None))
def test_every_preset_is_frozen_hashable_and_described(name):
    spec = PRESETS[name]
    assert hash(spec) == hash(resolve_quant(name))
    with pytest.raises(AttributeError):
        spec.name = "x"
    assert set(spec.describe()) == set(ROLES)


def test_custom_roles_on_a_base():
    spec = resolve_quant(
        {
            "base": "smx_paper",
            "wgrad.grad_output": {"format": "smx_int12", "rounding": "stochastic"},
            "fwd.weight": {"bits": 6, "block": [8, 8]},
            "dgrad.weight": "fp32",
            "seed": 3,
        }
    )
    assert spec.name == "smx_paper+custom" and spec.seed == 3
    assert spec.wgrad_grad_output == Operand(SMX_INT12, "stochastic")
    assert spec.fwd_weight == Operand(BlockFormat(6, (8, 8)))
    assert spec.dgrad_weight.fmt is None
    assert spec.fwd_input == Operand(SMX_INT8)  # unchanged from the base
    tensor_wide = resolve_quant({"fwd.input": {"bits": 8, "block": "tensor"}})
    assert tensor_wide.fwd_input.fmt == BlockFormat(8, None) and tensor_wide.fwd_weight.fmt is None
    assert resolve_quant({"base": "fp32"}) is None  # nothing quantized


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("int4", "unknown quant preset 'int4'; choose from .*smx_paper"),
        ({"fwd.inputs": "smx_int8"}, r"unknown keys \['fwd.inputs'\]; choose from .*fwd.input"),
        ({"base": "nope"}, "unknown quant preset 'nope'"),
        ({"fwd.input": "smx_int9"}, "quant.fwd.input: unknown number format 'smx_int9'"),
        ({"fwd.input": {"bits": 40, "block": [4, 4]}}, r"quant.fwd.input: .*2\.\.16"),
        ({"fwd.input": {"format": "smx_int8", "rounding": "up"}}, "rounding 'up'; choose"),
        ({"fwd.input": {"format": "smx_int8", "bits": 8}}, "either 'format' or bits"),
        ({"fwd.input": {"block": [4, 4]}}, "needs 'bits'"),
        ({"fwd.input": {"bits": 8, "block": 4}}, r"block must be \[rows, cols\]"),
        ({"fwd.input": {"formats": "x"}}, r"unknown keys \['formats'\]"),
        ({"fast": "yes"}, "quant.fast: expected bool"),
        ({"seed": True}, "quant.seed: expected int"),
        (3, "expected a preset name or a mapping"),
    ],
)
def test_bad_values_are_user_errors_naming_the_key(value, match):
    with pytest.raises(UserError, match=match):
        resolve_quant(value)


def test_spec_copies_share_the_stochastic_rounding_generator():
    # A copy with a fresh generator seeded alike would repeat the original's random draws.
    spec = PRESETS["smx_paper"]
    copy = spec.with_roles(fwd_input=spec.dgrad_grad_output)
    assert copy.generator is spec.generator


def test_make_preset_gives_a_fresh_generator_each_time():
    from tqpinn.quant.spec import make_preset

    a, b = make_preset("smx_paper"), make_preset("smx_paper")
    assert a == b and a.generator is not b.generator
    assert make_preset("fp32") is None
    with pytest.raises(UserError, match="unknown quant preset"):
        make_preset("int3")
