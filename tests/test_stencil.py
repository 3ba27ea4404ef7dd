"""Axis stencils: central differences with bias O(h²), DiffQuant as Stein's, 2C + 1 rows a point."""

import math

import pytest
import torch

from tqpinn.derivatives import DT, GRAD, LAP, Autodiff, Stencil, U
from tqpinn.derivatives.columns import column_count, derivative_columns
from tqpinn.nn import MLP
from tqpinn.nn.precision import apply_quant
from tqpinn.qops import observe_gemms
from tqpinn.quant import PRESETS
from tqpinn.quant.memory import saved_bytes
from tqpinn.train import trainer
from tqpinn.train.config import config_from_dict
from tqpinn.train.limits import memory_terms

EPS64 = torch.finfo(torch.float64).eps
WIDTH, DEPTH = 16, 3
NEEDS = frozenset({U, GRAD, LAP, DT})


def network(dims: int, activation: str, seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP([dims, WIDTH, WIDTH, 1], activation=activation).double()


def fitted_slope(steps: list[float], errors: list[float]) -> float:
    """Least-squares slope of log(error) against log(h)."""
    lh, le = torch.tensor(steps).log(), torch.tensor(errors).log()
    return (((lh - lh.mean()) * (le - le.mean())).sum() / (lh - lh.mean()).square().sum()).item()


@pytest.mark.parametrize("activation", ["tanh", "sin"])
def test_error_falls_like_h_squared(activation):
    net = network(4, activation)
    x = torch.rand(32, 4, dtype=torch.float64)
    exact = Autodiff().fields(net, x, NEEDS, 3)
    steps = [0.08, 0.04, 0.02, 0.01]
    estimates = [Stencil(h=h).fields(net, x, NEEDS, 3) for h in steps]
    # The error is h²·c₂ + h⁴·c₄ + rounding. c₄/c₂ is a ratio of derivatives two orders apart
    # (f⁽⁵⁾/20f''' for ∇u, f⁽⁶⁾/30f⁽⁴⁾ for Δu): with L the product of the weights' spectral
    # norms each order adds a factor L, and tanh's, sin's derivative bounds grow at most 8x over
    # two orders, so |c₄/c₂|·h² ≤ 8L²h²/20 bends the fitted slope by at most that; 10x margin.
    # Rounding, eps·|g|/h² ≤ 1e-11 at h = 0.01, is far below c₂h² (≈ 1e-5 here).
    lipschitz = math.prod(torch.linalg.matrix_norm(layer.weight, 2).item() for layer in net.layers)
    margin = 10 * 8 * max(lipschitz, 1.0) ** 2 * steps[0] ** 2 / 20
    for name in (GRAD, LAP, DT):
        errors = [(getattr(f, name) - getattr(exact, name)).abs().sum().item() for f in estimates]
        assert abs(fitted_slope(steps, errors) - 2) <= margin, name


def test_diffquant_streams_equal_stacked_rows_in_float64():
    """Without quantization DiffQuant only changes how the differences are computed: the
    stacked rows cancel g(x ± h e_i) − g(x), losing a rounding of |g| (a few DEPTH·WIDTH·eps·|g|)
    that the derivative divides by 2h (∇u) or h² (Δu, a sum of d of them)."""
    net = network(4, "tanh")
    x = torch.rand(8, 4, dtype=torch.float64)
    h = 0.01
    rows = Stencil(h=h).fields(net, x, NEEDS, 3)
    rounding = 4 * DEPTH * WIDTH * EPS64 * max(1.0, rows.u.abs().max().item())
    for mode in ("input", "full"):
        streams = Stencil(h=h, diffquant=mode).fields(net, x, NEEDS, 3)
        torch.testing.assert_close(streams.u, rows.u, rtol=0, atol=rounding)
        for name, atol in ((GRAD, rounding / h), (DT, rounding / h), (LAP, 3 * rounding / h**2)):
            torch.testing.assert_close(
                getattr(streams, name), getattr(rows, name), rtol=0, atol=atol
            )


@pytest.mark.parametrize("activation", ["tanh", "sin"])
def test_smx_diffquant_survives_a_step_below_the_format_grid(activation):
    """Under smx_paper an input in [0.5, 1) sits on a grid of 2^-7 ≈ 0.008: x ± h e_i at
    h = 0.01 is rounded by most of h, and Δu's division by h² turns that into errors far above
    Δu itself (naive rows). DiffQuant quantizes each difference on its own grid: each operand
    then has a relative rounding std ≤ 2^-(bits-1)/√3 ≈ 0.5% of its block's maximum; over the
    2 operands of each of 3 GEMMs that is ≈ 1.1%, and 10x for elements below their block
    maximum gives the bound 0.11 on the relative L2 error."""
    torch.manual_seed(1)
    net = MLP([2, 64, 64, 1], activation=activation)
    x = torch.rand(128, 2)
    needs = frozenset({U, GRAD, LAP})
    fp32 = Stencil(h=0.01).fields(net, x, needs, 2)
    apply_quant(net, PRESETS["smx_paper"])
    bits = PRESETS["smx_paper"].fwd_input.fmt.bits
    bound = 10 * math.sqrt(2 * 3) * 2.0 ** -(bits - 1) / math.sqrt(3)

    def rel(f, name):
        return ((getattr(f, name) - getattr(fp32, name)).norm() / getattr(fp32, name).norm()).item()

    naive = Stencil(h=0.01).fields(net, x, needs, 2)
    diffquant = Stencil(h=0.01, diffquant="full").fields(net, x, needs, 2)
    assert rel(naive, LAP) > 1  # collapsed
    assert rel(diffquant, LAP) <= bound and rel(diffquant, GRAD) <= bound


@pytest.mark.parametrize(("needs", "columns"), [({GRAD}, 3), ({DT}, 1), ({U, LAP, DT}, 4)])
def test_rows_per_point_are_two_per_column_plus_the_centre(needs, columns):
    net = network(4, "tanh")
    events = []
    with observe_gemms(events.append):
        Stencil().fields(net, torch.rand(5, 4, dtype=torch.float64), frozenset(needs), 3)
    centre = bool(set(needs) & {U, LAP})  # g(x) is evaluated only when a field uses it
    assert [e.m for e in events if e.k == 4] == [5 * (2 * columns + centre)]


def test_a_shard_gets_the_whole_batch_rows():
    net = network(4, "sin")
    x = torch.rand(10, 4, dtype=torch.float64)
    for mode in ("off", "full"):
        whole = Stencil(diffquant=mode).fields(net, x, NEEDS, 3)
        shard = Stencil(diffquant=mode).fields_of_rows(net, x, slice(3, 7), NEEDS, 3)
        for name in NEEDS:
            torch.testing.assert_close(getattr(shard, name), getattr(whole, name)[3:7])


def poisson_config(quant: str = "fp32", dim: int = 2, steps: int = 30):
    return config_from_dict(
        {
            "problem": {"name": "poisson", "options": {"dim": dim}},
            "model": {"widths": [16, 16]},
            "estimator": {"name": "stencil", "h": 0.01, "diffquant": "full"},
            "quant": quant,
            "train": {"steps": steps, "lr": 1e-2, "points": {"interior": 32, "boundary": 32}},
        }
    )


def test_a_short_poisson_run_decreases_the_loss():
    run = trainer.build_run(poisson_config())
    losses = [trainer.train_step(run, step)["loss"] for step in range(30)]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


@pytest.mark.parametrize("quant", ["fp32", "smx_paper"])
def test_memory_bound_is_below_what_a_step_keeps(quant):
    config = poisson_config(quant, dim=3, steps=2)
    run = trainer.build_run(config)
    terms = {t.part: t.bytes for t in memory_terms(config)}
    kept = saved_bytes(lambda: trainer.train_step(run, 0), run.net).total
    assert terms["activations"] + terms["perturbations"] <= kept
    stored = 1 if quant == "smx_paper" else 4
    # Interior (Δu in 3 dimensions): 2·3 + 1 rows a point; boundary (u): one.
    assert terms["activations"] == (32 * 7 + 32) * 32 * stored
    assert terms["perturbations"] == 32 * 6 * 3 * stored


def test_column_count_counts_the_columns_without_listing_them():
    for needs in ({U}, {GRAD}, {LAP}, {DT}, {GRAD, DT}, {U, LAP, DT}):
        needs = frozenset(needs)
        assert column_count(needs, 3, 4) == len(derivative_columns(needs, 3, 4))
    assert column_count(frozenset({LAP}), 10**13, 10**13) == 10**13
