"""`tqpinn hw` costs the reproduce rows "Full pipeline, taylor" and "Full pipeline, stencil"."""

from collections import Counter
from pathlib import Path

import pytest
import yaml

from tqpinn.hw.hardware import load_hardware
from tqpinn.hw.report import cost_config
from tqpinn.studies.reproduce import variant_configs
from tqpinn.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

WIDTHS = [2, 8, 8, 1]
"""Poisson 2-D: 2 inputs, two hidden layers of 8 (the second one TT), one output."""

INTERIOR, BOUNDARY = 6, 5
"""Points per condition, different so that the rows of each condition's products are told apart."""

COLUMNS = 2
"""Input columns whose derivatives the Poisson residual needs: Δu = ∂²u/∂x₁² + ∂²u/∂x₂²."""

STREAM_ROWS = {
    # value, first-order terms of the C columns, the collapsed second-order term
    "full_pipeline_taylor": [INTERIOR, INTERIOR * COLUMNS, INTERIOR],
    # base, odd and even differences of the C pairs x ± h e_i
    "full_pipeline_stencil": [INTERIOR, INTERIOR * COLUMNS, INTERIOR * COLUMNS],
}
"""Rows of each stream's operand in one interior forward pass, per row."""


def tiny_row_config(directory: Path, key: str) -> Path:
    """The reproduce row ``key`` made from a tiny quick Poisson pipeline, written as a config file:
    the middle layer TT of 2 cores reconstructed whole by PRS (one group)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = load_config(CONFIGS / "poisson2d_quick.yaml").to_dict()
    data["model"]["widths"] = WIDTHS[1:-1]
    data["model"]["tt"] = {**data["model"]["tt"], "ranks": 2, "shapes": [[[2, 4], [2, 4]]]}
    data["model"]["tt"]["groups"] = 1
    data["train"]["points"] = {"interior": INTERIOR, "boundary": BOUNDARY}
    data["estimator"]["pairs"] = 4
    (directory / "poisson2d_quick.yaml").write_text(yaml.safe_dump(data))
    config = variant_configs("quick", "poisson2d", configs_dir=directory)[key]
    path = directory / f"{key}.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    return path


@pytest.mark.parametrize("key", list(STREAM_ROWS))
def test_an_estimator_row_step_is_traced_per_stream_and_costed(tmp_path, key):
    path = tiny_row_config(tmp_path, key)
    result, trace, report = cost_config(path, [], load_hardware(None), measure=False)
    assert trace.meta["estimator"] == load_config(path).estimator.model_dump()
    assert trace.meta["quant"] == "smx_paper"
    assert not [g for g in trace.unrouted_gemms if g.kind == "layer"]

    # Each layer maps every stream of the interior bundle as its own product, and the boundary
    # values (u only: no streams) once. The TT layer's core merge is a product of other shapes.
    layers = list(zip(WIDTHS[1:], WIDTHS[:-1], strict=True))  # (out, in) = (n, k)
    forward = [g for g in trace.gemms if g.phase == "forward" and (g.n, g.k) in layers]
    expected = Counter((rows, n, k) for n, k in layers for rows in [*STREAM_ROWS[key], BOUNDARY])
    assert Counter((g.m, g.n, g.k) for g in forward) == expected
    # smx_paper: every stream's product multiplies INT8 blocks with their own scales.
    assert {(g.a_format, g.b_format, g.block) for g in forward} == {
        ("smx_int8", "smx_int8", (4, 4))
    }

    step = result["pinta"]["step"]
    assert step["energy_j"] > 0 and step["seconds"] > 0
    assert step["macs_by_mode"]["int8xint8"] == sum(
        g.macs for g in trace.gemms if (g.a_format, g.b_format) == ("smx_int8", "smx_int8")
    )
    assert report.seconds == step["seconds"]
