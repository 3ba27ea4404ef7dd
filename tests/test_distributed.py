"""Data parallelism: W ranks with a global batch of N points equal one process with N points.

Tolerance (used throughout). Sharding changes nothing but the order in which per-row terms are
summed: the loss and every gradient entry are sums over R rows (R = the most rows any GEMM of a
step reduces over: N·(2K+1) for Stein, N·copies for autodiff). Two summation orders of FP32
terms differ by a random walk of about √R rounding steps of size u·|partial sum|, u = 2⁻²⁴
(Higham & Mary 2019: the probabilistic bound √R·u holds with high probability); a factor 4
covers the two orders and moderate cancellation. So the relative gradient gap is at most
    ρ = 4·√R·u  (≈ 1e-5 for R ≈ 1000),
whereas a sharding error is orders of magnitude larger: different perturbations per rank or
a mean of per-rank means with unequal shares change the gradient by O(1/N) to O(1), and a
quantized shard whose rows straddle a block boundary rescales whole blocks (≥ 1e-4, checked
below). Adam normalizes each entry, so an update inherits the relative gradient gap and
after n steps ‖θ_W − θ_1‖ ≤ n·ρ·‖θ_1 − θ_0‖ (the movement accumulates like the gaps).

The real multi-process check runs this file under ``torchrun`` (see ``__main__``): each case
goes through the real CLI entry on 2 gloo ranks.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tqpinn.cli import main
from tqpinn.errors import UserError
from tqpinn.quant import PRESETS
from tqpinn.train import trainer
from tqpinn.train.checkpoint import list_checkpoints, load_checkpoint
from tqpinn.train.config import config_from_dict
from tqpinn.train.distributed import Shard, shard_loss
from tqpinn.train.loss import pinn_loss

U = 2.0**-24


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models: one thread is fastest, and on a shared machine spinning OpenMP threads
    # slow every step down several times.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


PAIRS = 8
ESTIMATORS = {
    "autodiff": {"name": "autodiff"},
    "stein": {"name": "stein", "sigma": 0.05, "pairs": PAIRS},
    "stein-full": {"name": "stein", "sigma": 0.05, "pairs": PAIRS, "diffquant": "full"},
    "stein-input": {"name": "stein", "sigma": 0.05, "pairs": PAIRS, "diffquant": "input"},
}
BLOCK_ROWS = {"fp32": 1, "smx_paper": 4, "mx_int8": 32}
"""Rows of a block along the batch axis: a rank's share must be a multiple to see the same
blocks as one process (MX blocks run along the reduction axis, which for wgrad is the batch)."""


def config(estimator: str, quant: str, points: int, steps: int = 4) -> dict:
    return {
        "seed": 3,
        "problem": {"name": "poisson", "options": {"dim": 3}},  # 3-D: no solution plot to draw
        "model": {"widths": [16, 16]},
        "estimator": ESTIMATORS[estimator],
        "quant": quant,
        "train": {
            "steps": steps,
            "lr": 1e-3,
            "eval_every": steps,
            "log_every": 1,
            "checkpoint_every": 2,
            "eval_points": 200,
            "points": {"interior": points, "boundary": points},
        },
    }


def rho(estimator: str, points: int) -> float:
    """ρ = 4·√R·u with R the rows of the largest GEMM of a step (module docstring)."""
    rows = points * (2 * PAIRS + 1) if estimator.startswith("stein") else points * 2
    return 4 * math.sqrt(rows) * U


def global_and_shard_gradients(cfg: dict, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of one step in one process, and the sum of the W ranks' gradients, both
    from the same parameters and the same global batch."""
    run = trainer.build_run(config_from_dict(cfg))
    batch = trainer.sample_batch(run)
    after_sampling = run.generator.get_state()

    def gradient(loss_fn) -> torch.Tensor:
        run.generator.set_state(after_sampling)
        run.net.zero_grad()
        loss, _ = loss_fn()
        loss.backward()
        return torch.cat([p.grad.reshape(-1) for p in run.net.parameters()])

    args = (run.problem, run.net, run.estimator, run.conditions, batch)
    whole = gradient(lambda: pinn_loss(*args, run.generator))
    shards = sum(
        gradient(lambda r=r: shard_loss(Shard(r, world), *args, run.generator))
        for r in range(world)
    )
    return whole, shards


