#!/usr/bin/env bash
# The paper budget at the recipes' own Stein pairs (512 for Poisson, 1024 for Heat and HJB) and
# steps (HJB: 10,000), on a CUDA machine: what the CPU could not train (docs/results.md, "Paper
# budget on the CPU"). Resumable: every stage is a `tqpinn reproduce` call that reuses finished
# runs and resumes interrupted ones, so run the same command again after an interruption or when
# the device time ran out; it goes on where it stopped. Stages, cheapest answer first:
#   1. the target rows (FP32-AD dense, FP32-SE dense, full pipeline, taylor pipeline), seed 0;
#   2. the same rows at seeds 0, 1, 2                      -> OUT/<problem>/results.json
#   3. every other variant at seed 0 (the ablation), seed-0 runs of stage 1 copied in
#                                                           -> OUT/ablation/<problem>/results.json
# usage: benchmarks/paper_budget_gpu.sh OUT [DEVICE] (DEVICE: cuda, the default, or cpu)
# Each results.json holds the machine, torch, date and budget; commit them as
# benchmarks/results/reproduce_paper_<problem>_<gpu>.json.
set -euo pipefail
out=${1:?usage: $0 OUT [cuda|cpu]}
device=${2:-cuda}
tqpinn=${TQPINN:-tqpinn}
problems=(poisson2d heat100d hjb20d)
core=fp32_ad_dense,fp32_se_dense,full_pipeline,full_pipeline_taylor
ablation=fp32_se_tt,smx_se_naive,smx_se_diffquant_dense,smx_se_diffquant_tt_seq,full_pipeline_mx,full_pipeline_stencil

reproduce() {  # problem, variants, seeds, out dir
    "$tqpinn" reproduce --budget paper --device "$device" --problems "$1" --variants "$2" \
        --seeds "$3" --timing-rounds 5 --out "$4"
}

for problem in "${problems[@]}"; do
    reproduce "$problem" "$core" 0 "$out/$problem"
done
for problem in "${problems[@]}"; do
    reproduce "$problem" "$core" 0,1,2 "$out/$problem"
done
for problem in "${problems[@]}"; do
    runs="$out/ablation/$problem/runs/$problem"
    for variant in ${core//,/ }; do
        if [[ -d "$out/$problem/runs/$problem/$variant/seed_0" && ! -e "$runs/$variant/seed_0" ]]; then
            mkdir -p "$runs/$variant"
            cp -r "$out/$problem/runs/$problem/$variant/seed_0" "$runs/$variant/"
        fi
    done
    reproduce "$problem" "$core,$ablation" 0 "$out/ablation/$problem"
done
