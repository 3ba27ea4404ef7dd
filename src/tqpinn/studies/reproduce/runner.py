"""Train the ablation runs through the library trainer, resumably, and measure each variant.

Layout under ``out``: ``runs/<problem>/<variant>/seed_<s>/`` holds one training run of seed
``s`` (the trainer's outputs, plus ``memory.json``); ``runs/<problem>/timing.json`` the
interleaved step times. A finished run (``metrics.json`` written for the same config) is reused,
an interrupted one (a checkpoint, no ``metrics.json``) continues with the trainer's resume,
bit-identically. A variant folder holding a run itself (the single-seed layout of earlier
versions) is refused, never read as some seed's run.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from tqpinn.errors import UserError
from tqpinn.machine import load_average, machine_info
from tqpinn.quant.memory import saved_bytes
from tqpinn.timing import interleaved, medians
from tqpinn.train.checkpoint import atomic_write_text, latest_checkpoint
from tqpinn.train.config import Config
from tqpinn.train.metrics import MetricsLog
from tqpinn.train.trainer import build_run, train, train_step

Log = Callable[[str], None]


def _saved_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


def train_or_reuse(
    config: Config, run_dir: Path, log: Log = print, device: str = "cpu"
) -> dict[str, Any]:
    """The summary of ``config``'s run in ``run_dir``: reused when finished, resumed from its
    newest checkpoint when interrupted, trained from scratch otherwise.

    A directory holding a run of another config is a UserError (never silently overwritten).
    """
    saved = _saved_config(run_dir)
    if saved is not None and saved != config.to_dict():
        raise UserError(
            f"{run_dir} holds a run of a different config; remove it or reproduce into "
            "another --out directory"
        )
    summary_path = run_dir / "metrics.json"
    if saved is not None and summary_path.is_file():
        log(f"  reuse   {run_dir} (seed {config.seed})")
        return json.loads(summary_path.read_text(encoding="utf-8"))
    resume = saved is not None and latest_checkpoint(run_dir) is not None
    log(f"  {'resume' if resume else 'train '}  {run_dir} (seed {config.seed})")
    # A run of this config killed before its first checkpoint starts again from scratch.
    restart = saved is not None and not resume
    return train(
        config, run_dir, resume=resume, device=device, progress_bar=False, overwrite=restart
    )


def seed_run_dir(variant_dir: Path, seed: int) -> Path:
    """The run directory of ``seed`` in a variant's folder."""
    return variant_dir / f"seed_{seed}"


def refuse_single_seed_layout(variant_dir: Path) -> None:
    """A UserError if ``variant_dir`` holds a run itself (the layout before seeds): its seed
    is only in its config, so it is not silently taken for one."""
    saved = _saved_config(variant_dir)
    if saved is not None:
        seed = saved.get("seed")
        raise UserError(
            f"{variant_dir} holds a run in the single-seed layout; move its contents into "
            f"{seed_run_dir(variant_dir, seed)} (its seed is {seed}) or reproduce into "
            "another --out directory"
        )


def error_history(run_dir: Path) -> list[tuple[int, float]]:
    """(step, rel_l2) of every evaluation logged in the run's metrics.jsonl."""
    records = MetricsLog.read(run_dir / "metrics.jsonl")
    return [(r["step"], r["rel_l2"]) for r in records if "rel_l2" in r]


def memory_of(config: Config, run_dir: Path) -> float:
    """Bytes one training step saves for backward (tqpinn.quant.memory), cached in the run."""
    path = run_dir / "memory.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))["saved_bytes"]
    run = build_run(config)
    total = saved_bytes(lambda: train_step(run, 0), run.net).total
    atomic_write_text(path, json.dumps({"saved_bytes": total}) + "\n")
    return total


def step_times(
    configs: dict[str, Config], path: Path, rounds: int, log: Log = print, device: str = "cpu"
) -> dict[str, Any]:
    """Seconds per training step of every config, measured interleaved (one step of each in
    turn, ``rounds`` times, after one warm-up step each) so that a change of machine load hits
    all alike; the median per config. Cached in ``path`` for the same configs, rounds and
    device."""
    plain = {key: config.to_dict() for key, config in configs.items()}
    if path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
        same = (cached["rounds"], cached.get("device", "cpu")) == (rounds, device)
        if same and cached.get("configs") == plain:
            return cached
    log(f"  timing  {len(configs)} variants x {rounds} rounds on {device}")
    runs = {key: build_run(config, device) for key, config in configs.items()}
    steps = {key: itertools.count() for key in runs}  # step 0 is the warm-up

    def step_of(key: str) -> Callable[[], object]:
        return lambda: train_step(runs[key], next(steps[key]))

    load_start = load_average()
    samples = interleaved({key: step_of(key) for key in runs}, rounds, 1, device)
    result = {
        "rounds": rounds,
        "device": device,
        "threads": torch.get_num_threads(),
        "loadavg_start": load_start,
        "loadavg_end": load_average(),
        "seconds": medians(samples),
        "samples": samples,
        "machine": machine_info(device),
        "configs": plain,
    }
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    return result


def validate_seeds(seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list if each is a distinct integer in [0, 2**63), else a UserError."""
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**63]
    if bad:
        raise UserError(f"seeds must be integers in [0, 2**63), got {bad}")
    if not seeds:
        raise UserError("no seeds given; give one or more, e.g. 0,1,2")
    repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if repeated:
        raise UserError(f"seeds {repeated} given more than once in {list(seeds)}; give each once")
    return list(seeds)


def validate_names(names: Sequence[str], valid: Sequence[str], what: str) -> list[str]:
    """``names`` if all are in ``valid`` (duplicates dropped, order kept), else a UserError."""
    bad = [n for n in names if n not in valid]
    if bad:
        raise UserError(f"unknown {what} {bad}; choose from {list(valid)}")
    if not names:
        raise UserError(f"no {what} given; choose from {list(valid)}")
    return list(dict.fromkeys(names))
