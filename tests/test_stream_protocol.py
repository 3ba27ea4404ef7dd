"""Stream bundles go through ``module(...)``: hooks see them, and a new bundle kind passes
through the layers without a change to their code."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from tqpinn.nn import MLP, Activation, DifferenceStreams, Linear, StreamBundle
from tqpinn.nn.tt.layer import TTLinear


@dataclass(frozen=True)
class Tangent(StreamBundle):
    """A value h (N, F) and one forward-mode derivative ∂h/∂x·v (N, F) along a direction v."""

    value_stream: torch.Tensor
    tangent: torch.Tensor

    def streams(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.value_stream, self.tangent

    def with_streams(self, *streams: torch.Tensor) -> Tangent:
        return Tangent(*streams)

    def activate(self, activation: Activation) -> Tangent:
        # (σ(a), σ'(a)·∂a), from the activation's value primitive alone: σ' element-wise is the
        # gradient of Σσ(a).
        a = self.value_stream.detach().requires_grad_()
        (slope,) = torch.autograd.grad(activation.evaluate(a).sum(), a)
        return Tangent(activation.evaluate(self.value_stream), slope * self.tangent)

    def to_rows(self) -> torch.Tensor:
        raise NotImplementedError("a tangent has no form as plain rows")

    def from_rows(self, rows: torch.Tensor) -> Tangent:
        raise NotImplementedError("a tangent has no form as plain rows")


def dense(a: int, b: int, i: int) -> Linear:
    return Linear(a, b)


def tt_then_dense(a: int, b: int, i: int) -> Linear | TTLinear:
    return TTLinear(a, b, ranks=2, n_cores=2, plan="partial", groups=1) if i < 2 else Linear(a, b)


@pytest.mark.parametrize("factory", [dense, tt_then_dense])
@pytest.mark.parametrize("activation", ["tanh", "sin"])
def test_a_bundle_kind_defined_outside_the_library_passes_through_the_mlp(factory, activation):
    torch.manual_seed(2)
    net = MLP([3, 16, 16, 2], activation=activation, linear_factory=factory).double()
    x = torch.rand(5, 3, dtype=torch.float64)
    v = torch.randn(5, 3, dtype=torch.float64)
    out = net(Tangent(x, v))
    value, tangent = torch.autograd.functional.jvp(net, x, v)
    # The chain rule evaluated in another order (reverse mode, twice): float64 rounding only.
    torch.testing.assert_close(out.value, value, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(out.tangent, tangent, rtol=1e-12, atol=1e-14)


def test_forward_hooks_see_the_bundle_calls_of_layers_and_activation():
    net = MLP([3, 8, 8, 1])
    seen = []
    for name in ("layers.0", "layers.2", "activation"):
        module = net.get_submodule(name)
        module.register_forward_hook(
            lambda m, args, out, name=name: seen.append((name, type(args[0]), type(out)))
        )
    bundle = DifferenceStreams.from_input(torch.rand(4, 3), 0.01 * torch.randn(4, 2, 3))
    net(bundle)
    pair = (DifferenceStreams, DifferenceStreams)
    assert seen == [
        ("layers.0", *pair),
        ("activation", *pair),
        ("activation", *pair),
        ("layers.2", *pair),
    ]
    # The "input" ablation: streams through the first layer and its activation, plain rows
    # from the second layer on.
    seen.clear()
    net(bundle, stream_layers=1)
    rows = (torch.Tensor, torch.Tensor)
    assert seen == [
        ("layers.0", *pair),
        ("activation", *pair),
        ("activation", *rows),
        ("layers.2", *rows),
    ]


def test_bundle_options_with_a_tensor_are_an_error():
    with pytest.raises(TypeError, match=r"MLP takes \['stream_layers'\] with a stream bundle only"):
        MLP([3, 8, 1])(torch.rand(4, 3), stream_layers=1)
