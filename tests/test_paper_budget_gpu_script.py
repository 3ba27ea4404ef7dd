"""benchmarks/paper_budget_gpu.sh: its stages, in order, and the seed-0 runs it hands on to the
ablation stage (a fake tqpinn records each call and makes the run directories a reproduce
would leave)."""

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_budget_gpu.sh"
CORE = "fp32_ad_dense,fp32_se_dense,full_pipeline,full_pipeline_taylor"

FAKE = """#!/usr/bin/env bash
# Record the call; make runs/<problem>/<variant>/seed_<s>/ under --out, as reproduce leaves them.
echo "$@" >> "$CALLS"
while [[ $# -gt 0 ]]; do
    case $1 in
        --problems) problem=$2; shift 2;; --variants) variants=$2; shift 2;;
        --seeds) seeds=$2; shift 2;; --out) out=$2; shift 2;; *) shift;;
    esac
done
for v in ${variants//,/ }; do for s in ${seeds//,/ }; do
    d="$out/runs/$problem/$v/seed_$s"
    [[ -e "$d" ]] || { mkdir -p "$d"; echo "$out" > "$d/made_by"; }
done; done
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_stages_run_in_order_and_the_ablation_reuses_the_seed_0_runs(tmp_path):
    fake = tmp_path / "tqpinn"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    calls, out = tmp_path / "calls.txt", tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "TQPINN": str(fake), "CALLS": str(calls)}
    result = subprocess.run(
        ["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    problems = ["poisson2d", "heat100d", "hjb20d"]
    stages = [(CORE, "0", ""), (CORE, "0,1,2", ""), (None, "0", "ablation/")]
    assert len(lines) == len(stages) * len(problems)
    for i, line in enumerate(lines):
        variants, seeds, sub = stages[i // 3]
        problem = problems[i % 3]
        args = line.split()
        assert args[:3] == ["reproduce", "--budget", "paper"]
        assert args[args.index("--device") + 1] == "cuda"
        assert args[args.index("--problems") + 1] == problem
        assert args[args.index("--seeds") + 1] == seeds
        assert args[args.index("--out") + 1] == str(out / f"{sub}{problem}")
        listed = args[args.index("--variants") + 1].split(",")
        assert listed[:4] == CORE.split(",")
        assert len(listed) == (4 if variants else 10)
    # The ablation stage found the core variants' seed-0 runs copied from stage 1, not retrained.
    for problem in problems:
        for variant in CORE.split(","):
            made = out / "ablation" / problem / "runs" / problem / variant / "seed_0" / "made_by"
            assert made.read_text().strip() == str(out / problem)
        smx = out / "ablation" / problem / "runs" / problem / "smx_se_naive" / "seed_0" / "made_by"
        assert smx.read_text().strip() == str(out / "ablation" / problem)


def test_without_an_output_directory_it_says_how_to_call_it():
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "usage:" in result.stderr
