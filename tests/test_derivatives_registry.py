"""Contract of every registered estimator, and the errors of make_estimator."""

import pytest
import torch

from tqpinn.derivatives import DT, ESTIMATORS, GRAD, LAP, U, make_estimator
from tqpinn.errors import UserError
from tqpinn.nn import MLP


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("n_time", [0, 1])
def test_every_estimator_returns_requested_fields_with_graph(name, n_time):
    torch.manual_seed(0)
    net = MLP([3 + n_time, 8, 8, 1])
    x = torch.rand(5, 3 + n_time)
    needs = frozenset({U, GRAD, LAP} | ({DT} if n_time else set()))
    f = make_estimator(name).fields(net, x, needs, 3, torch.Generator().manual_seed(0))
    assert f.u.shape == f.lap.shape == (5,)
    assert f.grad.shape == (5, 3)
    assert (f.dt is None) == (n_time == 0)
    loss = f.lap.square().sum() + f.u.square().sum()
    loss.backward()
    assert all(p.grad is not None for p in net.layers[0].parameters())
    # The default value of every estimator is the network's own value at x.
    torch.testing.assert_close(f.u, net(x)[:, 0])


def test_unknown_estimator_lists_the_choices():
    with pytest.raises(
        UserError, match=r"unknown estimator 'stien'.*\['autodiff', 'stein', 'stencil', 'taylor'\]"
    ):
        make_estimator("stien")


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(UserError, match=r"\['sigmaa'\].*'stein'.*'pairs'.*'sigma'"):
        make_estimator("stein", sigmaa=0.1)
    with pytest.raises(UserError, match=r"\['sigma'\].*'autodiff'.*'directions_per_pass'"):
        make_estimator("autodiff", sigma=0.1)
    with pytest.raises(UserError, match=r"\['h'\].*'taylor'.*valid options: \[\]"):
        make_estimator("taylor", h=0.1)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("stein", {"sigma": 0.0}, r"'sigma' must be a finite number > 0, got 0.0"),
        ("stein", {"sigma": -0.01}, r"'sigma'.*got -0.01"),
        ("stein", {"sigma": float("nan")}, r"'sigma'.*got nan"),
        ("stein", {"sigma": float("inf")}, r"'sigma'.*got inf"),
        ("stein", {"sigma": "0.01"}, r"'sigma'.*got '0.01'"),
        ("stein", {"sigma": True}, r"'sigma'.*got True"),
        ("stein", {"pairs": 0}, r"'pairs' must be an integer >= 1, got 0"),
        ("stein", {"pairs": 1.5}, r"'pairs'.*got 1.5"),
        ("stein", {"pairs": True}, r"'pairs'.*got True"),
        ("stein", {"value": "mean"}, r"'value' must be one of \['center', 'smoothed'\]"),
        ("stein", {"diffquant": "on"}, r"'diffquant'.*\['full', 'input', 'off'\]"),
        ("autodiff", {"directions_per_pass": 0}, r"'directions_per_pass'.*>= 1, got 0"),
        ("stencil", {"h": 0.0}, r"'h' must be a finite number > 0, got 0.0"),
        ("stencil", {"h": float("nan")}, r"'h'.*got nan"),
        ("stencil", {"diffquant": "on"}, r"'diffquant'.*\['full', 'input', 'off'\]"),
    ],
)
def test_bad_option_values_name_the_option(name, options, message):
    with pytest.raises(UserError, match=message):
        make_estimator(name, **options)


def test_valid_options_are_applied():
    est = make_estimator("stein", sigma=1, pairs=3, value="smoothed", diffquant="full")
    assert (est.sigma, est.pairs, est.value, est.diffquant) == (1.0, 3, "smoothed", "full")
    assert isinstance(est.sigma, float)
    assert make_estimator("autodiff", directions_per_pass=4).directions_per_pass == 4
    stencil = make_estimator("stencil", h=1, diffquant="full")
    assert (stencil.h, stencil.diffquant) == (1.0, "full") and isinstance(stencil.h, float)
