"""Network outputs at N points and at perturbation pairs x ± δ: what Stein and the stencil share.

The two estimators differ only in their directions δ (Gaussian for Stein, h times the coordinate
axes for the stencil) and in how they weigh the differences; the network is evaluated here.

DiffQuant (docs/diffquant.md): a quantized GEMM that sees x + δ as a value rounds δ away when δ
is below the format's step. ``diffquant`` chooses how the perturbations reach the output:
"off" evaluates the stacked rows [x; x+δ; x−δ] as values; "full" hands the network a
:class:`~tqpinn.nn.streams.DifferenceStreams` bundle (base, odd, even) and carries it through
every layer (``net(bundle)``), each stream quantized with its own block scales; "input" carries
it through the first GEMM layer only and continues as values (an ablation).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from tqpinn.derivatives.base import Network, scalar_output
from tqpinn.derivatives.streamed import require_stream_module
from tqpinn.nn.streams import DifferenceStreams

OFF, INPUT, FULL = "off", "input", "full"
DIFFQUANT_MODES = (OFF, INPUT, FULL)


class Pairs(NamedTuple):
    """Network outputs at N centres and their K perturbation pairs.

    base: g(x) (N,), None when not evaluated; odd: g(x+δ_k) − g(x−δ_k) (N, K);
    even: g(x+δ_k) + g(x−δ_k) − 2g(x) (N, K), None without base.
    """

    base: torch.Tensor | None
    odd: torch.Tensor
    even: torch.Tensor | None


def evaluate_pairs(
    net: Network, x: torch.Tensor, delta: torch.Tensor, with_base: bool, diffquant: str
) -> Pairs:
    """g at x (N, D) and at x ± delta, delta (N, K, D), by the ``diffquant`` mode.

    With DiffQuant ("input", "full") the base is always evaluated (it is the centre stream).
    """
    n, k, dims = delta.shape
    if diffquant != OFF:
        net = require_stream_module(net, f"diffquant={diffquant!r}")
        depth = {} if diffquant == FULL else {"stream_layers": 1}
        s = net(DifferenceStreams.from_input(x, delta), **depth)
        return Pairs(s.base.reshape(n), s.odd.reshape(n, k), s.even.reshape(n, k))
    rows = [x] if with_base else []
    rows += [
        (x[:, None] + delta).reshape(n * k, dims),
        (x[:, None] - delta).reshape(n * k, dims),
    ]
    g = scalar_output(net(torch.cat(rows)), sum(r.shape[0] for r in rows))
    base = g[:n] if with_base else None
    g_plus, g_minus = g[-2 * n * k :].reshape(2, n, k)
    even = g_plus + g_minus - 2 * base[:, None] if with_base else None
    return Pairs(base, g_plus - g_minus, even)
