"""``tqpinn reproduce``: the ablation table of every problem, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _split(values: list[str] | None) -> list[str] | None:
    """Repeated options and comma-separated lists alike: ["a,b", "c"] -> ["a", "b", "c"]."""
    if values is None:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _integer(text: str, option: str) -> int:
    """``text`` as an int, or a UserError (one line, exit code 2) naming ``option``."""
    from tqpinn.errors import UserError

    try:
        return int(text)
    except ValueError:
        raise UserError(f"{option} takes integers, got {text!r}") from None


def reproduce_command(
    out: Annotated[Path, typer.Option(help="Output directory (reused to resume).")],
    problems: Annotated[
        list[str] | None,
        typer.Option(help="Problems, comma-separated or repeated (default: all three)."),
    ] = None,
    budget: Annotated[
        str, typer.Option(help="quick (minutes) or paper (prior recipes).")
    ] = "quick",
    variants: Annotated[
        list[str] | None, typer.Option(help="Variant keys to run (default: all ten).")
    ] = None,
    timing_rounds: Annotated[int, typer.Option(help="Interleaved timed steps per variant.")] = 3,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    seeds: Annotated[
        list[str] | None,
        typer.Option(
            help="Seeds, comma-separated or repeated: every variant trains once per seed "
            "(default: the configs' own seed, one run)."
        ),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            metavar="N", help="Cap: train.steps of every variant (default: the recipe's)."
        ),
    ] = None,
    pairs: Annotated[
        str | None,
        typer.Option(
            metavar="K",
            help="Cap: Stein's pairs, in the Stein variants only (default: the recipe's).",
        ),
    ] = None,
) -> None:
    """Train every variant (FP32-AD dense ... full pipeline) of each problem, once per seed;
    write results.json, results.md and img/ into OUT. Finished runs are reused, interrupted
    ones resumed: run the same command again after an interruption."""
    from tqpinn.devices import check_device
    from tqpinn.errors import UserError
    from tqpinn.studies.reproduce import PROBLEMS, BudgetCap, reproduce

    check_device(device)
    if timing_rounds < 1:
        raise UserError(f"--timing-rounds must be >= 1, got {timing_rounds}")
    seed_list = _split(seeds)
    cap = BudgetCap(
        steps=None if steps is None else _integer(steps, "--steps"),
        pairs=None if pairs is None else _integer(pairs, "--pairs"),
    )
    results = reproduce(
        out,
        budget=budget,
        problems=_split(problems) or list(PROBLEMS),
        variants=_split(variants),
        timing_rounds=timing_rounds,
        device=device,
        seeds=None if seed_list is None else [_integer(s, "--seeds") for s in seed_list],
        cap=cap,
    )
    print(
        f"wrote {out / 'results.md'} and {out / 'results.json'} "
        f"({len(results['problems'])} problems)"
    )
