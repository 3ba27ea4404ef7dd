"""``tqpinn bench quant`` on tiny configs: the JSON contract and the memory ordering it shows."""

import json
import subprocess
import sys

import pytest
import torch

from tqpinn.formats import SMX_INT12, quantize
from tqpinn.quant import fastpath
from tqpinn.studies.quant_bench import Recipe, bench_quant, bf16_split, int12_products

TINY = [
    "model.widths=[96,96,96]",  # 96 = 6·4·4: three TT cores, so PRS (groups 2 + 1) is not sequential
    "estimator.pairs=4",
    "train.points.interior=8",
    "train.eval_points=64",
]


def test_json_keys_and_memory_ordering():
    result = bench_quant(
        configs={
            "poisson": Recipe("configs/poisson2d_fp32_se.yaml", "configs/poisson2d_smx_se_tt.yaml")
        },
        overrides=[*TINY, "train.points.boundary=8"],
        repeats=1,
        overhead_rows=256,
    )
    for key in ("fp32_step_s", "smx_step_s", "mx_step_s", "smx_over_fp32", "saved_bytes"):
        assert key in result
    saved = result["saved_bytes"]
    # Packed 8.5-bit copies against FP32 ones, and MX's second copy: strictly ordered.
    assert saved["smx_paper"] < saved["mx_int8"] < saved["fp32"]
    assert result["settings"]["loadavg_before"] and result["configs"]["poisson"]["rows_per_step"]
    poisson = result["configs"]["poisson"]
    for short in ("mx", "smx", "smx_dq", "full"):  # every variant against the same FP32 step
        ratio = poisson[f"{short}_over_fp32"]
        assert ratio == pytest.approx(poisson[f"{short}_step_s"] / poisson["fp32_step_s"])
    assert len(poisson["step_s"]["full_pipeline"]) == len(poisson["step_s"]["fp32"]) == 1
    assert result["settings"]["kernels"] == fastpath.describe()


@pytest.mark.slow  # two recipes x three presets: about a minute on a loaded 2-core machine
def test_cli_writes_the_json(tmp_path):
    out = tmp_path / "q.json"
    sets = [*TINY, "train.points.boundary=8"]
    cmd = [sys.executable, "-m", "tqpinn", "bench", "quant", "--out", str(out), "--repeats", "1"]
    for s in sets:
        cmd += ["--set", s]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert set(data["configs"]) == {"poisson2d_se", "heat100d_se"}
    assert "smx/mx" in done.stdout and "full pipeline x" in done.stdout


def test_bad_repeats_is_a_user_error(tmp_path):
    cmd = [sys.executable, "-m", "tqpinn", "bench", "quant", "--out", str(tmp_path / "q.json")]
    done = subprocess.run([*cmd, "--repeats", "0"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "--repeats" in done.stderr


def test_int12_split_is_exact_in_bfloat16():
    """An INT12 block value has at most 11 significant bits: rounded to bfloat16's 8 they leave
    a remainder of at most 4 bits, exact in bfloat16 too, so hi + lo is the value itself."""
    x = quantize(torch.randn(64, 64, generator=torch.Generator().manual_seed(0)), SMX_INT12)
    hi, lo = bf16_split(x)
    assert torch.equal(hi.float() + lo.float(), x)
    assert not torch.equal(hi.float(), x)  # the low part is needed


def test_int12_products_only_where_the_bf16_kernel_runs(monkeypatch):
    monkeypatch.setenv(fastpath.ENV_DISABLE, "1")
    assert int12_products(rows=64, width=16, repeats=1) == {"bf16_gemm": False}
