"""Training on a CUDA device: a smoke run of each pipeline, CPU/device agreement, step times of
the quantization presets, and the Poisson-2D prior recipes to their targets.

Every section is independent: a failure is recorded (with its traceback) and the next section
runs; a callback sees the result after each section, so a caller can save a run cut short.

- ``smoke``: each config trains a few steps on the device through ``tqpinn.train.train``
  (checkpoints, evaluation and plots included).
- ``agreement``: the default config (full SMX + Stein + DiffQuant + TT pipeline) and its FP32
  twin take the same steps on CPU and on the device; the relative difference of the parameters.
  The Stein directions come from the run's CPU generator on both devices, so the difference is
  the devices' arithmetic alone (quantization can turn a last-bit difference into one step).
- ``step_time``: median training-step time of fp32 (TF32 off), mx_int8, smx_paper, smx_paper
  with TF32 tensor cores for its products (``quant.tf32``) and that with the Stein directions
  drawn on the device (``estimator.directions``) on the Poisson-2D and Heat-100D Stein recipes,
  and of the autodiff recipes, interleaved round by round.
- ``recipes``: the Poisson-2D FP32 autodiff and Stein recipes, full budget, rel-L2 and wall time.

With ``device="cpu"`` every section runs on the CPU: a dry run of the benchmark.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tqpinn.machine import machine_info
from tqpinn.studies.reproduce.runner import step_times
from tqpinn.train.config import Config, load_config
from tqpinn.train.trainer import build_run, train, train_step

SMOKE: dict[str, tuple[str, tuple[str, ...]]] = {
    # label: (config file, overrides)
    "default (smx_paper, Stein, DiffQuant full, TT + PRS)": ("default.yaml", ()),
    "poisson2d_fp32_ad": ("poisson2d_fp32_ad.yaml", ()),
    "hjb20d_fp32_ad (hard constraint)": ("hjb20d_fp32_ad.yaml", ()),
    "heat100d_fp32_se, quant=mx_int8": ("heat100d_fp32_se.yaml", ("quant=mx_int8",)),
    "hjb20d_smx_se_tt": ("hjb20d_smx_se_tt.yaml", ()),
    "poisson2d_fp32_se, value=smoothed": (
        "poisson2d_fp32_se.yaml",
        ("estimator.value=smoothed", "train.eval_points=2000"),
    ),
}
SMX_TF32 = "quant={base: smx_paper, tf32: true}"
STEP_VARIANTS: dict[str, tuple[str, ...]] = {
    # label: overrides of a Stein recipe; fp32 first (the reference of the ratios, TF32 off)
    "fp32": ("quant=fp32",),
    "mx_int8": ("quant=mx_int8",),
    "smx_paper": ("quant=smx_paper",),
    "smx_paper_tf32": (SMX_TF32,),
    "smx_paper_tf32_device_directions": (SMX_TF32, "estimator.directions=device"),
}
AGREEMENT_QUANTS = ("smx_paper", "fp32")
RECIPE_KEYS = ("rel_l2", "rel_l1", "max_abs_err", "wall_seconds", "steps")


@dataclass(frozen=True)
class CudaCases:
    """The config files (under the configs folder) that each section runs."""

    smoke: Mapping[str, tuple[str, Sequence[str]]] = field(default_factory=lambda: SMOKE)
    agreement: str = "default.yaml"
    step_time_presets: tuple[str, ...] = ("poisson2d_fp32_se.yaml", "heat100d_fp32_se.yaml")
    step_time_fp32: tuple[str, ...] = ("poisson2d_fp32_ad.yaml", "heat100d_fp32_ad.yaml")
    recipes: tuple[str, ...] = ("poisson2d_fp32_ad.yaml", "poisson2d_fp32_se.yaml")


def smoke(
    configs: Path, cases: Mapping[str, tuple[str, Sequence[str]]], device: str, steps: int
) -> dict[str, Any]:
    """rel-L2, wall time and the files written of ``steps`` training steps of each case."""
    out = {}
    for label, (name, overrides) in cases.items():
        extra = [
            f"train.steps={steps}",
            f"train.eval_every={steps}",
            f"train.checkpoint_every={steps}",
        ]
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(configs / name, [*overrides, *extra])
            summary = train(config, Path(tmp), device=device, progress_bar=False)
            written = sorted(p.name for p in Path(tmp).iterdir())
        out[label] = {
            "rel_l2": summary.get("rel_l2"),
            "wall_seconds": summary["wall_seconds"],
            "outputs": written,
        }
    return out


def agreement(configs: Path, name: str, device: str, steps: int) -> dict[str, Any]:
    """‖θ_cpu − θ_device‖ / ‖θ_cpu‖ of the parameters after ``steps`` steps, per preset."""
    out = {}
    for quant in AGREEMENT_QUANTS:
        cfg = load_config(configs / name, [f"quant={quant}"])
        params = {}
        for dev in ("cpu", device):
            run = build_run(cfg, dev)
            for step in range(steps):
                train_step(run, step)
            params[dev] = torch.cat([p.detach().cpu().flatten() for p in run.net.parameters()])
        diff = (params["cpu"] - params[device]).norm() / params["cpu"].norm()
        out[quant] = {"steps": steps, "relative_parameter_difference": float(diff)}
    return out


def median_step_seconds(configs: dict[str, Config], device: str, rounds: int) -> dict[str, float]:
    """Interleaved step times (tqpinn.studies.reproduce.runner.step_times, uncached here)."""
    with tempfile.TemporaryDirectory() as tmp:
        timing = step_times(configs, Path(tmp) / "timing.json", rounds, lambda _: None, device)
    return timing["seconds"]


def step_time(
    configs: Path,
    with_presets: Sequence[str],
    fp32_only: Sequence[str],
    device: str,
    rounds: int,
) -> dict[str, Any]:
    """Median step seconds of each of :data:`STEP_VARIANTS` and their ratios to FP32 for
    ``with_presets``; of FP32 alone for ``fp32_only``."""
    out: dict[str, Any] = {}
    for name in with_presets:
        variants = {k: load_config(configs / name, list(o)) for k, o in STEP_VARIANTS.items()}
        median = median_step_seconds(variants, device, rounds)
        out[name] = {
            **{f"{k}_step_s": median[k] for k in STEP_VARIANTS},
            **{f"{k}_over_fp32": median[k] / median["fp32"] for k in STEP_VARIANTS if k != "fp32"},
        }
    for name in fp32_only:
        seconds = median_step_seconds({"fp32": load_config(configs / name)}, device, rounds)
        out[name] = {"fp32_step_s": seconds["fp32"]}
    return out


def recipes(configs: Path, names: Sequence[str], device: str, steps: int) -> dict[str, Any]:
    """The final metrics of each recipe trained ``steps`` steps."""
    out = {}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(configs / name, [f"train.steps={steps}"])
            summary = train(config, Path(tmp), device=device, progress_bar=False)
        out[name] = {k: summary[k] for k in RECIPE_KEYS if k in summary}
    return out


Sections = Mapping[str, Callable[[], Any]]
OnSection = Callable[[str, dict[str, Any]], None]


def run_sections(sections: Sections, result: dict[str, Any], on_section: OnSection) -> None:
    """Run each section into ``result[name]`` (its traceback under "error" if it raised) with
    its seconds under ``<name>_seconds``; ``on_section(name, result)`` after each."""
    for name, section in sections.items():
        start = time.perf_counter()
        try:
            result[name] = section()
        except Exception:  # recorded, and the next section still runs
            result[name] = {"error": traceback.format_exc()}
        result[name + "_seconds"] = time.perf_counter() - start
        on_section(name, result)


def bench_cuda(
    configs: Path,
    device: str = "cuda",
    smoke_steps: int = 20,
    agreement_steps: int = 5,
    rounds: int = 10,
    recipe_steps: int = 1000,
    cases: CudaCases = CudaCases(),
    on_section: OnSection = lambda name, result: None,
) -> dict[str, Any]:
    """All four sections on ``device`` with the configs under ``configs``; a JSON-ready dict."""
    result: dict[str, Any] = {
        "settings": {"cuda": torch.version.cuda},
        "machine": machine_info(device),
    }
    sections: Sections = {
        "smoke": lambda: smoke(configs, cases.smoke, device, smoke_steps),
        "agreement": lambda: agreement(configs, cases.agreement, device, agreement_steps),
        "step_time": lambda: step_time(
            configs, cases.step_time_presets, cases.step_time_fp32, device, rounds
        ),
        "recipes": lambda: recipes(configs, cases.recipes, device, recipe_steps),
    }
    run_sections(sections, result, on_section)
    return result
