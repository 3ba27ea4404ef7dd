"""Initialisation of TT cores so that the reconstructed weight has a chosen variance.

Derivation. Draw every core entry independently with mean 0 and variance s_k² (core k). An entry
of W is a sum over the R = r_1·r_2···r_{d−1} rank paths (a_1..a_{d−1}) of
G_1[1, i_1, j_1, a_1] G_2[a_1, i_2, j_2, a_2] ··· G_d[a_{d−1}, i_d, j_d, 1].
Each product has mean 0 and variance Π_k s_k²; two different paths differ in some a_k, so they
share no factor there and are uncorrelated. Hence Var(W_ij) = R · Π_k s_k². With the same s for
every core, the target variance v needs s² = (v / R)^(1/d). (Distinct entries of W are
uncorrelated as well: they differ in some (i_k, j_k), i.e. in an independent core slice.)

Targets v are those of the dense layer being replaced, with the layer's true fan-in and fan-out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from tqpinn.errors import UserError

INIT_VARIANCE: dict[str, Callable[[int, int], float]] = {
    # torch.nn.Linear: U(−1/√fan_in, 1/√fan_in), variance (2a)²/12 = 1/(3 fan_in)
    "torch": lambda fan_in, fan_out: 1.0 / (3.0 * fan_in),
    # Glorot & Bengio (2010)
    "xavier": lambda fan_in, fan_out: 2.0 / (fan_in + fan_out),
    # He et al. (2015), fan-in mode
    "he": lambda fan_in, fan_out: 2.0 / fan_in,
}
"""Target variance of a weight entry, by scheme name: (fan_in, fan_out) -> variance."""


def target_variance(scheme: str, fan_in: int, fan_out: int) -> float:
    if scheme not in INIT_VARIANCE:
        raise UserError(f"unknown TT init {scheme!r}; choose from {sorted(INIT_VARIANCE)}")
    return INIT_VARIANCE[scheme](fan_in, fan_out)


def core_std(variance: float, ranks: Sequence[int]) -> float:
    """Std s of every core entry so that W has ``variance``; ranks (r_0..r_d) with r_0 = r_d = 1."""
    n_cores = len(ranks) - 1
    paths = math.prod(ranks)
    return (variance / paths) ** (1.0 / (2 * n_cores))


def init_cores_(
    cores: Sequence[torch.Tensor],
    variance: float,
    generator: torch.Generator | None = None,
) -> None:
    """Fill cores (r_{k−1}, m_k, n_k, r_k) in place with N(0, s²) entries, s = core_std."""
    ranks = [c.shape[0] for c in cores] + [cores[-1].shape[-1]]
    std = core_std(variance, ranks)
    with torch.no_grad():
        for core in cores:
            core.normal_(0.0, std, generator=generator)
