"""The fully quantized GEMM: each product equals its fake-quant definition, gradients obey the
per-role error bound, events name the formats, double backward works."""

import math

import pytest
import torch

from tqpinn.formats import SMX_INT8, SMX_INT12, quantize
from tqpinn.nn import MLP
from tqpinn.nn.precision import apply_quant
from tqpinn.qops import _QuantGemm, gemm, observe_gemms
from tqpinn.quant import PRESETS, ROLES, Operand, QuantSpec, fastpath

QUANT_PRESETS = sorted(n for n, s in PRESETS.items() if s is not None)
U32 = 2.0**-24  # unit roundoff of FP32


def fp32_product_bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|fl(a·bᵀ) − fl'(a·bᵀ)| for two FP32 evaluations in any summation order: each is within
    γ_K |a|·|b|ᵀ of the exact value (Higham, Thm 3.5; products of grid values are exact in
    FP32 as their significands have ≤ 12 + 12 bits), so their difference is within 2γ_K."""
    k = a.shape[-1]
    gamma = k * U32 / (1 - k * U32)
    return 2 * gamma * (a.double().abs() @ b.double().abs().T)


def q(x: torch.Tensor, op: Operand) -> torch.Tensor:
    return x if op.fmt is None else quantize(x, op.fmt)


@pytest.mark.parametrize("kernels", ["compiled", "torch"])
@pytest.mark.parametrize("preset", QUANT_PRESETS)
def test_three_products_match_their_definitions(preset, kernels, monkeypatch):
    if kernels == "torch":  # the PyTorch reference path, as on a machine without the kernels
        monkeypatch.setenv(fastpath.ENV_DISABLE, "1")
    spec = PRESETS[preset]
    x = torch.randn(3, 40, 48, requires_grad=True)  # batched input, flattened to M = 120 rows
    w = torch.randn(24, 48, requires_grad=True)
    y = gemm(x, w, spec)
    dy = torch.randn_like(y)
    y.backward(dy)
    x2, dy2 = x.detach().reshape(-1, 48), dy.reshape(-1, 24)
    wd = w.detach()
    cases = {
        "forward": (y.detach().reshape(-1, 24), q(x2, spec.fwd_input), q(wd, spec.fwd_weight)),
        "dgrad": (
            x.grad.reshape(-1, 48),
            q(dy2, spec.dgrad_grad_output),
            q(wd.T.contiguous(), spec.dgrad_weight),
        ),
        "wgrad": (
            w.grad,
            q(dy2.T.contiguous(), spec.wgrad_grad_output),
            q(x2.T.contiguous(), spec.wgrad_input),
        ),
    }
    for phase, (got, a, b) in cases.items():
        want = a.double() @ b.double().T
        bound = fp32_product_bound(a, b) / 2  # one FP32 evaluation against the exact value
        assert torch.all((got.double() - want).abs() <= bound), phase


def test_smx_backward_operands_are_transposes_of_forward_ones_mx_are_not():
    x, w = torch.randn(64, 64), torch.randn(64, 64)
    assert torch.equal(quantize(x.T.contiguous(), SMX_INT8), quantize(x, SMX_INT8).T)
    mx = PRESETS["mx_int8"].wgrad_input.fmt
    assert not torch.equal(quantize(w.T.contiguous(), mx), quantize(w, mx).T)


def test_gradcheck_and_gradgradcheck_with_quantization_off():
    off = QuantSpec("off")  # every role FP32: the Function must be the exact matmul
    a = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    fn = lambda a, b: _QuantGemm.apply(a, b, off, "forward")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (a, b))
    assert torch.autograd.gradgradcheck(fn, (a, b))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("fmt", [SMX_INT8, SMX_INT12], ids=lambda f: f.name)
def test_gradient_error_within_the_per_role_bound(role, fmt):
    """Only ``role`` quantized: the affected product P = A·Bᵀ has one operand off by E, at most
    half a block step per element (a step where clamped), so |ΔP| ≤ |E|·|B|ᵀ (or |A|·|E|ᵀ),
    plus FP32 rounding: checked element by element.

    SNR floor: a block's step is ≤ max|block|·2^−(b−2), so ‖E_block‖² ≤ 16·max²·2^−2(b−1)
    ≤ 16·2^−2(b−1)·‖A_block‖², i.e. ‖E‖² ≤ 2^−2(b−1)·16·‖A‖². For B independent of E (here:
    Gaussian samples), E‖E·Bᵀ‖² / E‖A·Bᵀ‖² = ‖E‖²/‖A‖², so SNR = ‖P‖²/‖ΔP‖² ≥ 2^2(b−1)/16:
    1024 for INT8, 262144 for INT12 (measured: about 20x above both)."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(64, 32, generator=g, requires_grad=True)
    w = torch.randn(16, 32, generator=g, requires_grad=True)
    dy = torch.randn(64, 16, generator=g)
    spec = QuantSpec("one-role").with_roles(**{role.replace(".", "_"): Operand(fmt)})
    gemm(x, w, spec).backward(dy)
    product = {
        "fwd": x.detach() @ w.detach().T,
        "dgrad": dy @ w.detach(),
        "wgrad": dy.T @ x.detach(),
    }
    operands = {  # (A, B) of each product A·Bᵀ in reduction-last orientation
        "fwd": (x.detach(), w.detach()),
        "dgrad": (dy, w.detach().T.contiguous()),
        "wgrad": (dy.T.contiguous(), x.detach().T.contiguous()),
    }
    phase = role.split(".")[0]
    got = {"fwd": None, "dgrad": x.grad, "wgrad": w.grad}[phase]
    if phase == "fwd":
        got = gemm(x.detach(), w.detach(), spec)
    a, b = operands[phase]
    quantized_first = role in ("fwd.input", "dgrad.grad_output", "wgrad.grad_output")
    src = a if quantized_first else b
    err = (quantize(src, fmt).double() - src.double()).abs()
    assert torch.all(err <= _error_bound(src, fmt))
    bound = (err @ b.double().abs().T) if quantized_first else (a.double().abs() @ err.T)
    bound = bound + fp32_product_bound(a, b)
    diff = got.double() - product[phase].double()
    assert torch.all(diff.abs() <= bound)
    snr = product[phase].square().sum() / diff.square().sum()
    assert snr >= 2.0 ** (2 * (fmt.bits - 1)) / 16


