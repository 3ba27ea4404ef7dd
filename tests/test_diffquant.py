"""DiffQuant: why quantizing x ± δ as values fails at σ = 0.01, and that carrying the
perturbation differences through every layer (diffquant="full") restores FP32 Stein estimates.

The known function is a fixed random MLP g; its exact gradient and Laplacian come from float64
autodiff. Stein's estimates target the Gaussian smoothing of g, whose derivatives differ from
g's by O(σ²) = 1e-4 relative: negligible against the effects measured here.
"""

import math

import pytest
import torch

from tqpinn.derivatives import GRAD, LAP, Autodiff, Stein
from tqpinn.formats import SMX_INT8, quantize
from tqpinn.nn import MLP, DifferenceStreams
from tqpinn.nn.precision import apply_quant
from tqpinn.qops import observe_gemms
from tqpinn.quant.spec import resolve_quant

SIGMA = 0.01
SIZES = [2, 32, 32, 1]  # three GEMM layers
N_POINTS, PAIRS = 64, 256
# Quantized operands on the path of every stream value: input and weight of each GEMM.
N_QUANTIZED = 2 * (len(SIZES) - 1)
# INT8 with e_max = 6: the step of a block whose max lies in [2^e, 2^(e+1)) is 2^(e−6), so
# rounding moves an element by at most half a step, ≤ 2^−7 of the block's max.
HALF_STEP = 2.0**-7
# A block's max over its RMS: for 16 roughly Gaussian entries the max exceeds 3 RMS with
# probability about 16 · 0.0027 ≈ 4 %, so an element error ≤ 3 · 2^−7 of the block RMS.
CREST = 3.0
# First-order error propagation: relative errors of the quantized operands add up along the
# path (linear maps and Lipschitz activations pass a relative perturbation on unchanged to first
# order), and the Stein sums are linear in the output streams. Hence the relative distance of a
# quantized DiffQuant estimate from the FP32 one is at most n_q · crest · half-step ≈ 0.14.
TOLERANCE = N_QUANTIZED * CREST * HALF_STEP
# A sample correlation of N independent pairs has standard deviation ≈ 1/√N when the true
# correlation is 0; |r| < 4/√N is what an estimate that carries no signal shows.
NO_SIGNAL = 4 / math.sqrt(N_POINTS)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    pair = torch.stack([a.detach().flatten(), b.detach().flatten()]).double()
    return float(torch.corrcoef(pair)[0, 1])


@pytest.fixture(scope="module", params=["tanh", "sin"])
def setting(request):
    """A fixed MLP, points in [0, 1]², its exact ∇g and Δg, and Stein estimates with one z draw
    for FP32 (values path) and smx_paper with each diffquant mode."""
    torch.manual_seed(0)
    net = MLP(SIZES, activation=request.param)
    x = torch.rand(N_POINTS, 2)
    needs = frozenset({GRAD, LAP})
    exact = Autodiff().fields(net.double(), x.double(), needs, 2)
    net.float()
    estimates = {}
    for quant, modes in (("fp32", ("off",)), ("smx_paper", ("off", "input", "full"))):
        apply_quant(net, resolve_quant(quant))
        for mode in modes:
            with torch.no_grad():
                est = Stein(sigma=SIGMA, pairs=PAIRS, diffquant=mode)
                estimates[quant, mode] = est.fields(net, x, needs, 2, gen(1))
    apply_quant(net, None)
    return net, x, exact, estimates


