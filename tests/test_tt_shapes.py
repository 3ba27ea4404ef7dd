"""TT shapes: the balanced factorisation and padding rule, rank clipping, parameter counts."""

import itertools
import math

import pytest

from tqpinn.errors import UserError
from tqpinn.nn.tt import TTLinear
from tqpinn.nn.tt.shapes import factorize, max_ranks, tt_shape


def brute_balanced(n: int, d: int) -> tuple[int, int]:
    """(largest factor, Σ f²) of the most balanced d-factorisation of n, by enumeration."""
    best = None
    for fs in itertools.product(range(1, n + 1), repeat=d - 1):
        if n % math.prod(fs) == 0:
            cand = (*fs, n // math.prod(fs))
            key = (max(cand), sum(f * f for f in cand))
            best = key if best is None else min(best, key)
    return best


@pytest.mark.parametrize("d", [1, 2, 3])
def test_factorize_is_the_smallest_balanced_padding(d):
    for n in range(1, 130):
        factors = factorize(n, d)
        padded = math.prod(factors)
        bound = 2 * math.ceil(round(n ** (1 / d), 9))
        assert len(factors) == d and padded >= n
        assert list(factors) == sorted(factors, reverse=True)
        assert (max(factors), sum(f * f for f in factors)) == brute_balanced(padded, d)
        assert max(factors) <= bound
        # minimal: every size from n up to the padded one fails the rule
        assert all(brute_balanced(p, d)[0] > bound for p in range(n, padded))


def test_documented_examples():
    assert factorize(512, 4) == (8, 4, 4, 4)
    assert factorize(21, 4) == (3, 2, 2, 2)  # 21 = 7·3 has a factor 7 > 2·⌈21^¼⌉ = 6: pad to 24
    assert factorize(101, 3) == (7, 5, 3)  # 101 is prime: pad to 105
    shape = tt_shape(21, 512, 2, n_cores=4)
    assert shape.out_factors == (8, 4, 4, 4) and shape.in_factors == (2, 2, 2, 3)


def test_paper_hjb_layers_parameter_counts():
    # PAPER_NOTES §5: 21 = 1·1·3·7 -> 512 = 8·4·4·4 and 512 = 4·4·4·8 -> 8·4·4·4, rank 2.
    first = TTLinear(21, 512, 2, shapes=([8, 4, 4, 4], [1, 1, 3, 7]))
    second = TTLinear(512, 512, 2, shapes=([8, 4, 4, 4], [4, 4, 4, 8]))
    # cores: 8·1·2 + 2·4·1·2 + 2·4·3·2 + 2·4·7 = 136; 8·4·2 + 3·(2·4·4·2) = 256
    assert first.shape.n_core_params == 136 and second.shape.n_core_params == 256
    assert first.n_params == 136 + 512 and second.n_params == 256 + 512
    assert second.compression_ratio == pytest.approx(512 * 512 / 256)


def test_max_ranks_are_the_unfolding_sizes():
    # sizes m_k n_k = 2, 6, 4: bonds split 2 | 24 and 12 | 4
    assert max_ranks([1, 2, 4], [2, 3, 1]) == (2, 4)


def test_ranks_are_clipped_with_a_warning():
    with pytest.warns(UserWarning, match=r"clipped to \[4, 16, 4\]"):
        shape = tt_shape(16, 16, 100, n_cores=4)
    assert shape.ranks == (1, 4, 16, 4, 1)
    with pytest.warns(UserWarning, match=r"clipped to \[1, 4, 1\]"):
        assert tt_shape(16, 16, [1, 8, 1], n_cores=4).ranks == (1, 1, 4, 1, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ranks": [2, 2], "n_cores": 4}, "4 cores need 3 internal ranks"),
        ({"ranks": 0, "n_cores": 4}, "positive integers"),
        ({"ranks": 2, "shapes": ([8, 4, 4, 4], [1, 1, 3, 2])}, "fewer than the 21 features"),
        ({"ranks": 2, "shapes": ([8, 4, 4, 4], [1, 3, 7])}, "same length"),
        ({"ranks": 2, "shapes": ([8, 4, 4, 4], [1, 1, 3, 7]), "n_cores": 3}, "contradicts"),
    ],
)
def test_bad_shapes_name_the_key(kwargs, message):
    with pytest.raises(UserError, match=message):
        tt_shape(21, 512, **kwargs)
