"""`tqpinn bench tt`: every variant timed in one run, ratios against dense FP32, bad options."""

import json

import pytest

from cli_process import run_tqpinn
from tqpinn.studies.tt_bench import DEFAULT_PLANS, bench_tt


def test_bench_tt_reports_every_variant():
    result = bench_tt(rows=(32,), quants=("fp32", "smx_paper"), repeats=1, warmup=0)
    layers = {r["layer"] for r in result["results"]}
    assert layers == {"dense", "sequential", "partial[2+2]", "partial[1+3]", "reconstruct"}
    assert len(result["results"]) == 2 * (1 + len(DEFAULT_PLANS))
    base = next(r for r in result["results"] if (r["quant"], r["layer"]) == ("fp32", "dense"))
    assert base["ratio_to_dense_fp32"] == 1.0
    assert base["flops_fwd_bwd"] == 6 * 32 * 512 * 512
    # sequential: 4 contractions of (32·64 rows) x 8 x 8, each 3 GEMMs (fwd, dgrad, wgrad)
    seq = next(r for r in result["results"] if r["layer"] == "sequential")
    assert seq["flops_fwd_bwd"] == 4 * 3 * 2 * (32 * 64) * 8 * 8
    assert len(result["loadavg_before"]) == 3


def tqpinn(*args):
    return run_tqpinn(*args, timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "4k"], "--rows expects comma-separated integers, got '4k'"),
        (["--quant", "int4"], "unknown quant preset 'int4'; choose from"),
        (["--device", "tpu"], "--device must be 'cpu' or 'cuda'"),
    ],
)
def test_bench_tt_cli_user_errors_exit_2(tmp_path, args, message):
    result = tqpinn("bench", "tt", "--out", str(tmp_path / "b.json"), *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_bench_tt_cli_writes_json(tmp_path):
    out = tmp_path / "b.json"
    result = tqpinn("bench", "tt", "--out", str(out), "--rows", "16", "--quant", "fp32")
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["settings"]["rows"] == [16]
