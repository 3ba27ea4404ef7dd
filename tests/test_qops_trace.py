"""The GEMM trace: every product of forward, backward and double backward is reported."""

import torch

from tqpinn.nn import MLP
from tqpinn.qops import GemmEvent, _TracedGemm, gemm, observe_gemms


def test_traced_gemm_gradcheck_and_gradgradcheck_float64():
    a = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    fn = lambda a, b: _TracedGemm.apply(a, b, "forward")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (a, b))
    assert torch.autograd.gradgradcheck(fn, (a, b))


def test_observed_gemm_equals_plain_matmul():
    x, w = torch.randn(7, 5), torch.randn(3, 5)
    events = []
    with observe_gemms(events.append):
        y = gemm(x, w)
    # The same FP32 kernel runs in both paths, so the results are identical.
    assert torch.equal(y, x @ w.T)
    assert events == [GemmEvent("forward", 7, 3, 5, "fp32", "fp32", 32, 32, None)]


def test_forward_dgrad_wgrad_shapes():
    x = torch.randn(2, 7, 5, requires_grad=True)
    w = torch.randn(3, 5, requires_grad=True)
    events = []
    with observe_gemms(events.append):
        gemm(x, w).sum().backward()
    shapes = {e.phase: (e.m, e.n, e.k) for e in events}
    # forward (M x K)(K x N); dgrad (M x N)(N x K); wgrad (N x M)(M x K), M = 14 rows.
    assert shapes == {"forward": (14, 3, 5), "dgrad": (14, 5, 3), "wgrad": (3, 5, 14)}
    assert len(events) == 3


def test_no_events_outside_the_context():
    events = []
    x, w = torch.randn(4, 3, requires_grad=True), torch.randn(2, 3, requires_grad=True)
    with observe_gemms(events.append):
        pass
    gemm(x, w).sum().backward()
    assert events == []


def test_double_backward_laplacian_is_traced_and_exact():
    """An autodiff Laplacian (grad of grad) through an observed MLP matches the unobserved one."""
    torch.manual_seed(3)
    net = MLP([2, 8, 8, 1]).double()
    x = torch.rand(5, 2, dtype=torch.float64, requires_grad=True)

    def laplacian_loss():
        u = net(x).sum()
        (g,) = torch.autograd.grad(u, x, create_graph=True)
        lap = sum(
            torch.autograd.grad(g[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(2)
        )
        return lap.square().sum()

    # The output bias does not reach the Laplacian: allow_unused, zeros for it.
    params = [p for name, p in net.named_parameters() if name != "layers.2.bias"]
    plain = laplacian_loss()
    plain_grads = torch.autograd.grad(plain, params)
    events = []
    with observe_gemms(events.append):
        traced = laplacian_loss()
        traced_grads = torch.autograd.grad(traced, params)
    # Same products in a different autograd graph: equal up to float64 summation-order rounding.
    torch.testing.assert_close(traced, plain, rtol=1e-12, atol=0)
    for t, p in zip(traced_grads, plain_grads, strict=True):
        torch.testing.assert_close(t, p, rtol=1e-10, atol=1e-14)
    phases = {e.phase for e in events}
    assert phases == {"forward", "dgrad", "wgrad"}
    # 3 layers forward, and well over 3 backward GEMMs per layer for third-order graphs.
    assert sum(e.phase == "forward" for e in events) >= 3
    assert len(events) > 3 * 3
    assert all(e.a_format == "fp64" and e.a_bits == 64 for e in events)
