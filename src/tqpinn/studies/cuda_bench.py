"""On a CUDA device: the compiled quantizer, a smoke run of each pipeline, CPU/device agreement,
step times of the quantization presets, and the Poisson-2D prior recipes to their targets.

Every section is independent: a failure is recorded (with its traceback) and the next section
runs; a callback sees the result after each section, so a caller can save a run cut short.

- ``quantizer``: the compiled quantizer (:mod:`tqpinn.quant.compiled`) against the reference on
  the device, per format: bit-equality of grid values, packed elements and exponents, and
  decoded values on a matrix with NaN, infinite, zero and subnormal blocks; the seconds of each
  first call (compilation); median seconds of each path, interleaved (on the CPU the compiled
  functions are Inductor's C++ and the fused C kernels are timed beside them).
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

import math
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tqpinn.devices import synchronize
from tqpinn.formats import FORMATS, BlockFormat, pack, quantize, unpack
from tqpinn.machine import machine_info
from tqpinn.quant import compiled, fastpath
from tqpinn.studies.reproduce.runner import step_times
from tqpinn.timing import interleaved, medians
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
QUANTIZER_FORMATS = ("smx_int8", "smx_int12", "mx_int8", "mx_int12")
SECTIONS = ("quantizer", "smoke", "agreement", "step_time", "recipes")
"""The sections of :func:`bench_cuda`, in the order they run: the short device checks first."""
RECIPE_KEYS = ("rel_l2", "rel_l1", "max_abs_err", "wall_seconds", "steps")


@dataclass(frozen=True)
class CudaCases:
    """The config files (under the configs folder) that each section runs."""

    quantizer_formats: tuple[str, ...] = QUANTIZER_FORMATS
    quantizer_shape: tuple[int, int] = (25_600, 256)
    smoke: Mapping[str, tuple[str, Sequence[str]]] = field(default_factory=lambda: SMOKE)
    agreement: str = "default.yaml"
    step_time_presets: tuple[str, ...] = ("poisson2d_fp32_se.yaml", "heat100d_fp32_se.yaml")
    step_time_fp32: tuple[str, ...] = ("poisson2d_fp32_ad.yaml", "heat100d_fp32_ad.yaml")
    recipes: tuple[str, ...] = ("poisson2d_fp32_ad.yaml", "poisson2d_fp32_se.yaml")


def _quantizer_input(shape: tuple[int, int], device: str) -> torch.Tensor:
    """Gaussian values spread over 2^±8, with a NaN, an infinity, a zero row segment and a
    subnormal one (edge blocks of every block shape)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g) * torch.exp2(torch.randint(-8, 9, shape, generator=g))
    half = shape[1] // 2
    x[0, 0], x[-1, -1] = math.nan, -math.inf
    x[shape[0] // 2, :half], x[-2, half:] = 0.0, 1e-40
    return x.to(device)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    width = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[a.element_size()]
    return a.dtype == b.dtype and torch.equal(a.view(width), b.view(width))


def _first_call_seconds(fn: Callable[[], object], device: str) -> float:
    start = time.perf_counter()
    fn()
    synchronize(torch.device(device))
    return time.perf_counter() - start


def quantizer_format(fmt: BlockFormat, x: torch.Tensor, rounds: int) -> dict[str, Any]:
    """Bit-equality, compile seconds and median seconds of the compiled quantizer of one format
    against the reference (and the C kernels where they take x)."""
    device = str(x.device)
    p_ref = pack(x, fmt)
    first = {
        "quantize": lambda: compiled.quantize_compiled(x, fmt),
        "pack": lambda: compiled.pack_compiled(x, fmt),
        "unpack": lambda: compiled.unpack_compiled(p_ref),
    }
    compile_s = {name: _first_call_seconds(fn, device) for name, fn in first.items()}
    p = compiled.pack_compiled(x, fmt)
    bit_identical = {
        "quantize": _same_bits(compiled.quantize_compiled(x, fmt), quantize(x, fmt)),
        "pack": _same_bits(p.elements, p_ref.elements) and _same_bits(p.exponents, p_ref.exponents),
        "unpack": _same_bits(compiled.unpack_compiled(p_ref), unpack(p_ref)),
    }
    variants = {
        "reference_quantize": lambda: quantize(x, fmt),
        "compiled_quantize": first["quantize"],
        "reference_pack": lambda: pack(x, fmt),
        "compiled_pack": first["pack"],
        "reference_unpack": lambda: unpack(p_ref),
        "compiled_unpack": first["unpack"],
    }
    if fastpath.can_quantize(x, fmt, "nearest_even"):
        variants["c_kernel_quantize"] = lambda: fastpath.quantize_matrix(x, fmt, False, False, True)
        variants["c_kernel_pack"] = lambda: fastpath.quantize_matrix(x, fmt)
        variants["c_kernel_unpack"] = lambda: fastpath.unpack_matrix(p_ref)
    median = medians(interleaved(variants, rounds, device=device))
    return {
        "bit_identical": bit_identical,
        "first_call_seconds": compile_s,
        "median_seconds": median,
        "reference_over_compiled": {
            op: median[f"reference_{op}"] / median[f"compiled_{op}"] for op in first
        },
    }


def quantizer(
    names: Sequence[str], shape: tuple[int, int], device: str, rounds: int
) -> dict[str, Any]:
    """:func:`quantizer_format` of each named format on a (rows, cols) matrix on ``device``."""
    x = _quantizer_input(shape, device)
    out: dict[str, Any] = {
        "shape": list(shape),
        "compiler": "inductor, triton" if x.device.type == "cuda" else "inductor, c++",
        "dispatch": compiled.describe(device),
        "cpu_quantizer": fastpath.describe()["quantizer"],
    }
    for name in names:
        out[name] = quantizer_format(FORMATS[name], x, rounds)
    return out


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
    only: Sequence[str] = (),
) -> dict[str, Any]:
    """Every section (or those named in ``only``) on ``device`` with the configs under
    ``configs``; a JSON-ready dict."""
    result: dict[str, Any] = {
        "settings": {"cuda": torch.version.cuda, "kernels": fastpath.describe()},
        "machine": machine_info(device),
    }
    sections: Sections = {
        "quantizer": lambda: quantizer(
            cases.quantizer_formats, cases.quantizer_shape, device, rounds
        ),
        "smoke": lambda: smoke(configs, cases.smoke, device, smoke_steps),
        "agreement": lambda: agreement(configs, cases.agreement, device, agreement_steps),
        "step_time": lambda: step_time(
            configs, cases.step_time_presets, cases.step_time_fp32, device, rounds
        ),
        "recipes": lambda: recipes(configs, cases.recipes, device, recipe_steps),
    }
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    chosen = {name: sections[name] for name in SECTIONS if not only or name in only}
    run_sections(chosen, result, on_section)
    return result
