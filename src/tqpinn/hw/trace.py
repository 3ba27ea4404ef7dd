"""What one training step does, as data: its GEMMs and its element-wise operations.

A :class:`Trace` is recorded from a real step by :func:`tqpinn.hw.recorder.record_step` and read
by the cost models (:mod:`tqpinn.hw.pinta`, :mod:`tqpinn.hw.platforms`). It is plain data with a
JSON round trip, so a trace recorded once can be costed on many hardware descriptions.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqpinn.qops import GemmEvent

FLOAT_FORMAT_MARKERS = ("fp", "bf", "e4m3", "e5m2")
"""A format whose name contains one of these holds floating-point elements, not integers."""

SCALE_BITS = 8
"""Bits of one shared block exponent (E8M0, as OCP MX; PAPER_NOTES.md section 3)."""

ACCUMULATOR_OUTPUT_BITS = 32
"""A GEMM result leaves the array as FP32 (dequantized accumulators): the element-wise work that
follows (bias, activation, Stein combinations) runs in FP32 and re-quantizes for the next GEMM."""


def is_float_format(name: str) -> bool:
    return any(marker in name for marker in FLOAT_FORMAT_MARKERS)


@dataclass(frozen=True)
class GemmRecord(GemmEvent):
    """One executed product (m x k) @ (k x n): a :class:`tqpinn.qops.GemmEvent`, or a matmul
    that did not go through qops.

    phase: "forward", "dgrad", "wgrad" (reported by qops) or "forward"/"backward"/"optimizer"
    for a matmul that did not go through qops (``routed`` False, in the tensors' own precision;
    ``kind`` then names the part of tqpinn that issued it, e.g. "derivative" for the Stein
    combinations). block: block shape of the block-formatted operands, None when unblocked.
    """

    routed: bool = True
    kind: str = "layer"

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k

    @property
    def flops(self) -> int:
        """2 m n k: one multiply and one add per MAC, the convention of torch's FLOP counter."""
        return 2 * self.macs

    def operand_bits(self, which: str) -> float:
        """Stored bits per element of operand "a" or "b", block exponents included.

        A block of r x c elements shares one 8-bit exponent: 8 + 8/16 = 8.5 bits for SMX-INT8 4x4.
        """
        name, bits = (self.a_format, self.a_bits) if which == "a" else (self.b_format, self.b_bits)
        if self.block is None or is_float_format(name):
            return float(bits)
        return bits + SCALE_BITS / math.prod(self.block)

    @property
    def bytes_a(self) -> float:
        return self.m * self.k * self.operand_bits("a") / 8

    @property
    def bytes_b(self) -> float:
        return self.k * self.n * self.operand_bits("b") / 8

    @property
    def bytes_out(self) -> float:
        return self.m * self.n * ACCUMULATOR_OUTPUT_BITS / 8

    @property
    def bytes_moved(self) -> float:
        """Each operand read once and the result written once (the compulsory traffic)."""
        return self.bytes_a + self.bytes_b + self.bytes_out

    @property
    def quantized(self) -> bool:
        return not (is_float_format(self.a_format) and is_float_format(self.b_format))


@dataclass(frozen=True)
class ElementwiseRecord:
    """One non-GEMM kernel: an element-wise map, a reduction, a copy or random sampling.

    op: the ATen operator name ("tanh", "_foreach_add_", ...); op_class: its cost class (see
    :data:`tqpinn.hw.opclass.OP_CLASSES`); kind: the part of tqpinn that issued it ("activation",
    "derivative", "quantize", "optimizer", ...); phase: "forward", "backward" or "optimizer";
    elements: elements processed (the largest operand); bytes_read / bytes_written: the
    operands' storage, each tensor counted once.
    """

    op: str
    op_class: str
    kind: str
    phase: str
    elements: int
    bytes_read: int
    bytes_written: int

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written


@dataclass
class Trace:
    """The GEMMs and element-wise kernels of one training step, and what produced them.

    meta: free-form description (problem, estimator, quant, steps of the run, parameters).
    flop_counter: total FLOPs torch.utils.flop_counter counted during the same step, or None.
    """

    gemms: list[GemmRecord] = field(default_factory=list)
    elementwise: list[ElementwiseRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    flop_counter: int | None = None

    @property
    def gemm_flops(self) -> int:
        return sum(g.flops for g in self.gemms)

    @property
    def unrouted_gemms(self) -> list[GemmRecord]:
        """Matmuls that bypassed tqpinn.qops (so neither quantized nor seen by observers)."""
        return [g for g in self.gemms if not g.routed]

    def elements_by(self, attribute: str) -> dict[str, int]:
        """Element counts summed by ``attribute`` of the element-wise records (kind, phase...)."""
        out: dict[str, int] = {}
        for r in self.elementwise:
            key = getattr(r, attribute)
            out[key] = out.get(key, 0) + r.elements
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "gemms": len(self.gemms),
            "gemm_flops": self.gemm_flops,
            "unrouted_gemms": len(self.unrouted_gemms),
            "elementwise_kernels": len(self.elementwise),
            "elements_by_kind": self.elements_by("kind"),
            "flop_counter": self.flop_counter,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "flop_counter": self.flop_counter,
            "gemms": [asdict(g) for g in self.gemms],
            "elementwise": [asdict(r) for r in self.elementwise],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        gemms = [
            GemmRecord(**{**g, "block": None if g["block"] is None else tuple(g["block"])})
            for g in data["gemms"]
        ]
        return cls(
            gemms=gemms,
            elementwise=[ElementwiseRecord(**r) for r in data["elementwise"]],
            meta=dict(data.get("meta", {})),
            flop_counter=data.get("flop_counter"),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: Path) -> Trace:
        return cls.from_dict(json.loads(path.read_text()))
