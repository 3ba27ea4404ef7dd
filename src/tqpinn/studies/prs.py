"""The PRS experiment at layer level: quantization error of each contraction plan vs FP32.

For one TT layer (fixed cores), the same input and the same output gradient, every plan is run
in FP32 and under a quantization spec; the relative errors ‖q − f‖/‖f‖ of the output, the input
gradient and the core gradients (all cores flattened together) measure what the plan's
quantization points cost. With FP32 merges, "reconstruct" is the floor: one quantized GEMM of
the quantized input and the quantized exact weight.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tqpinn.nn.layer import set_quant
from tqpinn.nn.tt import TTLinear
from tqpinn.nn.tt.plans import make_plan
from tqpinn.quant.spec import make_preset


@dataclass(frozen=True)
class LayerCase:
    """A layer of one of the paper's problems; input: "unit" U(0,1) coordinates (an input layer)
    or "tanh" / "sin" of N(0, 1) pre-activations (a hidden layer)."""

    name: str
    in_features: int
    out_features: int
    ranks: int
    shapes: tuple[tuple[int, ...], tuple[int, ...]] | None
    n_cores: int | None
    inputs: str


PAPER_CASES = (
    LayerCase("hjb20d_in", 21, 512, 2, ((8, 4, 4, 4), (1, 1, 3, 7)), None, "unit"),
    LayerCase("hjb20d_hidden", 512, 512, 2, ((8, 4, 4, 4), (4, 4, 4, 8)), None, "sin"),
    LayerCase("poisson2d_hidden", 256, 256, 4, None, 4, "tanh"),
    LayerCase("heat100d_in", 101, 256, 4, None, 3, "unit"),
)


def compositions(n: int) -> Iterator[tuple[int, ...]]:
    """Every way to split n cores into consecutive non-empty groups (2^(n−1) of them)."""
    if n == 0:
        yield ()
        return
    for first in range(1, n + 1):
        for rest in compositions(n - first):
            yield (first, *rest)


def all_plans(n_cores: int) -> list[tuple[str, Any]]:
    """sequential, every partial grouping with 2..d−1 groups, reconstruct."""
    plans: list[tuple[str, Any]] = [("sequential", None)]
    plans += [("partial", list(g)) for g in compositions(n_cores) if 1 < len(g) < n_cores]
    return [*plans, ("reconstruct", None)]


def _inputs(case: LayerCase, rows: int, gen: torch.Generator) -> torch.Tensor:
    if case.inputs == "unit":
        return torch.rand(rows, case.in_features, generator=gen)
    pre = torch.randn(rows, case.in_features, generator=gen)
    return torch.tanh(pre) if case.inputs == "tanh" else torch.sin(pre)


def _run(layer: TTLinear, x: torch.Tensor, grad_y: torch.Tensor) -> dict[str, torch.Tensor]:
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    y = layer(x)
    y.backward(grad_y)
    return {
        "output": y.detach(),
        "grad_input": x.grad,
        "grad_cores": torch.cat([p.grad.flatten() for p in layer.cores]),
    }


def _rel(q: torch.Tensor, f: torch.Tensor) -> float:
    return float((q.double() - f.double()).norm() / f.double().norm())


def layer_errors(
    case: LayerCase, spec: object, rows: int = 4096, seeds: int = 3, merge: str = "fp32"
) -> list[dict[str, Any]]:
    """Relative errors (quantized vs FP32) per plan and seed; ``merge``: precision of the plans'
    core merges (see :mod:`tqpinn.nn.tt.plans`)."""
    out = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        layer = TTLinear(case.in_features, case.out_features, case.ranks, case.shapes, case.n_cores)
        gen = torch.Generator().manual_seed(1000 + seed)
        x = _inputs(case, rows, gen)
        grad_y = torch.randn(rows, case.out_features, generator=gen)
        for plan, groups in all_plans(layer.shape.n_cores):
            layer.plan = make_plan(plan, layer.shape.n_cores, groups, merge)
            set_quant(layer, None)
            ref = _run(layer, x, grad_y)
            set_quant(layer, spec)
            quant = _run(layer, x, grad_y)
            out.append(
                {
                    "case": case.name,
                    "plan": layer.plan.label,
                    "data_path_depth": len(layer.plan.groups),
                    "seed": seed,
                    **{f"rel_err_{k}": _rel(quant[k], ref[k]) for k in ref},
                }
            )
    return out


MERGES = ("fp32", "quantized")
ERROR_KEYS = ("rel_err_output", "rel_err_grad_input", "rel_err_grad_cores")


def paper_layer_errors(
    quant: str = "smx_paper",
    rows: int = 4096,
    seeds: int = 3,
    cases: Sequence[LayerCase] = PAPER_CASES,
    log: Callable[[str], None] = lambda line: None,
) -> list[dict[str, Any]]:
    """:func:`layer_errors` of every case under the preset ``quant``, with FP32 and with
    quantized merges (each row tagged with its ``merge``); ``log`` gets a line per case."""
    spec = make_preset(quant)
    out = []
    for merge in MERGES:
        for case in cases:
            out += [
                {"merge": merge, **r}
                for r in layer_errors(case, spec, rows=rows, seeds=seeds, merge=merge)
            ]
            log(f"layer errors: {case.name}, merge {merge}")
    return out


def summarize_layer_errors(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation (0 for one seed) over seeds per (merge, case, plan)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["merge"], r["case"], r["plan"], r["data_path_depth"]), []).append(r)
    out = []
    for (merge, case, plan, depth), rs in groups.items():
        entry: dict[str, Any] = {
            "merge": merge,
            "case": case,
            "plan": plan,
            "data_path_depth": depth,
        }
        for k in ERROR_KEYS:
            vals = [r[k] for r in rs]
            entry[k] = statistics.mean(vals)
            entry[k + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(entry)
    return out
