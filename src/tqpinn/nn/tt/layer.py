"""TT-matrix layer y = x Wᵀ + b with W held as tensor-train cores; every GEMM via qops.gemm.

Shapes, padding and rank clipping: :mod:`tqpinn.nn.tt.shapes`; initialisation:
:mod:`tqpinn.nn.tt.init`; contraction plans and their cost: :mod:`tqpinn.nn.tt.plans`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tqpinn.nn.layer import GemmLayer, check_input
from tqpinn.nn.streams import Product
from tqpinn.nn.tt.init import init_cores_, target_variance
from tqpinn.nn.tt.plans import ContractionPlan, make_plan
from tqpinn.nn.tt.shapes import TTShape, tt_shape
from tqpinn.nn.tt.svd import tt_svd, tt_to_dense
from tqpinn.qops import chained_gemm, gemm
from tqpinn.quant.store import Recompute


class TTLinear(GemmLayer):
    """Dense-equivalent layer whose weight (out, in) is a TT-matrix.

    ranks: one internal rank or a list of d − 1; shapes: (out factors, in factors) or None for
    the automatic rule over ``n_cores`` cores; plan: "sequential", "reconstruct" or "partial"
    with ``groups`` (a count or sizes); merge: precision of the merge GEMMs of "partial" and
    "reconstruct", "fp32" (each merged core is quantized once, when used) or "quantized"; recompute:
    quantized, keep only the layer's input for backward and recompute the later contractions'
    inputs there (False: store each); init: "torch", "xavier" or "he" (variance of the
    reconstructed weight, see :mod:`tqpinn.nn.tt.init`). The bias follows torch.nn.Linear for
    "torch" and is zero otherwise. The plan may be changed later with :meth:`set_plan`.
    """

    svd_rel_error: float | None = None
    """Relative Frobenius error of the TT-SVD, for layers made by :meth:`from_dense`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        ranks: int | Sequence[int] = 2,
        shapes: tuple[Sequence[int], Sequence[int]] | None = None,
        n_cores: int | None = None,
        plan: str = "sequential",
        groups: int | Sequence[int] | None = None,
        init: str = "torch",
        bias: bool = True,
        merge: str = "fp32",
        recompute: bool = True,
    ) -> None:
        super().__init__()
        self.recompute = recompute
        self.in_features, self.out_features = in_features, out_features
        self.shape: TTShape = tt_shape(in_features, out_features, ranks, shapes, n_cores)
        self.plan: ContractionPlan = make_plan(plan, self.shape.n_cores, groups, merge)
        self.cores = nn.ParameterList(
            nn.Parameter(torch.empty(self.shape.core_shape(k))) for k in range(self.shape.n_cores)
        )
        init_cores_(list(self.cores), target_variance(init, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        if self.bias is not None and init == "torch":
            bound = 1.0 / math.sqrt(in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def set_plan(
        self, plan: str, groups: int | Sequence[int] | None = None, merge: str = "fp32"
    ) -> None:
        self.plan = make_plan(plan, self.shape.n_cores, groups, merge)

    @property
    def n_params(self) -> int:
        """Trainable parameters: cores plus bias."""
        return self.shape.n_core_params + (0 if self.bias is None else self.out_features)

    @property
    def compression_ratio(self) -> float:
        """Dense weight entries per TT core parameter (biases excluded on both sides)."""
        return self.shape.compression_ratio

    def dense_weight(self) -> torch.Tensor:
        """The weight (out, in) that the cores represent, by einsum (no qops, no quantization)."""
        return tt_to_dense(list(self.cores))[: self.out_features, : self.in_features]

    @classmethod
    def from_dense(
        cls,
        linear: nn.Module,
        ranks: int | Sequence[int],
        shapes: tuple[Sequence[int], Sequence[int]] | None = None,
        n_cores: int | None = None,
        plan: str = "sequential",
        groups: int | Sequence[int] | None = None,
        merge: str = "fp32",
    ) -> TTLinear:
        """TT approximation of a dense layer (``weight`` (out, in), optional ``bias``) by TT-SVD.

        The relative Frobenius error ‖W − W_TT‖/‖W‖ is stored in ``svd_rel_error``. With padded
        factors the zero-padded matrix is decomposed, whose TT-ranks can exceed those of W.
        """
        out_features, in_features = linear.weight.shape
        bias = getattr(linear, "bias", None)
        layer = cls(
            in_features,
            out_features,
            ranks,
            shapes,
            n_cores,
            plan,
            groups,
            bias=bias is not None,
            merge=merge,
        ).to(linear.weight)
        cores, error = tt_svd(linear.weight, layer.shape)
        with torch.no_grad():
            for param, core in zip(layer.cores, cores, strict=True):
                param.copy_(core)
            if bias is not None:
                layer.bias.copy_(bias)
        layer.svd_rel_error = error
        return layer

    def group_matrices(self) -> list[torch.Tensor]:
        """Per plan group [a, b): the matrix (r_a·M_g, N_g·r_b) of its merged cores (merge stage).

        One-core groups are views of the core; larger groups are merged by qops GEMMs (traced),
        under the layer's spec only if the plan's merge precision is "quantized".
        """
        mats = []
        r = self.shape.ranks
        spec = self.quant if self.plan.merge == "quantized" else None
        for a, b in self.plan.bounds():
            merged = self.cores[a]  # (r_a, m_a, n_a, r_{a+1}), index order (r, m_a, n_a, ..., r)
            for k in range(a + 1, b):
                core = self.cores[k]
                rk, m, n, rk1 = core.shape
                flat = gemm(merged.reshape(-1, rk), core.reshape(rk, m * n * rk1).T, spec)
                merged = flat.reshape(*merged.shape[:-1], m, n, rk1)
            # (r_a, m_a, n_a, ..., m_{b-1}, n_{b-1}, r_b) -> (r_a, m_a..m_{b-1}, n_a..n_{b-1}, r_b)
            size = b - a
            order = [0, *(1 + 2 * i for i in range(size)), *(2 + 2 * i for i in range(size))]
            merged = merged.permute(*order, 2 * size + 1)
            m_g = math.prod(self.shape.out_factors[a:b])
            mats.append(merged.reshape(r[a] * m_g, -1))
        return mats

    def contract(self, x: torch.Tensor, mats: Sequence[torch.Tensor]) -> torch.Tensor:
        """x (..., in) -> x Wᵀ (..., out) without bias, from :meth:`group_matrices` (contract stage).

        The activation keeps the layout (B, M_{≥b}, N_{<a}, N_g·r_b); after each GEMM the new
        output digits M_g move ahead of the previous ones, so the final layout is (B, m_1..m_d).
        """
        check_input(self, x, self.in_features)
        lead = x.shape[:-1]
        t = x.reshape(-1, self.in_features)
        if self.shape.in_padded > self.in_features:
            t = F.pad(t, (0, self.shape.in_padded - self.in_features))  # zeros: contribute 0
        batch = t.shape[0]
        m_f, n_f, r = self.shape.out_factors, self.shape.in_factors, self.shape.ranks
        # With ``recompute``, quantized, only the layer's input is kept for backward: each later
        # GEMM's input (an intermediate of up to rank·width elements per row) is recomputed
        # there from the previous GEMM's kept input, one small product per group
        # (qops.chained_gemm); without, each GEMM stores its own input.
        again = layout = None
        for (a, b), mat in zip(reversed(self.plan.bounds()), reversed(mats), strict=True):
            k = mat.shape[1]
            chained = self.recompute and again is not None
            recompute = functools.partial(_next_input, again, layout, k) if chained else None
            y, again = chained_gemm(t.reshape(-1, k), mat, self.quant, recompute)
            layout = (batch, math.prod(m_f[b:]), math.prod(n_f[:a]), r[a], -1)
            t = _output_layout(y, layout)
        return t[:, : self.out_features].reshape(*lead, self.out_features)

    def product(self) -> Product:
        # The merged cores are built once per call and shared by every operand of the call
        # (each stream of a bundle), while each operand's GEMMs quantize it with its own block
        # scales (DiffQuant).
        return functools.partial(self.contract, mats=self.group_matrices())

    def extra_repr(self) -> str:
        sh = self.shape
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"factors={list(sh.out_factors)}x{list(sh.in_factors)}, ranks={list(sh.ranks)}, "
            f"plan={self.plan.label}"
        )


def _output_layout(y: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A contract GEMM's output (rows, r_a·M_g) as (B, M_g·M_{≥b}·N_{<a}·r_a): the new output
    digits M_g move ahead of the previous ones; ``shape`` is (B, M_{≥b}, N_{<a}, r_a, M_g)."""
    return y.reshape(shape).permute(0, 4, 1, 2, 3).reshape(shape[0], -1)


def _next_input(again: Recompute, shape: tuple[int, ...], k: int) -> torch.Tensor:
    """The next contract GEMM's input (rows, k), from a recompute of the previous output."""
    return _output_layout(again(), shape).reshape(-1, k)