def test_most_perturbed_hidden_activations_quantize_to_the_centre_value():
    # Rounding to a grid of step s maps h and h + Δ to the same point with probability
    # max(0, 1 − |Δ|/s) when h's offset inside its rounding cell is uniform; the observed share
    # must match that prediction, and it is a majority: the values path sees no difference at all
    # for most samples of the first hidden layer's output.
    torch.manual_seed(0)
    net = MLP(SIZES, activation="tanh")
    n, k = 256, 8
    x = torch.rand(n, 2)
    delta = SIGMA * torch.randn(n, k, 2)
    with torch.no_grad():
        hidden = lambda t: net.activation(net.layers[0](t))  # noqa: E731
        h0 = hidden(x)[:, None].expand(n, k, -1).reshape(n * k, -1)
        h1 = hidden((x[:, None] + delta).reshape(n * k, 2))
    same = (quantize(h0, SMX_INT8) == quantize(h1, SMX_INT8)).double().mean()
    blocks = h0.reshape(n * k // 4, 4, -1, 4).abs().amax(dim=(1, 3), keepdim=True)
    step = (2.0 ** (torch.frexp(blocks).exponent - 1 - 6)).expand(-1, 4, -1, 4)
    predicted = (1 - (h1 - h0).abs() / step.reshape(h0.shape)).clamp(min=0).double().mean()
    # Elements of one point share its x, so count only the n points as independent.
    assert abs(float(same - predicted)) < 4 * math.sqrt(0.25 / n)
    assert float(same) > 0.5 and float(predicted) > 0.5


def test_fp32_stein_estimates_track_the_exact_derivatives(setting):
    # The reference the quantized paths are compared with: with K = 256 pairs the Monte-Carlo
    # error leaves a clear correlation with the exact field (well above the no-signal band).
    _, _, exact, est = setting
    f = est["fp32", "off"]
    assert corr(f.grad, exact.grad) > 0.9
    assert corr(f.lap, exact.lap) > 0.5


def test_diffquant_full_matches_fp32_stein_within_the_quantization_tolerance(setting):
    _, _, _, est = setting
    ref, full = est["fp32", "off"], est["smx_paper", "full"]
    assert rel(full.grad, ref.grad) < TOLERANCE
    assert rel(full.lap, ref.lap) < TOLERANCE


def test_naive_quantization_fails_the_same_test_and_loses_the_laplacian(setting):
    _, _, exact, est = setting
    ref, naive = est["fp32", "off"], est["smx_paper", "off"]
    # Each even difference g(x+δ) + g(x−δ) − 2g(x) ≈ σ² zᵀHz ~ 1e-4 is buried under output
    # rounding of ~1e-2: the Laplacian error is many times the Laplacian itself.
    assert rel(naive.lap, ref.lap) > 1 / TOLERANCE
    assert abs(corr(naive.lap, exact.lap)) < NO_SIGNAL


def test_diffquant_input_only_still_collapses(setting):
    # Differences carried through the first layer only are rounded away at the second GEMM's
    # input, exactly as on the values path.
    _, _, exact, est = setting
    only_input = est["smx_paper", "input"]
    assert abs(corr(only_input.lap, exact.lap)) < NO_SIGNAL
    assert rel(only_input.lap, est["fp32", "off"].lap) > 1 / TOLERANCE


def weight_gradients(net, x, quant):
    """∂/∂W of a loss built from DiffQuant Stein estimates, and the GEMMs its backward ran."""
    apply_quant(net, resolve_quant(quant))
    f = Stein(sigma=SIGMA, pairs=PAIRS, diffquant="full").fields(
        net, x, frozenset({GRAD, LAP}), 2, gen(1)
    )
    loss = f.lap.square().mean() + f.grad.square().sum(-1).mean()
    events = []
    with observe_gemms(events.append):
        grads = torch.autograd.grad(loss, [layer.weight for layer in net.layers])
    apply_quant(net, None)
    return grads, [e for e in events if e.phase == "wgrad"]


def test_parameter_gradients_flow_through_the_quantized_gemms_of_every_stream(setting):
    net, x, _, _ = setting
    spec = resolve_quant("smx_paper")
    grads_fp32, _ = weight_gradients(net, x, "fp32")
    grads_smx, wgrads = weight_gradients(net, x, "smx_paper")
    # Each weight gradient sums wgrad GEMMs over the rows of every stream that reaches the loss,
    # each fully quantized (INT12 gradient, INT8 activation): the N·K rows of odd and of even,
    # and the N base rows wherever the base feeds a later activation (not the output layer's:
    # the loss uses no centre value).
    assert {(e.a_format, e.b_format) for e in wgrads} == {
        (spec.wgrad_grad_output.name, spec.wgrad_input.name)
    }
    last = len(net.layers) - 1
    for i, layer in enumerate(net.layers):
        rows = sorted(e.k for e in wgrads if (e.m, e.n) == tuple(layer.weight.shape))
        streams = [N_POINTS * PAIRS] * 2
        assert rows == (streams if i == last else [N_POINTS, *streams])
    # The backward adds per GEMM two quantized operands (the INT12 gradient, far finer, and an
    # INT8 weight or activation) to the forward path's: at most twice the forward tolerance.
    for g_smx, g_fp32 in zip(grads_smx, grads_fp32, strict=True):
        assert torch.isfinite(g_smx).all()
        assert rel(g_smx, g_fp32) < 2 * TOLERANCE


@pytest.mark.parametrize("activation", ["tanh", "sin"])
@pytest.mark.parametrize("stream_layers", [0, 1, 2, 3])
def test_streams_through_the_first_layers_then_values_equal_forward_differences(
    activation, stream_layers
):
    torch.manual_seed(1)
    net = MLP([3, 16, 16, 1], activation=activation).double()
    x = torch.rand(5, 3, dtype=torch.float64)
    delta = 0.1 * torch.randn(5, 4, 3, dtype=torch.float64)
    s = net(DifferenceStreams.from_input(x, delta), stream_layers=stream_layers)
    g0, gp, gm = net(x), net(x[:, None] + delta), net(x[:, None] - delta)
    torch.testing.assert_close(s.base, g0)
    torch.testing.assert_close(s.odd, gp - gm, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(s.even, gp + gm - 2 * g0[:, None], rtol=1e-10, atol=1e-14)


def test_values_round_trip_of_streams_is_exact_in_float64():
    s = DifferenceStreams.from_input(
        torch.rand(3, 2, dtype=torch.float64), torch.randn(3, 5, 2).double()
    )
    back = s.from_rows(s.to_rows())
    torch.testing.assert_close(back.base, s.base, rtol=0, atol=0)
    torch.testing.assert_close(back.odd, s.odd, rtol=0, atol=1e-15)
    torch.testing.assert_close(back.even, s.even, rtol=0, atol=1e-15)
