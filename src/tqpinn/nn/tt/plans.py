"""Contraction plans of a TT-matrix layer and their cost model.

Every plan is a partition of the d cores into consecutive groups:

- ``sequential``: d groups of one core; the input meets one core at a time (d GEMMs on the data
  path, so in quantized training the activation is re-quantized d times);
- ``reconstruct``: one group; the cores are first merged into W (M x N), then one GEMM;
- ``partial`` (PRS): g groups (a count, split as evenly as possible, or explicit sizes); each
  group's cores are merged into one larger core, then the input meets the g merged cores.

The layer runs a plan in two stages, both made of ``qops.gemm`` calls (so both are traced):

1. merge (weights only, independent of the batch): in group [a, b) the running product
   C (r_a·Π(m_i n_i), r_k) meets core k viewed as (r_k, m_k n_k r_{k+1}):
   GEMM (m, k, n) = (r_a·Π_{a≤i<k} m_i n_i, r_k, m_k n_k r_{k+1}) for k = a+1 .. b−1.
   With ``merge="fp32"`` (default) these GEMMs run unquantized and each merged core is quantized
   once, as the weight operand of its contract GEMM; with ``merge="quantized"`` they run under the
   layer's spec too (an accelerator that merges in its integer datapath).
2. contract, groups from the last to the first: the activation, laid out as
   (B, M_{≥b}, N_{<a}, N_g·r_b), meets the group matrix (r_a·M_g, N_g·r_b):
   GEMM (m, k, n) = (B·M_{≥b}·N_{<a}, N_g·r_b, r_a·M_g), where M_g = Π_{a≤i<b} m_i,
   N_g = Π_{a≤i<b} n_i, M_{≥b} = Π_{i≥b} m_i, N_{<a} = Π_{i<a} n_i.

Memory: in FP32 every contract GEMM keeps its activation operand for its weight gradient, and
the intermediates between groups can be wider than the layer (rank x width). Quantized (with
deterministic packing) the layer keeps only its input: backward recomputes each intermediate
from the previous GEMM's kept input, one more product per group boundary ("recompute").

Backward, for a forward GEMM y = x wᵀ with x (m x k) and w (n x k): "dgrad" dx = dy·w, an
(m x n)·(n x k) product, when x needs a gradient; "wgrad" dw = dyᵀ·x, (n x m)·(m x k), always
(w is a core or a product of cores). A GEMM event (m, n, k) below is an (m x k)·(k x n) product,
2mnk FLOPs, as in :class:`tqpinn.qops.GemmEvent`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tqpinn.errors import UserError
from tqpinn.nn.tt.shapes import TTShape

PLAN_NAMES = ("sequential", "reconstruct", "partial")
MERGE_MODES = ("fp32", "quantized")


@dataclass(frozen=True)
class ContractionPlan:
    """A plan name, the sizes of its consecutive core groups (summing to the core count), and
    the precision of the merge GEMMs ("fp32" or "quantized")."""

    name: str
    groups: tuple[int, ...]
    merge: str = "fp32"

    def bounds(self) -> list[tuple[int, int]]:
        """Half-open core ranges [a, b) of the groups, first to last."""
        stops = [sum(self.groups[: i + 1]) for i in range(len(self.groups))]
        return list(zip([0, *stops[:-1]], stops, strict=True))

    @property
    def label(self) -> str:
        """Short name for tables: sequential, reconstruct, partial[2+2]; "+qmerge" marks
        quantized merges (only where the plan merges at all)."""
        name = self.name
        if name == "partial":
            name += "[" + "+".join(map(str, self.groups)) + "]"
        if self.merge == "quantized" and max(self.groups) > 1:
            name += "+qmerge"
        return name


def _even_split(n_cores: int, n_groups: int) -> tuple[int, ...]:
    """n_groups sizes differing by at most one, larger ones first."""
    q, r = divmod(n_cores, n_groups)
    return tuple(q + 1 if i < r else q for i in range(n_groups))


def make_plan(
    name: str,
    n_cores: int,
    groups: int | Sequence[int] | None = None,
    merge: str = "fp32",
) -> ContractionPlan:
    """Build a plan. ``groups`` only for ``partial``: a count (default 2) or explicit sizes."""
    if name not in PLAN_NAMES:
        raise UserError(f"unknown TT contraction plan {name!r}; choose from {list(PLAN_NAMES)}")
    if merge not in MERGE_MODES:
        raise UserError(f"unknown TT merge precision {merge!r}; choose from {list(MERGE_MODES)}")
    if name != "partial":
        if groups is not None:
            raise UserError(f"tt.groups applies to plan 'partial' only, not to {name!r}")
        sizes = (1,) * n_cores if name == "sequential" else (n_cores,)
        return ContractionPlan(name, sizes, merge)
    if groups is None:
        groups = min(2, n_cores)
    if isinstance(groups, int):
        if not 1 <= groups <= n_cores:
            raise UserError(f"tt.groups: {groups} groups for {n_cores} cores; choose 1..{n_cores}")
        return ContractionPlan(name, _even_split(n_cores, groups), merge)
    sizes = tuple(groups)
    if any(not isinstance(s, int) or s < 1 for s in sizes) or sum(sizes) != n_cores:
        raise UserError(
            f"tt.groups: sizes {list(sizes)} must be positive integers summing to the "
            f"{n_cores} cores"
        )
    return ContractionPlan(name, sizes, merge)


@dataclass(frozen=True)
class GemmShape:
    """One GEMM of a plan: an (m x k)·(k x n) product in phase forward, dgrad or wgrad.

    stage: "merge" (weights only) or "contract" (on the activation, scales with the batch).
    quantized: whether the GEMM runs under the layer's quantization spec (if it has one).
    """

    phase: str
    stage: str
    m: int
    n: int
    k: int
    quantized: bool = True

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k


@dataclass(frozen=True)
class PlanCost:
    """Cost of one forward and backward of a TT layer under a plan.

    gemms: every GEMM, merge stage once and contract stage once per input stream.
    activation_elems: batch-dependent elements the forward keeps for the backward (the activation
    operand of each contract GEMM, the input included; with recompute, the input alone); this
    is what a layer adds to a training step's peak memory, which is reached at the turn from
    forward to backward.
    weight_workspace_elems: elements of the merged cores (merge GEMM outputs), batch-independent.
    data_path_depth: GEMMs an input value goes through, i.e. how many times the activation is
    re-quantized on its way to the output (and the gradient on its way back).
    """

    gemms: tuple[GemmShape, ...]
    activation_elems: int
    weight_workspace_elems: int
    data_path_depth: int

    def count(self, phase: str) -> int:
        return sum(g.phase == phase for g in self.gemms)

    def flops(self, phase: str) -> int:
        return sum(g.flops for g in self.gemms if g.phase == phase)

    def quantized_operands(self, phase: str) -> int:
        """Tensors quantized in ``phase`` under a quantized spec: each quantized GEMM quantizes
        both of its operands."""
        return 2 * sum(g.phase == phase and g.quantized for g in self.gemms)


def _backward(fwd: GemmShape, input_grad: bool) -> list[GemmShape]:
    out = [GemmShape("wgrad", fwd.stage, fwd.n, fwd.k, fwd.m, fwd.quantized)]
    if input_grad:
        out.insert(0, GemmShape("dgrad", fwd.stage, fwd.m, fwd.k, fwd.n, fwd.quantized))
    return out


def plan_cost(
    shape: TTShape,
    plan: ContractionPlan,
    stream_rows: Sequence[int],
    input_requires_grad: bool = False,
    recompute: bool = False,
) -> PlanCost:
    """Cost of a forward + backward on streams of ``stream_rows`` input rows each.

    recompute: the layer keeps only its input and recomputes each later contract GEMM's input
    in backward (a quantized layer whose packing is deterministic, see
    :func:`tqpinn.qops.chained_gemm`): every contract GEMM but the last runs once more (phase
    "recompute"), and the activation kept is the input alone.

    One stream is a plain tensor call; (N, N·K, N·K) are the base, odd and even streams of a
    DiffQuant bundle, for which the layer merges the cores once and contracts each stream.
    """
    m_f, n_f, r = shape.out_factors, shape.in_factors, shape.ranks
    quantized_merges = plan.merge == "quantized"
    gemms: list[GemmShape] = []
    workspace = 0
    for a, b in plan.bounds():
        rows = r[a] * m_f[a] * n_f[a]
        for k in range(a + 1, b):
            fwd = GemmShape(
                "forward", "merge", rows, m_f[k] * n_f[k] * r[k + 1], r[k], quantized_merges
            )
            gemms += [fwd, *_backward(fwd, input_grad=True)]
            rows *= m_f[k] * n_f[k]
            workspace += fwd.m * fwd.n
    activation = 0
    for batch in stream_rows:
        for step, (a, b) in enumerate(reversed(plan.bounds())):
            m_g, n_g = math.prod(m_f[a:b]), math.prod(n_f[a:b])
            rows = batch * math.prod(m_f[b:]) * math.prod(n_f[:a])
            fwd = GemmShape("forward", "contract", rows, r[a] * m_g, n_g * r[b])
            gemms += [fwd, *_backward(fwd, input_grad=step > 0 or input_requires_grad)]
            if recompute and step < len(plan.groups) - 1:
                gemms.append(GemmShape("recompute", "contract", fwd.m, fwd.n, fwd.k))
            if step == 0 or not recompute:
                activation += fwd.m * fwd.k
    return PlanCost(tuple(gemms), activation, workspace, len(plan.groups))
