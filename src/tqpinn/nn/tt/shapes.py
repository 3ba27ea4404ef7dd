"""Shapes of a TT-matrix: how in/out features factor over the cores, and the TT-ranks.

A weight W (M x N) with M = Π m_k and N = Π n_k is stored as d cores G_k of shape
(r_{k−1}, m_k, n_k, r_k), r_0 = r_d = 1, and
W[(i_1..i_d), (j_1..j_d)] = G_1[:, i_1, j_1, :] · G_2[:, i_2, j_2, :] ··· G_d[:, i_d, j_d, :]
with i_1 (j_1) the most significant digit of the row (column) index.

Automatic factorisation (the padding rule). For n features over d cores, let
b = 2·⌈n^(1/d)⌉. If the most balanced factorisation of n into d factors (1s allowed) has a factor
larger than b (n prime, such as 101, or 21 = 3·7 over 4 cores), n is padded to the smallest n' > n
whose balanced factorisation has all factors ≤ b. One always exists: ⌈n^(1/d)⌉^d ≥ n. Padded
input features are zeros appended to x, so they contribute nothing; padded output features are
computed and dropped. "Most balanced" means the smallest largest factor, then the smallest sum of
squares. Output factors are listed in non-increasing order and input factors in non-decreasing
order, so that a large m_k meets a small n_k and the core sizes m_k·n_k stay even.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from tqpinn.errors import UserError

# A balanced factorisation is only a pad away, so the search below stays short; this bounds it for
# absurd inputs (a 10^6-feature layer over 2 cores) rather than any realistic one.
_MAX_PAD_SEARCH = 100_000


@dataclass(frozen=True)
class TTShape:
    """Factorisation and ranks of a TT-matrix.

    out_factors (m_1..m_d), in_factors (n_1..n_d), ranks (r_0..r_d) with r_0 = r_d = 1.
    out_features / in_features are the layer's true sizes, at most Π m_k / Π n_k (the rest is
    padding).
    """

    out_features: int
    in_features: int
    out_factors: tuple[int, ...]
    in_factors: tuple[int, ...]
    ranks: tuple[int, ...]

    @property
    def n_cores(self) -> int:
        return len(self.out_factors)

    @property
    def out_padded(self) -> int:
        return math.prod(self.out_factors)

    @property
    def in_padded(self) -> int:
        return math.prod(self.in_factors)

    def core_shape(self, k: int) -> tuple[int, int, int, int]:
        """Shape (r_{k−1}, m_k, n_k, r_k) of core k (0-based)."""
        r = self.ranks
        return (r[k], self.out_factors[k], self.in_factors[k], r[k + 1])

    @property
    def n_core_params(self) -> int:
        return sum(math.prod(self.core_shape(k)) for k in range(self.n_cores))

    @property
    def compression_ratio(self) -> float:
        """Dense weight entries (out · in) per TT core parameter."""
        return self.out_features * self.in_features / self.n_core_params


def _divisors(n: int) -> list[int]:
    small = [f for f in range(1, math.isqrt(n) + 1) if n % f == 0]
    return sorted({*small, *(n // f for f in small)})


@cache
def _balanced(n: int, d: int) -> tuple[int, ...]:
    """Most balanced d factors of n (non-increasing): smallest max, then smallest Σ f²."""
    best: tuple[int, ...] | None = None

    def key(fs: tuple[int, ...]) -> tuple[int, int]:
        return (max(fs), sum(f * f for f in fs))

    def search(rest: int, slots: int, cap: int, acc: tuple[int, ...]) -> None:
        nonlocal best
        if slots == 1:
            if rest <= cap:
                cand = (*acc, rest)
                if best is None or key(cand) < key(best):
                    best = cand
            return
        # Factors in non-increasing order: the next one divides rest, is ≤ cap, and is at least
        # the slots-th root of rest (otherwise the remaining ones could not reach rest).
        low = max(1, math.ceil(round(rest ** (1.0 / slots), 9)))
        for f in _divisors(rest):
            if low <= f <= cap:
                search(rest // f, slots - 1, f, (*acc, f))

    search(n, d, n, ())
    assert best is not None  # n itself followed by 1s always qualifies
    return best


def _int_root_ceil(n: int, d: int) -> int:
    """⌈n^(1/d)⌉ in exact integer arithmetic."""
    r = max(1, round(n ** (1.0 / d)))
    while r**d < n:
        r += 1
    while r > 1 and (r - 1) ** d >= n:
        r -= 1
    return r


def factorize(n: int, d: int) -> tuple[int, ...]:
    """d factors (non-increasing) of n or of its padded size, by the module's padding rule."""
    if n < 1 or d < 1:
        raise UserError(f"cannot factor {n} features over {d} TT cores; both must be ≥ 1")
    bound = 2 * _int_root_ceil(n, d)
    for padded in range(n, n + _MAX_PAD_SEARCH):
        factors = _balanced(padded, d)
        if max(factors) <= bound:
            return factors
    raise UserError(f"no balanced factorisation of {n} features over {d} TT cores")


