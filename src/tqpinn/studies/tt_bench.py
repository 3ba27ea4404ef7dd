"""Forward + backward time of a TT layer under each contraction plan against a dense layer.

All variants (dense and every plan, in every precision) are timed in one interleaved loop, so
that load from other processes hits them alike; the results are reported as ratios to the dense
FP32 layer measured in the same loop, with the load average before and after.
"""

from __future__ import annotations

import copy
import functools
import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from tqpinn.machine import load_average, machine_info
from tqpinn.nn.layer import GemmLayer, set_quant
from tqpinn.nn.linear import Linear
from tqpinn.nn.tt import TTLinear
from tqpinn.nn.tt.plans import plan_cost
from tqpinn.quant.spec import make_preset
from tqpinn.timing import interleaved

# The HJB-20D hidden layer of the prior TT-PINN (PAPER_NOTES.md §5): 512 = 4·4·4·8 -> 8·4·4·4.
DEFAULT_SHAPES = ((8, 4, 4, 4), (4, 4, 4, 8))
DEFAULT_PLANS = (("sequential", None), ("partial", 2), ("partial", [1, 3]), ("reconstruct", None))


def _fwd_bwd(layer: GemmLayer, x: torch.Tensor, grad_y: torch.Tensor) -> None:
    """One forward and backward (input and parameter gradients), from cleared gradients."""
    layer.zero_grad(set_to_none=True)
    x.grad = None
    layer(x).backward(grad_y)


def _layers(
    shapes: tuple[Sequence[int], Sequence[int]],
    ranks: int | Sequence[int],
    plans: Sequence[tuple[str, Any]],
    device: torch.device,
) -> dict[str, GemmLayer]:
    """The dense layer and one TT layer per plan, named by the plan's label."""
    out_f, in_f = (math.prod(s) for s in shapes)
    layers: dict[str, GemmLayer] = {"dense": Linear(in_f, out_f).to(device)}
    for plan, groups in plans:
        tt = TTLinear(in_f, out_f, ranks, shapes=shapes, plan=plan, groups=groups).to(device)
        layers[tt.plan.label] = tt
    return layers


def _per_precision(
    layers: dict[str, GemmLayer], quants: Sequence[str]
) -> dict[tuple[str, str], GemmLayer]:
    """One copy of every layer per precision (same weights), so that no spec changes inside the
    timed loop."""
    variants: dict[tuple[str, str], GemmLayer] = {}
    for quant in quants:
        for name, layer in layers.items():
            variants[(quant, name)] = copy.deepcopy(layer)
            set_quant(variants[(quant, name)], make_preset(quant))
    return variants


def _cost(layer: GemmLayer, n_rows: int) -> tuple[int, int]:
    """(FLOPs of a forward + backward at ``n_rows`` rows, parameters) of a dense or TT layer."""
    if isinstance(layer, TTLinear):
        cost = plan_cost(layer.shape, layer.plan, [n_rows], input_requires_grad=True)
        return sum(g.flops for g in cost.gemms), layer.n_params
    in_f, out_f = layer.in_features, layer.out_features
    return 6 * n_rows * in_f * out_f, in_f * out_f + out_f  # fwd, dgrad, wgrad: 2·rows·in·out each


def _time_rows(
    n_rows: int,
    layers: dict[str, GemmLayer],
    variants: dict[tuple[str, str], GemmLayer],
    baseline: tuple[str, str],
    repeats: int,
    warmup: int,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Every variant at ``n_rows`` rows, timed in one interleaved loop: one result row each."""
    sample = next(iter(layers.values()))
    gen = torch.Generator().manual_seed(n_rows)
    x = torch.randn(n_rows, sample.in_features, generator=gen).to(device).requires_grad_()
    grad_y = torch.randn(n_rows, sample.out_features, generator=gen).to(device)
    seconds = interleaved(
        {v: functools.partial(_fwd_bwd, layer, x, grad_y) for v, layer in variants.items()},
        repeats,
        warmup,
        device,
    )
    times = {v: [t * 1e3 for t in s] for v, s in seconds.items()}
    base = statistics.median(times[baseline])
    rows = []
    for (quant, name), ms in times.items():
        flops, n_params = _cost(layers[name], n_rows)
        rows.append(
            {
                "rows": n_rows,
                "quant": quant,
                "layer": name,
                "median_ms": statistics.median(ms),
                "times_ms": ms,
                "ratio_to_dense_fp32": statistics.median(ms) / base,
                "flops_fwd_bwd": flops,
                "n_params": n_params,
            }
        )
    return rows


def bench_tt(
    rows: Sequence[int] = (4096, 100_000),
    quants: Sequence[str] = ("fp32", "smx_paper"),
    plans: Sequence[tuple[str, Any]] = DEFAULT_PLANS,
    shapes: tuple[Sequence[int], Sequence[int]] = DEFAULT_SHAPES,
    ranks: int | Sequence[int] = 2,
    repeats: int = 5,
    warmup: int = 1,
    device: str = "cpu",
) -> dict[str, Any]:
    """Time dense vs TT (each plan) at each row count and precision; returns a JSON-ready dict.

    Every entry: median and all times in ms, the ratio of its median to the dense FP32 median at
    the same rows, the model's FLOPs of a forward + backward, and the parameter count.
    """
    dev = torch.device(device)
    layers = _layers(shapes, ranks, plans, dev)
    variants = _per_precision(layers, quants)
    load_before = load_average()
    results = [
        row
        for n_rows in rows
        for row in _time_rows(n_rows, layers, variants, (quants[0], "dense"), repeats, warmup, dev)
    ]
    out_f, in_f = (math.prod(s) for s in shapes)
    return {
        "benchmark": "tt_plans_fwd_bwd",
        "settings": {
            "in_features": in_f,
            "out_features": out_f,
            "shapes": [list(s) for s in shapes],
            "ranks": ranks,
            "rows": list(rows),
            "quants": list(quants),
            "repeats": repeats,
            "warmup": warmup,
            "baseline": f"dense {quants[0]} at the same rows, same interleaved loop",
        },
        "machine": machine_info(dev),
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
        "results": results,
    }