@pytest.mark.parametrize(("n", "world"), [(1, 1), (15, 2), (16, 2), (7, 3), (5, 5), (100, 7)])
def test_shares_partition_the_rows(n, world):
    shares = [range(n)[Shard(r, world).rows(n)] for r in range(world)]
    assert [i for s in shares for i in s] == list(range(n))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.mark.parametrize("quant", sorted(PRESETS))
@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_rank_gradients_sum_to_the_single_process_gradient(estimator, quant):
    # Shares aligned to the block rows: the same blocks, only the summation order differs.
    points, world = 4 * BLOCK_ROWS[quant], 2
    if quant == "fp32":
        points, world = 15, 2  # unequal shares 7 + 8: a mean of rank means would be off
    whole, shards = global_and_shard_gradients(config(estimator, quant, points), world)
    gap = float((shards - whole).norm() / whole.norm())
    assert gap <= rho(estimator, points), gap


def test_misaligned_quantized_shares_are_a_different_quantization():
    # Why the alignment above matters (docs/scaling.md): 15 points split 7 + 8 put rows of both
    # ranks into one 4-row SMX block of one process; per rank the block scales differ.
    whole, shards = global_and_shard_gradients(config("stein", "smx_paper", 15), 2)
    gap = float((shards - whole).norm() / whole.norm())
    assert gap > 10 * rho("stein", 15), gap


def test_more_ranks_than_points_is_a_user_error():
    cfg = config_from_dict(config("autodiff", "fp32", 3))
    with pytest.raises(UserError, match=r"train\.points\.interior.*4 ranks"):
        trainer.build_run(cfg, shard=Shard(0, 4))


# The real multi-process runs: every estimator mode and every quant preset at least once,
# shares aligned to the block rows of the preset; the fp32 autodiff case has unequal shares.
CASES = {
    "autodiff-fp32": ("autodiff", "fp32", 15),
    "stein-fp32": ("stein", "fp32", 16),
    "stein-full-smx": ("stein-full", "smx_paper", 16),
    "stein-input-mx": ("stein-input", "mx_int8", 64),
    "autodiff-mx": ("autodiff", "mx_int8", 64),
}
WORLD = 2


def run_cases_on_this_rank(root: Path) -> None:
    """Body of ``torchrun this_file ROOT``: every case through the real CLI entry."""
    for name, (estimator, quant, points) in CASES.items():
        # JSON is YAML. Each rank writes its own copy: a shared file truncated by one rank
        # while another reads it would be read as empty (refused as such).
        cfg_path = root / f"{name}.{os.environ.get('RANK', '0')}.json"
        cfg_path.write_text(json.dumps(config(estimator, quant, points)))
        sys.argv = ["tqpinn", "train", "--config", str(cfg_path), "--out", str(root / name)]
        try:
            main()
        except SystemExit as done:
            if done.code:
                raise


def final_params(run_dir: Path) -> torch.Tensor:
    state = load_checkpoint(list_checkpoints(run_dir)[-1])["model"]
    return torch.cat([v.reshape(-1) for v in state.values()])


def test_two_processes_equal_one_process(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *("--nproc-per-node", str(WORLD), __file__, str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Rank 0 alone prints the summary and writes the outputs.
    assert result.stdout.count('"n_params"') == len(CASES), result.stdout
    for name, (estimator, quant, points) in CASES.items():
        run_dir = tmp_path / name
        steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").open()]
        assert steps == [1, 2, 3, 4], name
        assert [p.name for p in list_checkpoints(run_dir)] == [
            "step_00000002.pt",
            "step_00000004.pt",
        ]
        cfg = config_from_dict(config(estimator, quant, points))
        single = trainer.train(cfg, tmp_path / f"{name}-single", progress_bar=False)
        initial = torch.cat(
            [p.detach().reshape(-1) for p in trainer.build_run(cfg).net.parameters()]
        )
        theta_1, theta_w = final_params(tmp_path / f"{name}-single"), final_params(run_dir)
        moved = float((theta_1 - initial).norm())
        gap = float((theta_w - theta_1).norm())
        assert gap <= cfg.train.steps * rho(estimator, points) * moved, (name, gap, moved)
        summary = json.loads((run_dir / "metrics.json").read_text())
        assert summary["rel_l2"] == pytest.approx(single["rel_l2"], rel=1e-4), name


if __name__ == "__main__":
    torch.set_float32_matmul_precision("highest")
    run_cases_on_this_rank(Path(sys.argv[1]))
