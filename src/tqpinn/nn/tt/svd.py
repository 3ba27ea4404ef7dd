"""TT-SVD: cores of a dense matrix, and the dense matrix of cores (a reference, no qops)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tqpinn.nn.tt.shapes import TTShape


def tt_to_dense(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """W (Π m_k, Π n_k) from cores (r_{k−1}, m_k, n_k, r_k), by plain einsum (a reference)."""
    acc = cores[0][0]  # (m_1, n_1, r_1)
    rows, cols = acc.shape[0], acc.shape[1]
    for core in cores[1:]:
        # acc (M_<k, N_<k, r) x core (r, m, n, r') -> (M_<k, m, N_<k, n, r')
        acc = torch.einsum("MNr,rmns->MmNns", acc, core)
        rows, cols = rows * core.shape[1], cols * core.shape[2]
        acc = acc.reshape(rows, cols, core.shape[3])
    return acc[..., 0]


def tt_svd(weight: torch.Tensor, shape: TTShape) -> tuple[list[torch.Tensor], float]:
    """Cores of ``shape`` approximating weight (out, in) by sequential truncated SVDs.

    The weight is zero-padded to (Π m_k, Π n_k), reshaped to (m_1 n_1, m_2 n_2, ...) and split by
    d − 1 SVDs, each truncated to the shape's rank (Oseledets 2011, Alg. 1). Returns the cores
    (float64) and the relative Frobenius error ‖W − W_TT‖ / ‖W‖ of the true (unpadded) block.
    """
    d, r = shape.n_cores, shape.ranks
    w64 = weight.detach().to(torch.float64)
    padded = w64.new_zeros(shape.out_padded, shape.in_padded)
    padded[: shape.out_features, : shape.in_features] = w64
    # (m_1..m_d, n_1..n_d) -> (m_1, n_1, m_2, n_2, ...): core k's indices side by side
    t = padded.reshape(*shape.out_factors, *shape.in_factors)
    t = t.permute(*[i for k in range(d) for i in (k, d + k)])
    cores = []
    rest = t.reshape(1, -1)
    for k in range(d - 1):
        _, m, n, _ = shape.core_shape(k)
        u, s, vh = torch.linalg.svd(rest.reshape(r[k] * m * n, -1), full_matrices=False)
        keep = r[k + 1]
        cores.append(u[:, :keep].reshape(r[k], m, n, keep))
        rest = s[:keep, None] * vh[:keep]
    cores.append(rest.reshape(r[d - 1], shape.out_factors[-1], shape.in_factors[-1], 1))
    approx = tt_to_dense(cores)[: shape.out_features, : shape.in_features]
    norm = torch.linalg.norm(w64)
    error = torch.linalg.norm(approx - w64) / norm if norm > 0 else torch.linalg.norm(approx)
    return cores, float(error)
