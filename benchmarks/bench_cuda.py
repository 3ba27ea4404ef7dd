"""Training on a CUDA device: a smoke run of each pipeline, CPU/CUDA agreement, step times of
the quantization presets, and the Poisson-2D prior recipes to their targets; writes JSON.

    python benchmarks/bench_cuda.py [--out benchmarks/results/bench_cuda.json] [--recipe-steps 1000]

(``--device cpu`` runs the same sections on the CPU: a dry run of the script itself.)

Every section is independent: a failure is recorded (with its traceback) and the next section
runs. The JSON is rewritten after each section, so a run cut short keeps what it finished.

- ``smoke``: each config trains a few steps on CUDA through ``tqpinn.train.train`` (checkpoints,
  evaluation and plots included).
- ``agreement``: the default config (full SMX + Stein + DiffQuant + TT pipeline) and its FP32
  twin take the same steps on CPU and on CUDA; the relative difference of the parameters.
  The Stein directions come from the run's CPU generator on both devices, so the difference is
  the devices' arithmetic alone (quantization can turn a last-bit difference into one step).
- ``step_time``: median training-step time of fp32, mx_int8 and smx_paper on the Poisson-2D and
  Heat-100D Stein recipes, and of the autodiff recipes, interleaved round by round.
- ``recipes``: the Poisson-2D FP32 autodiff and Stein recipes, full budget, rel-L2 and wall time.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from common import parser
from tqpinn.machine import machine_info
from tqpinn.studies.reproduce.runner import step_times
from tqpinn.train.config import Config, load_config
from tqpinn.train.trainer import build_run, train, train_step

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMOKE = {
    "default (smx_paper, Stein, DiffQuant full, TT + PRS)": ("default.yaml", []),
    "poisson2d_fp32_ad": ("poisson2d_fp32_ad.yaml", []),
    "hjb20d_fp32_ad (hard constraint)": ("hjb20d_fp32_ad.yaml", []),
    "heat100d_fp32_se, quant=mx_int8": ("heat100d_fp32_se.yaml", ["quant=mx_int8"]),
    "hjb20d_smx_se_tt": ("hjb20d_smx_se_tt.yaml", []),
    "poisson2d_fp32_se, value=smoothed": (
        "poisson2d_fp32_se.yaml",
        ["estimator.value=smoothed", "train.eval_points=2000"],
    ),
}
PRESETS = ("fp32", "mx_int8", "smx_paper")


def config(name: str, overrides: list[str]) -> Config:
    return load_config(CONFIGS / name, overrides)


def smoke(device: str, steps: int) -> dict[str, Any]:
    out = {}
    for label, (name, overrides) in SMOKE.items():
        extra = [
            f"train.steps={steps}",
            f"train.eval_every={steps}",
            f"train.checkpoint_every={steps}",
        ]
        with tempfile.TemporaryDirectory() as tmp:
            summary = train(
                config(name, [*overrides, *extra]), Path(tmp), device=device, progress_bar=False
            )
            written = sorted(p.name for p in Path(tmp).iterdir())
        out[label] = {
            "rel_l2": summary.get("rel_l2"),
            "wall_seconds": summary["wall_seconds"],
            "outputs": written,
        }
    return out


def agreement(device: str, steps: int) -> dict[str, Any]:
    out = {}
    for quant in ("smx_paper", "fp32"):
        cfg = config("default.yaml", [f"quant={quant}"])
        params = {}
        for dev in ("cpu", device):
            run = build_run(cfg, dev)
            for step in range(steps):
                train_step(run, step)
            params[dev] = torch.cat([p.detach().cpu().flatten() for p in run.net.parameters()])
        diff = (params["cpu"] - params[device]).norm() / params["cpu"].norm()
        out[quant] = {"steps": steps, "relative_parameter_difference": float(diff)}
    return out


def median_step_seconds(configs: dict[str, Any], device: str, rounds: int) -> dict[str, float]:
    """Interleaved step times (tqpinn.studies.reproduce.runner.step_times, uncached here)."""
    with tempfile.TemporaryDirectory() as tmp:
        timing = step_times(configs, Path(tmp) / "timing.json", rounds, lambda _: None, device)
    return timing["seconds"]


def step_time(device: str, rounds: int) -> dict[str, Any]:
    out = {}
    for name in ("poisson2d_fp32_se.yaml", "heat100d_fp32_se.yaml"):
        configs = {p: config(name, [f"quant={p}"]) for p in PRESETS}
        median = median_step_seconds(configs, device, rounds)
        out[name] = {
            **{f"{p}_step_s": median[p] for p in PRESETS},
            **{f"{p}_over_fp32": median[p] / median["fp32"] for p in PRESETS[1:]},
        }
    for name in ("poisson2d_fp32_ad.yaml", "heat100d_fp32_ad.yaml"):
        seconds = median_step_seconds({"fp32": config(name, [])}, device, rounds)
        out[name] = {"fp32_step_s": seconds["fp32"]}
    return out


def recipes(device: str, steps: int) -> dict[str, Any]:
    out = {}
    for name in ("poisson2d_fp32_ad.yaml", "poisson2d_fp32_se.yaml"):
        with tempfile.TemporaryDirectory() as tmp:
            summary = train(
                config(name, [f"train.steps={steps}"]), Path(tmp), device=device, progress_bar=False
            )
        out[name] = {
            k: summary[k]
            for k in ("rel_l2", "rel_l1", "max_abs_err", "wall_seconds", "steps")
            if k in summary
        }
    return out


def main() -> None:
    p = parser(__doc__, "bench_cuda.json")
    p.add_argument("--smoke-steps", type=int, default=20)
    p.add_argument("--agreement-steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--recipe-steps", type=int, default=1000)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = p.parse_args()
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_cuda.py: no CUDA device is available")
    result: dict[str, Any] = {
        "settings": {"cuda": torch.version.cuda},
        "machine": machine_info(device),
    }
    sections: dict[str, Callable[[], Any]] = {
        "smoke": lambda: smoke(device, args.smoke_steps),
        "agreement": lambda: agreement(device, args.agreement_steps),
        "step_time": lambda: step_time(device, args.rounds),
        "recipes": lambda: recipes(device, args.recipe_steps),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, section in sections.items():
        start = time.perf_counter()
        try:
            result[name] = section()
        except Exception:  # recorded, and the next section still runs
            result[name] = {"error": traceback.format_exc()}
        result[name + "_seconds"] = time.perf_counter() - start
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
