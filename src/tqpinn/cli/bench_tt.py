"""``tqpinn bench tt``: forward+backward time of each TT contraction plan vs a dense layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tqpinn.errors import UserError


def _ints(option: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{option} expects comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise UserError(f"{option} values must be ≥ 1, got {text!r}")
    return values


def bench_tt_command(
    out: Annotated[Path, typer.Option(help="JSON file to write.")],
    rows: Annotated[str, typer.Option(help="Batch rows, comma-separated.")] = "4096,100000",
    quant: Annotated[str, typer.Option(help="Quant presets, comma-separated.")] = "fp32,smx_paper",
    repeats: Annotated[int, typer.Option(help="Timed repeats per variant.")] = 5,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Time dense vs TT (sequential, PRS, reconstruct) fwd+bwd on the HJB 512x512 layer."""
    from tqpinn.devices import check_device
    from tqpinn.studies.tt_bench import bench_tt

    check_device(device)
    if repeats < 1:
        raise UserError(f"--repeats must be ≥ 1, got {repeats}")
    result = bench_tt(
        rows=_ints("--rows", rows), quants=quant.split(","), repeats=repeats, device=device
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for r in result["results"]:
        print(
            f"{r['rows']:>7} {r['quant']:<10} {r['layer']:<14} {r['median_ms']:9.2f} ms  "
            f"x{r['ratio_to_dense_fp32']:.2f} vs dense {result['settings']['quants'][0]}"
        )
