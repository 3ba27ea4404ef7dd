"""The reconstructed TT weight has the target variance, whatever the ranks and core count."""

import math

import pytest
import torch

from tqpinn.nn.tt import TTLinear
from tqpinn.nn.tt.init import INIT_VARIANCE, core_std

SEEDS = 400
Z = 5.0  # two-sided normal quantile: a correct init fails with probability ≈ 6e-7 per case

# (in, out, n_cores, ranks): 2 to 5 cores, ranks from 1 to the clipping limit
CASES = [
    (16, 16, 2, 1),
    (16, 16, 2, 16),
    (64, 64, 3, 4),
    (64, 64, 3, 32),
    (21, 64, 4, 2),
    (64, 48, 4, [3, 12, 5]),
    (32, 32, 5, 8),
]


# every case under the default scheme; the other schemes (a different target only) on two
RUNS = [("torch", c) for c in CASES] + [(s, c) for s in ("he", "xavier") for c in CASES[2:4]]


@pytest.fixture
def one_thread():
    # thousands of tiny reconstructions: threads only add synchronisation
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.filterwarnings("ignore:TT ranks")
@pytest.mark.parametrize(("scheme", "case"), RUNS, ids=str)
def test_reconstructed_weight_variance(scheme, case, one_thread):
    fan_in, fan_out, n_cores, ranks = case
    target = INIT_VARIANCE[scheme](fan_in, fan_out)
    # Statistic per seed: T = mean(W²)/target over the layer's true entries. The cores have mean
    # zero, so E[W_ij²] = Var(W_ij) and E[T] = 1 exactly if the init is right. Seeds are
    # independent, so by the CLT the mean of T over S seeds is within Z·s/√S of 1, s the sample
    # std of T. (A rank-blind init misses by a factor of R^(1/d)-powers: 2x to 400x here.)
    stats = []
    for seed in range(SEEDS):
        torch.manual_seed(seed)
        layer = TTLinear(fan_in, fan_out, ranks, n_cores=n_cores, init=scheme).double()
        stats.append(layer.dense_weight().square().mean().item() / target)
    t = torch.tensor(stats, dtype=torch.float64)
    half_width = Z * t.std().item() / math.sqrt(SEEDS)
    assert abs(t.mean().item() - 1.0) <= half_width, (t.mean().item(), half_width)
    assert half_width < 0.25  # the test has power: it rejects any init off by 1.25x or more


def test_core_std_formula():
    # Var(W) = R·s^(2d): ranks (1, 3, 5, 1), d = 3, R = 15
    s = core_std(0.3, (1, 3, 5, 1))
    assert 15 * s**6 == pytest.approx(0.3, rel=1e-12)
