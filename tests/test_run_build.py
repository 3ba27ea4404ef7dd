"""One build per run: the problem, conditions, quantization spec and network are built once,
the spec is the run's own (its generator shared with no other run), and the TT options reach
every TT layer as one frozen spec."""

import dataclasses

import pytest
import torch

from tqpinn.nn.layer import GemmLayer
from tqpinn.nn.tt import TTLinear
from tqpinn.nn.tt.spec import TTSpec
from tqpinn.train import build, limits, run
from tqpinn.train.config import config_from_dict
from tqpinn.train.resume import checkpoint_state, restore

SMX_STOCHASTIC = {
    "base": "smx_paper",
    "wgrad.grad_output": {"format": "smx_int12", "rounding": "stochastic"},
}
TINY = {
    "problem": {"name": "poisson", "options": {"dim": 2}},
    "model": {
        "widths": [8, 8],
        "tt": {"layers": [1], "plan": "partial", "n_cores": 3, "init": "xavier"},
    },
    "estimator": {"name": "stein", "pairs": 4},
    "quant": SMX_STOCHASTIC,
    "train": {"steps": 2, "eval_points": 16, "points": {"interior": 8, "boundary": 8}},
}


def counted(monkeypatch, module, name: str) -> list:
    """Replace ``module.name`` by a wrapper recording the result of every call."""
    real, results = getattr(module, name), []

    def wrapper(*args, **kwargs):
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(module, name, wrapper)
    return results


def test_a_run_builds_each_piece_once(monkeypatch):
    config = config_from_dict(TINY)
    problems = counted(monkeypatch, run, "build_problem")
    conditions = counted(monkeypatch, run, "resolve_conditions")
    models = counted(monkeypatch, build, "MLP")
    monkeypatch.setattr(limits, "build_problem", None)  # the pre-flight takes the built pieces
    monkeypatch.setattr(limits, "resolve_conditions", None)
    built = run.build_run(config)
    assert len(problems) == 1 and len(conditions) == 1
    assert built.problem is problems[0] and built.conditions is conditions[0]
    # the pre-flight counts parameters on the meta device; the real network is built once
    devices = [next(m.parameters()).device.type for m in models]
    assert devices == ["meta", "cpu"]


def test_every_run_has_its_own_spec_and_checkpoints_write_into_it(tmp_path):
    config = config_from_dict(TINY)
    first, second = run.build_run(config), run.build_run(config)
    assert first.spec == second.spec and first.spec.generator is not second.spec.generator
    layers = [m for m in first.net.modules() if isinstance(m, GemmLayer)]
    assert layers and all(m.quant is first.spec for m in layers)

    torch.rand(7, generator=first.spec.generator)  # as stochastic rounding would draw
    path = tmp_path / "state.pt"
    torch.save(checkpoint_state(first, 1, 0.0), path)
    restore(second, path)
    assert torch.equal(second.spec.generator.get_state(), first.spec.generator.get_state())
    fresh = run.build_run(config)
    assert not torch.equal(fresh.spec.generator.get_state(), first.spec.generator.get_state())


def test_tt_options_reach_every_tt_layer_as_one_frozen_spec():
    config = config_from_dict(TINY)
    spec = config.model.tt.spec()
    assert spec == TTSpec(layers=(1,), n_cores=3, plan="partial", init="xavier") and hash(spec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.plan = "sequential"
    net = build.build_model(config, build.build_problem(config))
    tt = [m for m in net.modules() if isinstance(m, TTLinear)]
    assert len(tt) == 1 and tt[0].plan.name == "partial"
