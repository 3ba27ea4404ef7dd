"""Activations: element-wise maps of a tensor, or of a stream bundle by the bundle's rule.

The primitives a bundle asks for: ``evaluate(a)`` = act(a), ``difference(a, b)`` for
difference streams (DiffQuant), and ``taylor(a)`` = (act(a), act'(a), act''(a)) for Taylor streams.

``difference(a, b)`` returns act(a + b) − act(a) by an identity that has no cancellation, so that
a tiny difference b keeps its relative precision however large a is. Its partial derivatives
come from identities of the same kind, and its backward keeps only a and b: autograd through
the identity would keep every intermediate (several tensors the size of b per layer, twice the
saved bytes of a DiffQuant step).

For FP32 CPU tensors the value and the gradients each come from one fused pass per stream
(tqpinn.quant.fused_difference: the same identities and operations in C); the PyTorch formulas
here are the reference, and the path for every other dtype and device.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
from torch.autograd.function import once_differentiable

from tqpinn.nn.streams import StreamBundle, StreamModule
from tqpinn.quant import fused_difference


class Activation(StreamModule):
    """Element-wise activation with a cancellation-free difference rule."""

    fused_kind: ClassVar[str | None] = None
    """Its name in :data:`tqpinn.quant.fused_difference.KINDS`, if it has a fused kernel."""

    @abstractmethod
    def evaluate(self, a: torch.Tensor) -> torch.Tensor:
        """act(a), element-wise."""

    @abstractmethod
    def difference_value(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """act(a + b) − act(a), computed without subtracting two nearby values."""

    @abstractmethod
    def difference_partials(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(∂/∂a, ∂/∂b) of act(a + b) − act(a): act'(a + b) − act'(a) without cancellation,
        and act'(a + b)."""

    @abstractmethod
    def taylor(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(act(a), act'(a), act''(a)), element-wise, sharing their common work."""

    def difference(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """act(a + b) − act(a); a broadcasts against b. First-order differentiable."""
        return _Difference.apply(a, b, self)

    def difference_streams(
        self, a: torch.Tensor, odd: torch.Tensor, even: torch.Tensor, even_zero: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Difference streams through the activation: a (N, 1, F) the centre pre-activation,
        odd and even (N, K, F) the pre-activation streams; returns odd' = D₊ − D₋ and even' =
        D₊ + D₋ with D± = act(a ± δa) − act(a) = difference(a, plus or minus) of the one-sided
        differences plus = ½(even + odd), minus = ½(even − odd). First-order differentiable;
        keeps a, plus and minus for backward, or (fused) only a and plus when ``even_zero``
        says that even is exactly zero, so that minus = −plus."""
        if fused_difference.can_fuse_streams(self.fused_kind, a, odd, even):
            return _DifferenceStreams.apply(a, odd, even, self, even_zero)
        plus, minus = 0.5 * (even + odd), 0.5 * (even - odd)
        d_plus, d_minus = self.difference(a, plus), self.difference(a, minus)
        return d_plus - d_minus, d_plus + d_minus

    def forward_tensor(self, a: torch.Tensor) -> torch.Tensor:
        return self.evaluate(a)

    def forward_bundle(self, bundle: StreamBundle) -> StreamBundle:
        return bundle.activate(self)


class _Difference(torch.autograd.Function):
    """``act.difference_value(a, b)`` whose backward recomputes its partials from a and b."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, act: Activation) -> torch.Tensor:
        ctx.act = act
        ctx.save_for_backward(a, b)
        if fused_difference.can_fuse(act.fused_kind, a, b):
            return fused_difference.difference(act.fused_kind, a, b)
        return act.difference_value(a, b)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[:2]
        kind = ctx.act.fused_kind
        if fused_difference.can_fuse(kind, a, b):
            grad_a, grad_b = fused_difference.difference_backward(kind, a, b, grad, need_a, need_b)
            return grad_a, grad_b, None
        d_a, d_b = ctx.act.difference_partials(a, b)
        grad_a = (grad * d_a).sum_to_size(a.shape) if need_a else None
        grad_b = (grad * d_b).sum_to_size(b.shape) if need_b else None
        return grad_a, grad_b, None


class _DifferenceStreams(torch.autograd.Function):
    """``act.difference_streams`` in one fused pass forward and one backward (FP32 CPU)."""

    @staticmethod
    def forward(
        ctx,
        a: torch.Tensor,
        odd: torch.Tensor,
        even: torch.Tensor,
        act: Activation,
        even_zero: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        plus, minus, odd_out, even_out = fused_difference.streams(act.fused_kind, a, odd, even)
        ctx.act = act
        # What the unfused path saves; with even = 0, minus = ½(0 − odd) = −plus exactly, and
        # a symmetric quantization of −plus is the negated quantization of plus: one copy.
        ctx.save_for_backward(a, plus, None if even_zero else minus)
        return odd_out, even_out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_odd: torch.Tensor, grad_even: torch.Tensor):
        a, plus, minus = ctx.saved_tensors
        if minus is None:
            minus = 0.0 - plus  # −plus, with +0 where plus is 0, as a stored copy of minus has
        grad_a, grad_odd_in, grad_even_in = fused_difference.streams_backward(
            ctx.act.fused_kind, a, plus, minus, grad_odd, grad_even, ctx.needs_input_grad[0]
        )
        return grad_a, grad_odd_in, grad_even_in, None, None


class Tanh(Activation):
    fused_kind = "tanh"

    def evaluate(self, a: torch.Tensor) -> torch.Tensor:
        return torch.tanh(a)

    def taylor(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # tanh' = 1 − t², tanh'' = −2t(1 − t²), all from t = tanh a.
        t = torch.tanh(a)
        slope = 1.0 - t.square()
        return t, slope, -2.0 * t * slope

    def difference_value(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # tanh(a+b) − tanh(a) = tanh(b) sech²(a) / (1 + tanh a · tanh b); sech² rather than
        # 1 − tanh²a, which cancels for large |a|.
        ta, tb = torch.tanh(a), torch.tanh(b)
        return tb / (torch.cosh(a).square() * (1.0 + ta * tb))

    def difference_partials(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # With D the difference and t₀ = tanh a, t₁ = tanh(a+b) = t₀ + D:
        # sech²(a+b) − sech²(a) = t₀² − t₁² = −D (t₀ + t₁), no cancellation; sech²(a+b) = 1 − t₁²
        # (as torch's own tanh backward, exact to rounding in absolute terms).
        t0 = torch.tanh(a)
        d = self.difference_value(a, b)
        t1 = t0 + d
        return -d * (t0 + t1), 1.0 - t1.square()


class Sin(Activation):
    fused_kind = "sin"

    def evaluate(self, a: torch.Tensor) -> torch.Tensor:
        return torch.sin(a)

    def taylor(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = torch.sin(a)
        return s, torch.cos(a), -s

    def difference_value(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # sin(a+b) − sin(a) = 2 cos(a + b/2) sin(b/2)
        return 2.0 * torch.cos(a + 0.5 * b) * torch.sin(0.5 * b)

    def difference_partials(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # cos(a+b) − cos(a) = −2 sin(a + b/2) sin(b/2)
        return -2.0 * torch.sin(a + 0.5 * b) * torch.sin(0.5 * b), torch.cos(a + b)


ACTIVATIONS: dict[str, type[Activation]] = {"tanh": Tanh, "sin": Sin}