def default_n_cores(in_features: int, out_features: int) -> int:
    """Cores so that the factors are about 8: ⌈log_8 max(in, out)⌉, at least 2."""
    return max(2, math.ceil(math.log(max(in_features, out_features), 8) - 1e-9))


def max_ranks(out_factors: Sequence[int], in_factors: Sequence[int]) -> tuple[int, ...]:
    """Largest useful internal ranks r_1..r_{d−1}.

    Bond k splits W into a matrix (Π_{i≤k} m_i n_i) x (Π_{i>k} m_i n_i); its rank, and so the
    exact TT-rank, cannot exceed the smaller side.
    """
    sizes = [m * n for m, n in zip(out_factors, in_factors, strict=True)]
    return tuple(
        min(math.prod(sizes[: k + 1]), math.prod(sizes[k + 1 :])) for k in range(len(sizes) - 1)
    )


def clip_ranks(
    ranks: Sequence[int], out_factors: Sequence[int], in_factors: Sequence[int]
) -> tuple[int, ...]:
    """Internal ranks clipped to :func:`max_ranks` and to their neighbours.

    A core (r_{k−1}, m_k, n_k, r_k) with r_k > r_{k−1} m_k n_k (or r_{k−1} > m_k n_k r_k) has
    linearly dependent slices: the extra rank adds parameters, not expressiveness.
    """
    sizes = [m * n for m, n in zip(out_factors, in_factors, strict=True)]
    full = [
        1,
        *(min(r, m) for r, m in zip(ranks, max_ranks(out_factors, in_factors), strict=True)),
        1,
    ]
    for k in range(1, len(full) - 1):
        full[k] = min(full[k], full[k - 1] * sizes[k - 1])
    for k in range(len(full) - 2, 0, -1):
        full[k] = min(full[k], full[k + 1] * sizes[k])
    return tuple(full[1:-1])


def _check_factors(key: str, factors: Sequence[int], features: int) -> tuple[int, ...]:
    if not factors or any(not isinstance(f, int) or f < 1 for f in factors):
        raise UserError(f"{key}: factors must be positive integers, got {list(factors)}")
    if math.prod(factors) < features:
        raise UserError(
            f"{key}: factors {list(factors)} multiply to {math.prod(factors)}, fewer than the "
            f"{features} features (their product must be ≥ the features; the rest is padding)"
        )
    return tuple(factors)


def tt_shape(
    in_features: int,
    out_features: int,
    ranks: int | Sequence[int],
    shapes: tuple[Sequence[int], Sequence[int]] | None = None,
    n_cores: int | None = None,
) -> TTShape:
    """Resolve a layer's TT shape.

    shapes: (out factors, in factors) given explicitly (products ≥ the features), or None for the
    automatic rule with ``n_cores`` cores (default :func:`default_n_cores`). ranks: one rank for
    every bond or a list of d − 1; ranks above :func:`max_ranks` are clipped with a warning.
    """
    if shapes is not None:
        if len(shapes) != 2:
            raise UserError(
                f"tt.shapes: expected [out factors, in factors], got {len(shapes)} lists"
            )
        out_f = _check_factors("tt.shapes (out)", shapes[0], out_features)
        in_f = _check_factors("tt.shapes (in)", shapes[1], in_features)
        if len(out_f) != len(in_f):
            raise UserError(
                f"tt.shapes: out factors {list(out_f)} and in factors {list(in_f)} must have "
                "the same length (one pair per core)"
            )
        if n_cores is not None and n_cores != len(out_f):
            raise UserError(f"tt.n_cores={n_cores} contradicts tt.shapes with {len(out_f)} cores")
    else:
        d = default_n_cores(in_features, out_features) if n_cores is None else n_cores
        if d < 1:
            raise UserError(f"tt.n_cores must be ≥ 1, got {d}")
        out_f = factorize(out_features, d)
        in_f = tuple(reversed(factorize(in_features, d)))
    d = len(out_f)
    if isinstance(ranks, int):
        wanted = (ranks,) * (d - 1)
    else:
        wanted = tuple(ranks)
        if len(wanted) != d - 1:
            raise UserError(
                f"tt.ranks: {d} cores need {d - 1} internal ranks, got {len(wanted)}: "
                f"{list(wanted)} (or give one integer for all)"
            )
    if any(not isinstance(r, int) or r < 1 for r in wanted):
        raise UserError(f"tt.ranks must be positive integers, got {list(wanted)}")
    clipped = clip_ranks(wanted, out_f, in_f)
    if clipped != wanted:
        warnings.warn(
            f"TT ranks {list(wanted)} exceed the largest useful ranks for factors "
            f"{list(out_f)} x {list(in_f)} (at most {list(max_ranks(out_f, in_f))}, and "
            f"r_k ≤ r_(k−1)·m_k·n_k, r_k ≤ m_(k+1)·n_(k+1)·r_(k+1)); clipped to {list(clipped)}",
            stacklevel=2,
        )
    return TTShape(out_features, in_features, out_f, in_f, (1, *clipped, 1))
