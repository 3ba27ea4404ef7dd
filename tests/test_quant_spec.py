"""QuantSpec presets and the config's ``quant`` value: presets, custom roles, clear errors."""

import pytest

from tqpinn.errors import UserError
from tqpinn.formats import MX_INT8, MX_INT12, SMX_INT8, SMX_INT12, BlockFormat
from tqpinn.quant import PRESETS, ROLES, Operand, resolve_quant
from tqpinn.quant.config import QuantConfig
from tqpinn.quant.spec import make_preset


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
        ({"fwd.input": {"bits": 40, "block": [4, 4]}}, r"quant.fwd.input.bits: .* 16 \(got 40\)"),
        ({"fwd.input": {"bits": 6, "element": "e4m3"}}, "element 'e4m3' has 8 bits, got bits=6"),
        (
            {"fwd.input": {"format": "smx_int8", "rounding": "up"}},
            r"quant.fwd.input.rounding: .*'nearest_even' or 'stochastic' \(got 'up'\)",
        ),
        ({"fwd.input": {"format": "smx_int8", "bits": 8}}, "either 'format' or bits"),
        ({"fwd.input": {"block": [4, 4]}}, "needs 'bits'"),
        ({"fwd.input": {"bits": 8, "block": 4}}, r"block must be \[rows, cols\]"),
        ({"fwd.input": {"formats": "x"}}, r"unknown keys \['formats'\]"),
        ({"fwd.input": {"bits": 8, "block": [0, 4]}}, "block must be two positive integers"),
        ({"fast": "yes"}, r"quant.fast: .*valid boolean \(got 'yes'\)"),
        ({"seed": True}, r"quant.seed: .*valid integer \(got True\)"),
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
    a, b = make_preset("smx_paper"), make_preset("smx_paper")
    assert a == b and a.generator is not b.generator
    assert make_preset("fp32") is None
    with pytest.raises(UserError, match="unknown quant preset"):
        make_preset("int3")


def test_resolving_twice_gives_two_generators():
    # Two runs of one config must not share stochastic-rounding state.
    a, b = resolve_quant("smx_paper"), resolve_quant({"base": "smx_paper", "seed": 0})
    assert a.generator is not b.generator and a.generator is not PRESETS["smx_paper"].generator
    config = QuantConfig.model_validate("smx_paper")
    assert config.build().generator is not config.build().generator


@pytest.mark.parametrize(
    "given",
    [
        "mx_int8",
        {"base": "smx_paper", "fwd.weight": {"bits": 6, "block": [8, 8]}, "seed": 2},
        {"fwd.input": {"format": "fp32", "rounding": "stochastic"}, "fast": False},
    ],
)
def test_the_typed_config_serializes_to_what_was_given(given):
    assert QuantConfig.model_validate(given).model_dump(mode="json") == given


def test_a_preset_name_and_its_mapping_build_alike_but_are_named_apart():
    by_name = QuantConfig.model_validate("smx_paper").build()
    by_mapping = QuantConfig.model_validate({"base": "smx_paper"}).build()
    assert by_name.name == "smx_paper" and by_mapping.name == "smx_paper+custom"
    assert by_name.describe() == by_mapping.describe()
