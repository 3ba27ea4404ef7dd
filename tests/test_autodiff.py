"""The autodiff estimator against analytic derivatives and a slow loop of backward passes."""

import pytest
import torch
from torch import nn

from tqpinn.derivatives import DT, GRAD, LAP, Autodiff, U
from tqpinn.nn import MLP
from tqpinn.qops import observe_gemms

EPS64 = torch.finfo(torch.float64).eps
ALL = frozenset({U, GRAD, LAP, DT})


class Wave(nn.Module):
    """u = sin(a·x) e^(c t) + Σ b_i x_i² / 2 on d space columns and time (plain callable)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, c: float) -> None:
        super().__init__()
        self.a, self.b, self.c = a, b, c

    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        x, t = xt[:, :-1], xt[:, -1]
        return (torch.sin(x @ self.a) * torch.exp(self.c * t) + 0.5 * x.square() @ self.b)[:, None]

    def exact(self, xt: torch.Tensor) -> dict[str, torch.Tensor]:
        x, t = xt[:, :-1], xt[:, -1]
        s, co, e = torch.sin(x @ self.a), torch.cos(x @ self.a), torch.exp(self.c * t)
        return {
            U: s * e + 0.5 * x.square() @ self.b,
            GRAD: (co * e)[:, None] * self.a + x * self.b,
            LAP: -s * e * self.a.square().sum() + self.b.sum(),
            DT: self.c * s * e,
        }


def loop_reference(net, x, n_space):
    """One double-backward pass per spatial direction: the slow, obviously correct reference."""
    x = x.detach().requires_grad_(True)
    u = net(x)[:, 0]
    g = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
    lap = sum(
        torch.autograd.grad(g[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(n_space)
    )
    return {U: u, GRAD: g[:, :n_space], LAP: lap, DT: g[:, n_space]}


@pytest.mark.parametrize("directions_per_pass", [1, 3, 4, 10])
def test_matches_analytic_derivatives_in_float64(directions_per_pass):
    # 4 space columns: 3 directions a pass leaves a partial last pass, 10 exceeds d.
    torch.manual_seed(0)
    f = Wave(torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64), -0.7)
    x = torch.rand(7, 5, dtype=torch.float64)
    got = Autodiff(directions_per_pass).fields(f, x, ALL, n_space=4)
    exact = f.exact(x)
    # Each field is a handful of float64 operations on numbers of size <= ~10 here, computed
    # along two routes (autograd and the formula), each within ~10 eps · 10 of the truth: they
    # differ by <= ~200 eps; 1000 eps leaves a factor 5.
    for name, want in exact.items():
        torch.testing.assert_close(getattr(got, name), want, rtol=0, atol=1000 * EPS64)


@pytest.mark.parametrize("activation", ["tanh", "sin"])
@pytest.mark.parametrize("directions_per_pass", [1, 2, 5])
def test_mlp_fields_and_parameter_gradients_match_the_loop(activation, directions_per_pass):
    torch.manual_seed(1)
    net = MLP([6, 16, 16, 1], activation=activation).double()
    x = torch.rand(5, 6, dtype=torch.float64)
    got = Autodiff(directions_per_pass).fields(net, x, ALL, n_space=5)
    ref = loop_reference(net, x, 5)
    # Same operations, different batching of the GEMMs: each dot product of width 16 may round
    # differently (<= 16 eps relative), over three layers and two backward passes: ~1e-13
    # relative; 1e-12 leaves a factor 10.
    for name in ALL:
        torch.testing.assert_close(getattr(got, name), ref[name], rtol=1e-12, atol=1e-12)

    def loss(f):
        return (f[DT] - f[LAP]).square().sum() + f[U].square().sum() + f[GRAD].square().sum()

    params = list(net.parameters())
    fields = {name: getattr(got, name) for name in ALL}
    for a, b in zip(
        torch.autograd.grad(loss(fields), params),
        torch.autograd.grad(loss(ref), params),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)  # one more backward pass


def test_traced_gemms_give_the_same_derivatives():
    # While observed, qops runs its custom autograd Function (double backward included).
    torch.manual_seed(2)
    net = MLP([4, 8, 8, 1]).double()
    x = torch.rand(3, 4, dtype=torch.float64)
    plain = Autodiff(2).fields(net, x, ALL, n_space=3)
    phases = []
    with observe_gemms(lambda event: phases.append(event.phase)):
        traced = Autodiff(2).fields(net, x, ALL, n_space=3)
        traced.lap.sum().backward()
    assert {"forward", "dgrad", "wgrad"} <= set(phases)
    for name in ALL:
        torch.testing.assert_close(getattr(traced, name), getattr(plain, name))


def test_without_grad_mode_fields_are_detached_and_correct():
    torch.manual_seed(3)
    net = MLP([3, 8, 1]).double()
    x = torch.rand(4, 3, dtype=torch.float64)
    with torch.no_grad():
        f = Autodiff().fields(net, x, ALL, n_space=2)
    ref = loop_reference(net, x, 2)
    for name in ALL:
        assert not getattr(f, name).requires_grad
        torch.testing.assert_close(getattr(f, name), ref[name].detach())


def test_affine_network_has_zero_laplacian():
    lin = nn.Linear(3, 1).double()
    x = torch.rand(4, 3, dtype=torch.float64)
    f = Autodiff().fields(lin, x, frozenset({GRAD, LAP}), n_space=3)
    assert torch.equal(f.lap, torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(f.grad, lin.weight.expand(4, 3))


def test_only_requested_fields_are_returned_and_value_needs_one_forward():
    rows = []
    net = MLP([3, 8, 1])
    hook = net.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    x = torch.rand(4, 3)
    f = Autodiff().fields(net, x, frozenset({U}), n_space=3)
    assert (f.grad, f.lap, f.dt) == (None, None, None)
    assert rows == [4]
    f = Autodiff(directions_per_pass=2).fields(net, x, frozenset({LAP}), n_space=3)
    assert (f.u, f.grad, f.dt) == (None, None, None)
    assert rows == [4, 8]  # two copies of the 4 points
    hook.remove()


def test_time_derivative_needs_a_time_column():
    with pytest.raises(ValueError, match="dt"):
        Autodiff().fields(MLP([2, 4, 1]), torch.rand(3, 2), frozenset({DT}), 2)


def test_network_output_must_be_one_column():
    with pytest.raises(ValueError, match="output"):
        Autodiff().fields(nn.Linear(3, 2), torch.rand(4, 3), frozenset({U}), 3)
