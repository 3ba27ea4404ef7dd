"""Golden curves: 20 seeded training steps of three recipes against stored losses and parameters.

A refactor that must not change numerics provably does not: each case trains through the public
entry point (config file -> ``train``), so the config files, the model, the estimator, the
quantized GEMMs and the optimizer are all on the path.

Tolerances (why these numbers survive a change of CPU). Between machines only the order of FP32
sums changes: AVX2, AVX-512 and the exact bfloat16 kernel of the fast path each reduce a dot
product of length K in another order, which moves its result by at most 2·γ_K·Σ|a_i·b_i|,
γ_K = K·u/(1 − K·u), u = 2⁻²⁴. The longest reduction of these runs is a weight gradient over
M ≈ 100·(2·64 + 1) ≈ 1.3e4 rows, so one reordered GEMM moves by at most ≈ 1.5e-3 relative in
the worst case and ≈ √M·u ≈ 7e-6 typically (rounding errors of random sign). Quantization turns
such a shift into the occasional flip of an element to the neighbouring grid point: a flip is one
step of its block, but it happens with probability (shift / step), so a mean over many elements
moves by the shift itself in expectation. Over T = 20 Adam steps the loss then moves by about
T·(typical shift) ≈ 1.4e-4 relative: ``LOSS_RTOL`` = 1e-3 covers it with the worst-case margin of
one reordered GEMM. Each Adam update is lr·m̂/(√v̂ + ε) with |m̂/√v̂| ≤ 1 for a gradient of steady
sign, so a parameter's path has length at most Σ_t lr_t; a relative shift r of the gradients moves
the final parameters by about r·Σ_t lr_t, and ``PARAM_RTOL`` of that path (1e-2 of it) bounds
them with room for the few components whose gradient sign is undecided (Adam's first steps move
those by lr whatever their size). Measured on an AVX512-BF16 machine (golden file recorded there with the
default build): the quantized GEMMs give the same bits on every path (block-scaled INT8 products
sum exactly in FP32 when the exponents of a row are close); the fused DiffQuant kernels evaluate
tanh with each build's vectorised libm, so the avx2 and baseline builds and the PyTorch reference
(TQPINN_NO_FAST=1) move the two DiffQuant cases by at most 1.4e-6 in loss and 5.7e-6 of the
parameter path; one thread instead of two moves them by 5.7e-6 of the path; the FP32 autodiff
case is bit-identical throughout. On one machine the runs are bit-identical; ``python tests/test_golden_curves.py
--check`` says so per case (and ``--update`` rewrites the goldens).

That the tolerances are tight enough to catch a real change is tested too: a 1% change of the
learning rate falls outside them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tqpinn.train.config import load_config
from tqpinn.train.schedule import learning_rate
from tqpinn.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden") / "curves.json"
STEPS = 20
LOSS_RTOL = 1e-3
PARAM_RTOL = 1e-2

SHORT_RUN = [
    f"train.steps={STEPS}",
    "train.log_every=1",
    f"train.eval_every={STEPS}",
    f"train.checkpoint_every={STEPS}",
    "train.eval_points=1000",
]
CASES: dict[str, tuple[str, list[str]]] = {
    # SMX + Stein + DiffQuant full + TT middle layer with PRS: what `make run` trains.
    "default_full_pipeline": ("configs/default.yaml", []),
    # FP32 autodiff Poisson-2D, the baseline every ratio is against.
    "poisson2d_fp32_autodiff": (
        "configs/poisson2d_fp32_ad.yaml",
        ["model.widths=[32, 32]", "train.points={interior: 64, boundary: 64}"],
    ),
    # SMX + DiffQuant full on a small heat problem (time derivative and Laplacian, dense layers).
    "heat10d_smx_diffquant": (
        "configs/heat100d_smx_se_tt.yaml",
        [
            "problem.options.dim=10",
            "model.widths=[32, 32]",
            "model.tt=null",
            "estimator.pairs=16",
            "train.points={interior: 16, initial: 16, boundary: 16}",
        ],
    ),
}


def run_case(name: str, out_dir: Path, extra: list[str] = ()) -> dict[str, Any]:
    """Train the case for STEPS steps in ``out_dir``: per-step losses, final error, parameters."""
    path, overrides = CASES[name]
    config = load_config(ROOT / path, [*overrides, *SHORT_RUN, *extra])
    summary = train(config, out_dir, progress_bar=False)
    lines = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    state = torch.load(
        next((out_dir / "checkpoints").glob("*.pt")), map_location="cpu", weights_only=True
    )
    params = {k: v.flatten().tolist() for k, v in state["model"].items()}
    return {
        "losses": [line["loss"] for line in lines],
        "rel_l2": summary["rel_l2"],
        "params": params,
        "lr_path": sum(
            learning_rate(config.train.lr, config.train.schedule, t, config.train.steps)
            for t in range(config.train.steps)
        ),
    }


def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def deviations(got: dict[str, Any], want: dict[str, Any]) -> tuple[float, float]:
    """(largest relative loss deviation, largest parameter deviation / the path length)."""
    loss = max(abs(a - b) / abs(b) for a, b in zip(got["losses"], want["losses"], strict=True))
    assert got["params"].keys() == want["params"].keys()
    param = max(
        (torch.tensor(got["params"][k]) - torch.tensor(want["params"][k])).abs().max().item()
        for k in want["params"]
    )
    return loss, param / want["lr_path"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_curve(name: str, tmp_path: Path) -> None:
    want = golden()[name]
    got = run_case(name, tmp_path)
    assert len(got["losses"]) == len(want["losses"]) == STEPS
    loss_dev, param_dev = deviations(got, want)
    assert loss_dev <= LOSS_RTOL, f"{name}: loss moved by {loss_dev:.3g} relative"
    assert param_dev <= PARAM_RTOL, f"{name}: parameters moved by {param_dev:.3g} of their path"


def test_golden_tolerance_catches_a_one_percent_change(tmp_path: Path) -> None:
    name = "poisson2d_fp32_autodiff"
    want = golden()[name]
    lr = load_config(ROOT / CASES[name][0]).train.lr
    got = run_case(name, tmp_path, [f"train.lr={lr * 1.01}"])
    loss_dev, param_dev = deviations(got, want)
    assert loss_dev > LOSS_RTOL or param_dev > PARAM_RTOL


def _main(argv: list[str]) -> None:
    import tempfile

    torch.set_float32_matmul_precision("highest")
    update = "--update" in argv
    stored = {} if update else golden()
    results = {}
    for name in sorted(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = run_case(name, Path(tmp))
        if not update:
            same = results[name] == stored[name]
            loss_dev, param_dev = deviations(results[name], stored[name])
            verdict = "bit-identical" if same else "differs"
            print(f"{name}: {verdict} (loss {loss_dev:.3g} rel, params {param_dev:.3g} of path)")
    if update:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    _main(sys.argv[1:])
