"""Cycle counts of one GEMM on an R x C systolic array, per dataflow.

A GEMM (m x k) @ (k x n) maps onto the array with two dimensions spread over rows and columns
(the *spatial* ones, Sr and Sc) and one streamed through time (T):

    weight stationary (ws): Sr = k, Sc = n, T = m
    output stationary (os): Sr = m, Sc = n, T = k
    input stationary  (is): Sr = k, Sc = m, T = n

(the mapping SCALE-Sim uses, Samajdar et al., ISPASS 2020). The array processes
F = ceil(Sr / R) · ceil(Sc / C) folds. One fold takes R cycles to load the stationary operand
(or drain it, for os), T cycles to stream, and R + C − 2 cycles for the skewed wavefront to fill
and drain, so without overlap

    cycles = F · (2R + C + T − 2).

With double-buffered stationary registers the next fold loads while the current one streams
(a fold after the first starts max(T, R) cycles after the one before: the load must finish)
and consecutive wavefronts pipeline, leaving one load and one fill/drain in total:

    cycles = R + T + (F − 1) · max(T, R) + R + C − 2,

which equals the first formula for a single fold.

A PE that performs p MACs per cycle along the reduction axis (a precision-scalable MAC in a
narrow mode) shortens k to ceil(k / p) before mapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DATAFLOWS = ("ws", "os", "is")


@dataclass(frozen=True)
class Mapping:
    dataflow: str
    spatial_rows: int
    spatial_cols: int
    temporal: int


def map_gemm(dataflow: str, m: int, n: int, k: int) -> Mapping:
    """Spatial and temporal extents of a GEMM (m x k) @ (k x n) under ``dataflow``."""
    if dataflow == "ws":
        return Mapping(dataflow, k, n, m)
    if dataflow == "os":
        return Mapping(dataflow, m, n, k)
    if dataflow == "is":
        return Mapping(dataflow, k, m, n)
    raise ValueError(f"unknown dataflow {dataflow!r}; choose from {list(DATAFLOWS)}")


def folds(mapping: Mapping, rows: int, cols: int) -> int:
    return math.ceil(mapping.spatial_rows / rows) * math.ceil(mapping.spatial_cols / cols)


def reduced_k(k: int, macs_per_pe_cycle: float) -> int:
    """Reduction length seen by the array when each PE does ``macs_per_pe_cycle`` MACs a cycle."""
    # A tolerance keeps 1/3-MAC modes exact: k / (1/3) must give 3k, not 3k + 1.
    return max(1, math.ceil(k / macs_per_pe_cycle - 1e-9))


def compute_cycles(mapping: Mapping, rows: int, cols: int, overlap: bool) -> int:
    """Cycles of the array for one GEMM (see the module docstring for the two formulas)."""
    f, t = folds(mapping, rows, cols), mapping.temporal
    if not overlap:
        return f * (2 * rows + cols + t - 2)
    return rows + t + (f - 1) * max(t, rows) + rows + cols - 2


def best_mapping(
    m: int, n: int, k: int, rows: int, cols: int, overlap: bool, dataflow: str = "auto"
) -> tuple[Mapping, int]:
    """The mapping (fixed, or the fastest of the three for "auto") and its cycles."""
    candidates = DATAFLOWS if dataflow == "auto" else (dataflow,)
    options = [map_gemm(d, m, n, k) for d in candidates]
    cycles = [compute_cycles(mp, rows, cols, overlap) for mp in options]
    best = min(range(len(options)), key=cycles.__getitem__)
    return options[best], cycles[best]


def operand_passes(mapping: Mapping, rows: int, cols: int) -> tuple[int, int, int]:
    """(full reads of A, full reads of B, full accesses of the output) between array and buffer.

    The stationary operand is read once. A streamed operand is read once per fold of the other
    spatial dimension. Outputs that are not stationary are partial sums when the reduction spans
    several row folds f_k: written once, then read and written back f_k − 1 times (2 f_k − 1).
    """
    fr = math.ceil(mapping.spatial_rows / rows)
    fc = math.ceil(mapping.spatial_cols / cols)
    if mapping.dataflow == "ws":
        return fc, 1, 2 * fr - 1
    if mapping.dataflow == "os":
        return fc, fr, 1
    return 1, fc, 2 * fr - 1
