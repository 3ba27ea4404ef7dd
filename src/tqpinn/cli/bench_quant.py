"""``tqpinn bench quant``: step time and saved bytes of fp32, mx_int8, smx_paper, SMX with DiffQuant
and the full pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tqpinn.errors import UserError


def bench_quant_command(
    out: Annotated[Path, typer.Option(help="JSON file to write.")],
    repeats: Annotated[int, typer.Option(help="Timed steps per preset and config.")] = 3,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="key=value override for every config, e.g. train.points..."),
    ] = None,
) -> None:
    """Time training steps (interleaved) and measure saved-for-backward bytes on the
    Poisson-2D and Heat-100D Stein recipes, for fp32, mx_int8 and smx_paper."""
    from tqpinn.studies.quant_bench import bench_quant

    if repeats < 1:
        raise UserError(f"--repeats must be ≥ 1, got {repeats}")
    result = bench_quant(overrides=set_ or [], repeats=repeats)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    kernels = result["settings"]["kernels"]
    print(f"quantizer: {kernels['quantizer']}; quantized GEMM: {kernels['quantized_gemm']}")
    for name, r in result["configs"].items():
        ratio = r["saved_ratio"]
        print(
            f"{name:<14} step fp32 {r['fp32_step_s']:.3f}s  mx x{r['mx_over_fp32']:.2f}  "
            f"smx x{r['smx_over_fp32']:.2f}  smx+diffquant x{r['smx_dq_over_fp32']:.2f}  "
            f"full pipeline x{r['full_over_fp32']:.2f} | saved smx/fp32 {ratio['smx_over_fp32']:.3f}  "
            f"smx/mx {ratio['smx_over_mx']:.3f}"
        )
