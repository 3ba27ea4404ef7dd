"""Taylor streams under quantized GEMMs: the error is the formats' rounding, each stream with its
own block scales; storage and the memory pre-flight see every stream."""

import pytest
import torch
import torch.nn.functional as F

from tqpinn.derivatives import GRAD, LAP, Taylor, U
from tqpinn.formats import BlockFormat
from tqpinn.nn import MLP
from tqpinn.nn.precision import apply_quant
from tqpinn.quant import PRESETS
from tqpinn.quant.memory import OUTSIDE, saved_bytes
from tqpinn.train import trainer
from tqpinn.train.config import config_from_dict
from tqpinn.train.limits import memory_terms

SMX = PRESETS["smx_paper"]
# |σ'''|: tanh''' = 2(1 − t²)(3t² − 1) peaks in magnitude at t = 0 (2); sin''' = −cos (1).
D3_BOUND = 2.0


def rounding_variance(t: torch.Tensor, fmt: BlockFormat) -> torch.Tensor:
    """Variance of round-to-nearest on the grid of ``fmt`` for each element of t (..., K), as
    qops.gemm quantizes an operand: rows (-1, K), blocks tiled from index 0. The step of a block
    is 2^(floor(log2 max|block|) − (bits − 2)); a rounding error uniform in ±step/2 has variance
    step²/12."""
    rows = t.reshape(-1, t.shape[-1]).abs()[None]
    block_rows, block_cols = fmt.block
    peak = F.max_pool2d(rows, fmt.block, fmt.block, ceil_mode=True)
    peak = peak.repeat_interleave(block_rows, -2).repeat_interleave(block_cols, -1)
    peak = peak[0, : rows.shape[-2], : rows.shape[-1]].reshape(t.shape)
    step = torch.where(peak > 0, torch.exp2(torch.floor(torch.log2(peak)) - (fmt.bits - 2)), 0.0)
    return step.square() / 12


def predicted_std(net: MLP, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Standard deviations of the SMX errors of u, ∇u, Δu by the usual rounding model: every
    operand element of every GEMM (each stream on its own grid, and the weights) gets an
    independent rounding error of the variance above, propagated to first order through the
    Taylor-stream recursion (module taylor.py), variances adding."""
    n, d = x.shape
    value, first, second = x, torch.eye(d).expand(n, d, d), torch.zeros_like(x)
    var_v, var_f, var_s = (torch.zeros_like(s) for s in (value, first, second))
    fmt_x, fmt_w = SMX.fwd_input.fmt, SMX.fwd_weight.fmt
    for i, layer in enumerate(net.layers):
        w = layer.weight.detach()
        var_w = rounding_variance(w, fmt_w)

        def gemm(s, var, w=w, var_w=var_w):
            return (var + rounding_variance(s, fmt_x)) @ w.square().T + s.square() @ var_w.T

        var_v, var_f, var_s = gemm(value, var_v), gemm(first, var_f), gemm(second, var_s)
        value, first, second = value @ w.T + layer.bias.detach(), first @ w.T, second @ w.T
        if i == len(net.layers) - 1:
            break
        value, slope, curvature = net.activation.taylor(value)
        squares = first.square().sum(dim=-2)
        var_s = (
            4 * curvature.square() * (first.square() * var_f).sum(dim=-2)
            + D3_BOUND**2 * squares.square() * var_v
            + slope.square() * var_s
            + curvature.square() * second.square() * var_v
        )
        var_f = (
            slope[:, None].square() * var_f + (curvature[:, None] * first).square() * var_v[:, None]
        )
        var_v = slope.square() * var_v
        second = curvature * squares + slope * second
        first = slope[:, None] * first
    return var_v[:, 0].sqrt(), var_f[..., 0].sqrt(), var_s[:, 0].sqrt()


@pytest.mark.parametrize("activation", ["tanh", "sin"])
@pytest.mark.parametrize("seed", [0, 1])
def test_smx_error_is_the_rounding_of_each_stream(activation, seed):
    """Under smx_paper the fields differ from FP32 taylor's by the formats' rounding alone: at
    every point within 5 predicted standard deviations (a Gaussian exceeds 5σ with probability
    6e-7), and not far below it either (RMS of the standardized error above 0.2): a stream
    sharing another's block scales, or left unquantized, would break one side."""
    torch.manual_seed(seed)
    net = MLP([2, 64, 64, 64, 1], activation=activation)
    x = torch.rand(128, 2)
    needs = frozenset({U, GRAD, LAP})
    with torch.no_grad():
        fp32 = Taylor().fields(net, x, needs, 2)
        stds = predicted_std(net, x)
        smx = Taylor().fields(apply_quant(net, SMX), x, needs, 2)
    for name, std in zip((U, GRAD, LAP), stds, strict=True):
        z = (getattr(smx, name) - getattr(fp32, name)) / std
        assert z.abs().max() <= 5, name
        assert z.square().mean().sqrt() >= 0.2, name


def test_every_stream_is_saved_for_backward_by_its_layer():
    n, d, h = 32, 3, 16
    torch.manual_seed(0)
    net = MLP([d, h, h, 1])
    x = torch.rand(n, d)

    def step():
        f = Taylor().fields(net, x, frozenset({U, GRAD, LAP}), d)
        (f.u.square().sum() + f.grad.square().sum() + f.lap.square().sum()).backward()

    m = saved_bytes(step, net)
    streams = 1 + d + 1  # value, d first-order terms, the collapsed second-order term
    # Each layer's weight gradient reads every input stream: N·(1 + d + 1) rows of FP32. The
    # streams layer 1 reads are the activation's outputs; a storage counts once, for the first
    # module that keeps it, so they are the activation's or layer 1's.
    assert m.per_module["layers.0"] >= 4 * n * streams * d
    assert m.per_module["activation"] + m.per_module.get("layers.1", 0) >= 4 * n * streams * h
    # Outside the model only the loss's squares keep their inputs: u, ∇u and Δu.
    assert m.per_module[OUTSIDE] == 4 * n * (1 + d + 1)


@pytest.mark.parametrize("quant", ["fp32", "smx_paper"])
@pytest.mark.parametrize("dim", [2, 5])
def test_memory_bound_is_below_what_a_step_keeps(quant, dim):
    config = config_from_dict(
        {
            "problem": {"name": "poisson", "options": {"dim": dim}},
            "model": {"widths": [16, 16]},
            "estimator": {"name": "taylor"},
            "quant": quant,
            "train": {"steps": 2, "points": {"interior": 8, "boundary": 8}},
        }
    )
    run = trainer.build_run(config)
    terms = {t.part: t.bytes for t in memory_terms(config)}
    kept = saved_bytes(lambda: trainer.train_step(run, 0), run.net).total
    assert terms["activations"] + terms["perturbations"] <= kept
    # The interior condition (Δu) counts 1 + dim + 1 rows a point, the boundary (u) one.
    assert terms["activations"] == (8 * (dim + 2) + 8) * 32 * (1 if quant == "smx_paper" else 4)
