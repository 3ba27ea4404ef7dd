"""model.tt in the config: which layers become TT, validation, and training with both estimators."""

import json
import math

import pytest

from tqpinn.errors import UserError
from tqpinn.nn import Linear
from tqpinn.nn.tt import TTLinear
from tqpinn.pdes import get_problem
from tqpinn.train import trainer
from tqpinn.train.build import build_model
from tqpinn.train.config import config_from_dict, load_config

HJB_TT = {
    "problem": {"name": "hjb", "options": {"dim": 20}},
    "model": {
        "widths": [512, 512],
        "activation": "sin",
        "tt": {
            "layers": [0, 1],
            "ranks": 2,
            "shapes": [[[8, 4, 4, 4], [1, 1, 3, 7]], [[8, 4, 4, 4], [4, 4, 4, 8]]],
        },
    },
}


def test_paper_hjb_tt_model_has_142x_fewer_parameters():
    config = config_from_dict(HJB_TT)
    problem = get_problem("hjb", dim=20)
    net = build_model(config, problem)
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [TTLinear, TTLinear, Linear]
    n_tt = sum(p.numel() for p in net.parameters())
    dense = config_from_dict({**HJB_TT, "model": {"widths": [512, 512], "activation": "sin"}})
    n_dense = sum(p.numel() for p in build_model(dense, problem).parameters())
    # (136 + 512) + (256 + 512) + 513 TT; 21·512 + 512 + 512·512 + 512 + 513 dense
    assert (n_tt, n_dense) == (1929, 274433)
    assert n_dense / n_tt > 100


SHIPPED = {
    "hjb20d_fp32_se.yaml": 274433,
    "hjb20d_fp32_se_tt.yaml": 1929,
    "hjb20d_smx_se_tt.yaml": 1929,
    # 2·256 + 256; 2 x rank-4 TT 256 = 8·8·4 x 4·8·8 (cores 1·8·4·4 + 4·8·8·4 + 4·4·8·1 = 1280,
    # bias 256); 256 + 1
    "poisson2d_smx_se_tt.yaml": 768 + 2 * (1280 + 256) + 257,
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_build(name, pytestconfig):
    config = load_config(pytestconfig.rootpath / "configs" / name)
    net = build_model(config, get_problem(config.problem.name, **config.problem.options))
    assert sum(p.numel() for p in net.parameters()) == SHIPPED[name]


@pytest.mark.parametrize(
    ("tt", "message"),
    [
        ({"layers": [3]}, r"model.tt.layers: \[3\] out of range; this model has layers 0..2"),
        ({"layers": [0, 0]}, "lists a layer twice"),
        ({"layers": [0, 1], "shapes": [None]}, "1 entries for the 2 TT layers"),
        ({"layers": [0], "plan": "partial", "groups": 9, "n_cores": 3}, "9 groups for 3 cores"),
    ],
)
def test_bad_tt_settings_are_user_errors(tt, message):
    data = json.loads(json.dumps(HJB_TT))
    data["model"]["tt"] = tt
    with pytest.raises(UserError, match=message):
        build_model(config_from_dict(data), get_problem("hjb", dim=20))


def test_unknown_tt_key_is_rejected():
    data = json.loads(json.dumps(HJB_TT))
    data["model"]["tt"]["rank"] = 2
    with pytest.raises(UserError, match=r"model\.tt\.rank"):
        config_from_dict(data)


@pytest.mark.parametrize(
    "estimator",
    [{"name": "autodiff"}, {"name": "stein", "sigma": 0.05, "pairs": 4, "diffquant": "full"}],
)
@pytest.mark.parametrize("plan", ["sequential", "partial", "reconstruct"])
def test_training_with_tt_layers_runs(tmp_path, estimator, plan):
    config = config_from_dict(
        {
            "seed": 1,
            "problem": {"name": "poisson", "options": {"dim": 2}},
            "model": {  # 3 cores: "partial" has a group to merge (2 + 1)
                "widths": [16, 16],
                "tt": {"layers": [1], "ranks": 2, "plan": plan, "n_cores": 3},
            },
            "estimator": estimator,
            "train": {
                "steps": 4,
                "eval_every": 4,
                "checkpoint_every": 4,
                "eval_points": 64,
                "points": {"interior": 8, "boundary": 8},
            },
        }
    )
    summary = trainer.train(config, tmp_path)
    # 2·16+16 + TT(16x16 over 3 cores, out 4·2·2 x in 2·2·4, ranks 1,2,2,1:
    # 1·4·2·2 + 2·2·2·2 + 2·2·4·1 = 48) + 16 + 17
    assert summary["n_params"] == 48 + 48 + 16 + 17
    assert math.isfinite(summary["rel_l2"])