def _error_bound(x: torch.Tensor, fmt) -> torch.Tensor:
    """Half the block step of each element, a whole step where rounding carried past the
    largest integer and was clamped (4x4 blocks, plain loop over block maxima)."""
    step = torch.zeros(x.shape, dtype=torch.float64)
    for r in range(0, x.shape[0], 4):
        for c in range(0, x.shape[1], 4):
            amax = x[r : r + 4, c : c + 4].abs().max().item()
            step[r : r + 4, c : c + 4] = 2.0 ** (math.frexp(amax)[1] - 1 - (fmt.bits - 2))
    clamped = x.double().abs() / step > fmt.max_element + 0.5
    return torch.where(clamped, step, step / 2)


@pytest.mark.parametrize("preset", QUANT_PRESETS)
def test_events_name_formats_per_phase(preset):
    spec = PRESETS[preset]
    x = torch.randn(8, 64, requires_grad=True)
    w = torch.randn(4, 64, requires_grad=True)
    events = []
    with observe_gemms(events.append):
        gemm(x, w, spec).sum().backward()
    by_phase = {e.phase: e for e in events}
    assert len(events) == 3
    for phase, (ra, rb) in {
        "forward": ("fwd.input", "fwd.weight"),
        "dgrad": ("dgrad.grad_output", "dgrad.weight"),
        "wgrad": ("wgrad.grad_output", "wgrad.input"),
    }.items():
        e = by_phase[phase]
        assert (e.a_format, e.b_format) == (spec.role(ra).name, spec.role(rb).name)
        assert (e.a_bits, e.b_bits) == (spec.role(ra).fmt.bits, spec.role(rb).fmt.bits)
        assert e.block == spec.role(ra).fmt.block
    assert (by_phase["forward"].m, by_phase["forward"].n, by_phase["forward"].k) == (8, 4, 64)


@pytest.mark.parametrize("preset", QUANT_PRESETS)
def test_double_backward_through_quantized_layers(preset):
    """An autodiff Laplacian through a quantized MLP: the create_graph path runs, is traced,
    and its first-order weight gradient equals the plain backward's (same quantized values,
    products within FP32 rounding; 1e-4 relative is 2^10 units of FP32 roundoff per output,
    generous for K ≤ 64 sums of 3 layers)."""
    torch.manual_seed(2)
    net = apply_quant(MLP([2, 32, 32, 1]), PRESETS[preset])
    x = torch.rand(16, 2, requires_grad=True)
    u = net(x).sum()
    (g,) = torch.autograd.grad(u, x, create_graph=True)
    events = []
    with observe_gemms(events.append):
        lap = sum(torch.autograd.grad(g[:, i].sum(), x, create_graph=True)[0][:, i] for i in (0, 1))
        lap.square().mean().backward()
    # The network's forward ran before observing: only backward products, themselves traced.
    assert {e.phase for e in events} == {"dgrad", "wgrad"}
    assert all(e.a_format.startswith(preset.split("_")[0]) for e in events)
    for p in net.parameters():
        if p is not net.layers[-1].bias:  # the output bias does not reach the Laplacian
            assert p.grad is not None and torch.isfinite(p.grad).all()
    # First-order gradients: create_graph=True and False agree.
    net.zero_grad()
    loss = net(x).square().mean()
    (gw_graph,) = torch.autograd.grad(loss, net.layers[0].weight, create_graph=True)
    loss = net(x).square().mean()
    (gw_plain,) = torch.autograd.grad(loss, net.layers[0].weight)
    torch.testing.assert_close(gw_graph, gw_plain, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("preset", QUANT_PRESETS)
def test_second_backward_with_retained_graph_reads_the_same_values(preset):
    """The first backward reads the packed operands directly, a second one (retain_graph)
    loads them through the saved-tensor hooks: the same grid values in the same layouts, so
    the same FP32 products and sums: bit-identical gradients."""
    x = torch.randn(64, 48, requires_grad=True)
    w = torch.randn(16, 48, requires_grad=True)
    y = gemm(x, w, PRESETS[preset])
    dy = torch.randn_like(y)
    first = torch.autograd.grad(y, (x, w), dy, retain_graph=True)
    second = torch.autograd.grad(y, (x, w), dy)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
