"""Stein's estimator: derivatives of the Gaussian-smoothed network from forward passes only.

f(x) = E_δ[g(x + δ)], δ = σz, z ~ N(0, I) over all D input columns (space and time perturbed
jointly, σ_t = σ). With K antithetic pairs ±δ_k and the centre value g(x) as control variate
(PAPER_NOTES.md section 2), writing odd_k = g(x+δ_k) − g(x−δ_k) and
even_k = g(x+δ_k) + g(x−δ_k) − 2g(x):

    ∂f/∂x_i ≈ mean_k z_{k,i} · odd_k / (2σ)            (also ∂f/∂t, the last column)
    Δf      ≈ mean_k (‖z_{k,space}‖² − d) · even_k / (2σ²)
    f(x)    ≈ g(x)  ("center")  or  g(x) + mean_k even_k / 2 = mean of g(x ± δ_k)  ("smoothed")

Both are unbiased for the smoothed f; against g itself the bias is O(σ²). The parameters get
ordinary first-order back-propagation through the forward passes: the loss is linear in the g
values through these weights.

DiffQuant (``diffquant``: off, input, full) is how the perturbations reach the output; the
network is evaluated by :func:`tqpinn.derivatives.pairs.evaluate_pairs`, shared with the stencil.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.autograd.function import once_differentiable

from tqpinn.derivatives.base import Estimator, Network, scalar_output
from tqpinn.derivatives.fields import DT, GRAD, LAP, Fields, U, check_needs
from tqpinn.derivatives.options import check_choice, check_positive_float, check_positive_int
from tqpinn.derivatives.pairs import DIFFQUANT_MODES, OFF, Pairs, evaluate_pairs

CENTER, SMOOTHED = "center", "smoothed"
ON_CPU, ON_DEVICE = "cpu", "device"
DIRECTION_PLACES = (ON_CPU, ON_DEVICE)


@dataclass(frozen=True)
class Stein(Estimator):
    """Antithetic Stein estimator with the g(x) control variate.

    sigma: perturbation std (input units). pairs: K antithetic pairs per point.
    value: "center" (u = g(x)) or "smoothed" (Monte-Carlo mean of g(x ± δ)).
    diffquant: "off" runs the network on the stacked rows [x; x+δ; x−δ]; "full" calls
    ``net(bundle)`` on difference streams and uses the output's odd/even streams directly;
    "input" calls ``net(bundle, stream_layers=1)``: streams through the first GEMM layer only.
    Both need a network that takes stream bundles (a :class:`~tqpinn.nn.streams.StreamModule`
    such as :class:`tqpinn.nn.MLP`).
    directions: where the trainer draws z: "cpu" (from the run's sampling generator, so that
    CPU and GPU runs of one config draw the same directions) or "device" (from a generator of
    its own on the run's device, seeded by the run: no host-to-device copy of N·K·D numbers per
    step). The estimator itself draws from whichever generator it is given.
    """

    name: ClassVar[str] = "stein"
    sigma: float = 0.01
    pairs: int = 512
    value: str = CENTER
    diffquant: str = OFF
    directions: str = ON_CPU

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", check_positive_float("sigma", self.sigma))
        check_positive_int("pairs", self.pairs)
        check_choice("value", self.value, (CENTER, SMOOTHED))
        check_choice("diffquant", self.diffquant, DIFFQUANT_MODES)
        check_choice("directions", self.directions, DIRECTION_PLACES)

    @property
    def draws_on_device(self) -> bool:
        return self.directions == ON_DEVICE

    def one_forward_suffices(self, needs: frozenset[str]) -> bool:
        # A smoothed value is itself a Monte-Carlo estimate over the pairs.
        return super().one_forward_suffices(needs) and (U not in needs or self.value == CENTER)

    def estimated_fields(
        self,
        net: Network,
        x: torch.Tensor,
        needs: frozenset[str],
        n_space: int,
        generator: torch.Generator | None,
    ) -> Fields:
        return self.fields_of_rows(net, x, slice(None), needs, n_space, generator)

    def fields_of_rows(
        self,
        net: Network,
        x: torch.Tensor,
        rows: slice,
        needs: frozenset[str],
        n_space: int,
        generator: torch.Generator | None = None,
    ) -> Fields:
        # Perturbations are drawn for all N points and sliced, so that a shard of the batch
        # sees the same δ as the whole batch (data parallelism, tqpinn.train.distributed).
        n_all = x.shape[0]
        x = x[rows]
        n, dims = x.shape
        check_needs(needs, dims - n_space)
        if self.one_forward_suffices(needs):
            return Fields(u=scalar_output(net(x), n) if U in needs else None)
        directions = _Directions((n_all, self.pairs, dims), rows, generator, x)
        z = directions.draw()  # (N, K, D)
        with_base = bool(needs & {U, LAP})
        pairs = evaluate_pairs(net, x, self.sigma * z, with_base, self.diffquant)
        # Gradient and time derivative share one contraction over all D columns.
        grad_all = _contract(z, pairs.odd, directions) / (2 * self.sigma * self.pairs)
        return Fields(
            u=self._value(pairs) if U in needs else None,
            grad=grad_all[:, :n_space] if GRAD in needs else None,
            lap=self._laplacian(z[..., :n_space], pairs.even) if LAP in needs else None,
            dt=grad_all[:, n_space] if DT in needs else None,
        )

    def _value(self, pairs: Pairs) -> torch.Tensor:
        if self.value == CENTER:
            return pairs.base
        return pairs.base + 0.5 * pairs.even.mean(dim=1)

    def _laplacian(self, z_space: torch.Tensor, even: torch.Tensor) -> torch.Tensor:
        """mean_k (‖z_k‖² − d) even_k / (2σ²): z_space (N, K, d), even (N, K) -> (N,)."""
        weight = z_space.square().sum(dim=-1) - z_space.shape[-1]
        return (weight * even).mean(dim=1) / (2 * self.sigma**2)


class _Directions:
    """The Gaussian directions z ~ N(0, I) of one estimate, drawable again.

    ``shape`` is (N_all, K, D) for the whole batch; ``rows`` selects this shard's points. z is
    drawn on the generator's device (CPU for the trainer's generator, so a run draws the same
    directions on every device) and moved to ``like``'s device and dtype. The generator state
    before the draw is kept (a few KB), so backward can regenerate z instead of saving it.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        rows: slice,
        generator: torch.Generator | None,
        like: torch.Tensor,
    ) -> None:
        self.shape, self.rows, self.generator = shape, rows, generator
        self.dtype, self.device = like.dtype, like.device
        self.state = None if generator is None else generator.get_state()

    @property
    def redrawable(self) -> bool:
        return self.generator is not None

    def draw(self) -> torch.Tensor:
        return self._draw(self.generator)

    def redraw(self) -> torch.Tensor:
        """The same z as ``draw`` returned, from a copy of the saved generator state."""
        replay = torch.Generator(self.generator.device)
        replay.set_state(self.state)
        return self._draw(replay)

    def _draw(self, generator: torch.Generator | None) -> torch.Tensor:
        device = self.device if generator is None else generator.device
        z = torch.randn(self.shape, generator=generator, dtype=self.dtype, device=device)
        return z[self.rows].to(self.device)


def _contract(z: torch.Tensor, weights: torch.Tensor, directions: _Directions) -> torch.Tensor:
    """Σ_k z[n, k, :] · weights[n, k] -> (N, D).

    Autograd would keep z (N·K·D floats, 21 MB on the Heat-100D recipe) for the backward to
    ``weights``; with a seeded generator the contraction regenerates z in backward instead.
    """
    if not directions.redrawable:
        return torch.einsum("nkd,nk->nd", z, weights)
    return _RedrawContraction.apply(weights, z, directions)


class _RedrawContraction(torch.autograd.Function):
    """``einsum("nkd,nk->nd", z, w)`` whose backward redraws z rather than saving it."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor, z: torch.Tensor, directions: _Directions):
        ctx.directions = directions
        return torch.einsum("nkd,nk->nd", z, weights)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        z = ctx.directions.redraw()
        return torch.einsum("nd,nkd->nk", grad, z), None, None
