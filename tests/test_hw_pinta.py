"""PINTA's cycle and energy model: systolic mapping, mode choice, a GEMM costed by hand, totals."""

import math

import pytest
import yaml

from tqpinn.errors import UserError
from tqpinn.hw.hardware import DEFAULT_HARDWARE, hardware_from_dict, load_hardware, unsourced
from tqpinn.hw.pinta import Pinta, select_mode
from tqpinn.hw.systolic import (
    DATAFLOWS,
    best_mapping,
    compute_cycles,
    map_gemm,
    operand_passes,
    reduced_k,
)
from tqpinn.hw.trace import ElementwiseRecord, GemmRecord, Trace

SCALESIM_WS_32X32 = {
    # (m, n, k): compute cycles SCALE-Sim 3.0.0 reported for a 32x32 weight-stationary array
    # (benchmarks/scalesim_crosscheck.py runs it live); it counts the last cycle's index, one
    # less than the number of cycles.
    (100, 64, 40): 775,
    (7, 33, 65): 605,
    (300, 8, 128): 1575,
    (64, 300, 16): 1579,
    (1000, 256, 64): 17503,
}


def default_data() -> dict:
    from importlib import resources

    return yaml.safe_load(resources.files("tqpinn.hw").joinpath(DEFAULT_HARDWARE).read_text())


def smx(phase, m, n, k, a_bits=8, b_bits=8):
    return GemmRecord(
        phase, m, n, k, f"smx_int{a_bits}", f"smx_int{b_bits}", a_bits, b_bits, (4, 4)
    )


@pytest.mark.parametrize("shape", sorted(SCALESIM_WS_32X32))
def test_no_overlap_cycles_match_scalesim(shape):
    m, n, k = shape
    assert compute_cycles(map_gemm("ws", m, n, k), 32, 32, overlap=False) == (
        SCALESIM_WS_32X32[shape] + 1
    )


def test_overlap_hides_all_but_one_load_and_one_fill():
    rows, cols = 32, 32
    for m, n, k in [(5000, 64, 64), (40, 300, 100), (1, 1, 1)]:
        for d in DATAFLOWS:
            mp = map_gemm(d, m, n, k)
            plain = compute_cycles(mp, rows, cols, overlap=False)
            overlap = compute_cycles(mp, rows, cols, overlap=True)
            folds = math.ceil(mp.spatial_rows / rows) * math.ceil(mp.spatial_cols / cols)
            assert overlap <= plain
            t = mp.temporal
            assert overlap == rows + t + (folds - 1) * max(t, rows) + rows + cols - 2
            if folds == 1:
                assert overlap == plain  # nothing to hide behind a single fold


def test_utilisation_of_a_perfectly_mapped_gemm_approaches_one():
    # ws with k = R and n = C: one fold; utilisation m / (m + 2R + C − 2) for large m.
    m = 100_000
    cycles = compute_cycles(map_gemm("ws", m, 32, 32), 32, 32, overlap=True)
    assert cycles == m + 2 * 32 + 32 - 2
    assert m * 32 * 32 / (cycles * 32 * 32) > 1 - 100 / m


def test_auto_dataflow_is_the_fastest():
    for shape in [(6400, 8, 8), (8, 8, 204800), (64, 6400, 2)]:
        _, cycles = best_mapping(*shape, 32, 32, True, "auto")
        assert cycles == min(compute_cycles(map_gemm(d, *shape), 32, 32, True) for d in DATAFLOWS)


def test_reduced_k_and_operand_passes():
    assert reduced_k(100, 4) == 25 and reduced_k(101, 4) == 26
    assert reduced_k(100, 1 / 3) == 300
    # ws, k = 64 over 32 rows (2 reduction folds), n = 96 over 32 columns (3 column folds):
    # A streamed once per column fold, B once, partial sums written, then read+written once.
    assert operand_passes(map_gemm("ws", 10, 96, 64), 32, 32) == (3, 1, 3)
    assert operand_passes(map_gemm("os", 70, 96, 64), 32, 32) == (3, 3, 1)
    assert operand_passes(map_gemm("is", 70, 96, 64), 32, 32) == (1, 3, 3)


def test_mode_selection_by_operand_widths():
    hw = load_hardware()
    assert select_mode(hw, smx("forward", 4, 4, 4)) == "int8xint8"
    assert select_mode(hw, smx("dgrad", 4, 4, 4, 12, 8)) == "int12xint8"
    assert select_mode(hw, smx("wgrad", 4, 4, 4, 8, 12)) == "int12xint8"
    assert select_mode(hw, smx("wgrad", 4, 4, 4, 12, 12)) == "int12xint12"
    assert select_mode(hw, smx("wgrad", 4, 4, 4, 16, 8)) == "fp32"
    fp32 = GemmRecord("forward", 4, 4, 4, "fp32", "fp32", 32, 32, None)
    assert select_mode(hw, fp32) == "fp32"


def test_one_gemm_costed_by_hand():
    hw = load_hardware()
    g = smx("forward", 64, 32, 128)
    cost = Pinta(hw).gemm_cost(g)
    # INT8 x INT8: 4 MACs per PE per cycle, so k = 128 maps as 32. Every dataflow then needs
    # 158 cycles (ws: one fold, 32 + 64 + 32 + 32 − 2); the first (ws) is kept.
    assert cost.mode == "int8xint8"
    assert cost.mapping.dataflow == "ws" and cost.compute_cycles == 158
    scale = 28 / 45  # C·V² with C ∝ feature size, same voltage
    macs = 64 * 32 * 128
    assert cost.energy_pj["mac"] == pytest.approx(macs * (0.2 + 0.1) * scale)
    # One exponent add and one alignment per 4-long block partial sum of each output.
    assert cost.energy_pj["block_exponent"] == pytest.approx(64 * 32 * 32 * (0.03 + 0.1) * scale)
    # One column fold and one reduction fold: A, B read once, outputs written once (32-bit).
    sram_bytes = 64 * 128 * 8.5 / 8 + 128 * 32 * 8.5 / 8 + 64 * 32 * 4
    assert cost.sram_bytes == pytest.approx(sram_bytes)
    assert cost.energy_pj["sram"] == pytest.approx(sram_bytes * 2.5 * scale)
    assert cost.dram_bytes == 0  # everything fits in a third of the 1 MiB buffer
    assert cost.bound == "compute" and cost.cycles == 158


def test_dram_spill_rule_and_memory_bound():
    hw = load_hardware()
    third = hw.sram.buffer_bytes / 3
    # A of 1M rows x 32 INT8 (34 MB) cannot stay on chip: read once from DRAM.
    big = smx("forward", 1_000_000, 32, 32)
    cost = Pinta(hw).gemm_cost(big)
    assert big.bytes_a > third and big.bytes_b < third
    stored_out = 1_000_000 * 32 * 8.5 / 8  # fused: the result is stored as the INT8 stream
    assert cost.dram_bytes == pytest.approx(big.bytes_a + stored_out)
    dram_cycles = cost.dram_bytes / (hw.dram.bandwidth_bytes_per_s / hw.clock_hz)
    assert cost.cycles == pytest.approx(
        max(cost.compute_cycles, dram_cycles, cost.sram_bytes / 256)
    )


def test_vector_work_and_quantize_emulation():
    hw = load_hardware()
    tanh = ElementwiseRecord("tanh", "transcendental", "activation", "forward", 1024, 4096, 4096)
    emulated = ElementwiseRecord("round", "simple", "quantize", "forward", 10**6, 4, 4)
    trace = Trace(gemms=[smx("forward", 64, 32, 128)], elementwise=[tanh, emulated])
    report = Pinta(hw).run(trace)
    # Fused vector unit: 1024 elements x 8 cycles / 256 lanes, no memory traffic of its own.
    assert [v.cycles for v in report.vector] == [1024 * 8 / 256]
    # The quantizer handles both operands once: 64·128 + 128·32 elements at 256 per cycle.
    assert report.quantizer_cycles == (64 * 128 + 128 * 32) / 256
    assert report.cycles == pytest.approx(158 + 32 + report.quantizer_cycles)


def test_totals_are_sums_and_runs_scale_steps():
    hw = load_hardware()
    trace = Trace(gemms=[smx("forward", 300, 64, 64), smx("wgrad", 64, 64, 300, 12, 8)])
    trace.meta["steps"] = 7
    report = Pinta(hw).run(trace)
    summary = report.summary()
    assert summary["step"]["energy_j"] == pytest.approx(sum(report.energy_breakdown_j.values()))
    assert summary["run"]["energy_j"] == pytest.approx(7 * summary["step"]["energy_j"])
    assert summary["run"]["seconds"] == pytest.approx(7 * report.cycles / hw.clock_hz)
    static = report.energy_breakdown_j["static"]
    assert static == pytest.approx(hw.static_power_w * report.seconds)
    assert 0 < report.array_utilisation <= 1


def test_default_hardware_has_a_source_for_every_constant():
    data = default_data()
    assert unsourced(data) == []
    assert load_hardware().technology.energy_scale == pytest.approx(28 / 45)


def test_bad_hardware_files_name_the_key():
    data = default_data()
    del data["sources"]["clock_hz"]
    with pytest.raises(UserError, match="clock_hz"):
        hardware_from_dict(data)
    data = default_data()
    data["array"]["banks"] = 4
    with pytest.raises(UserError, match=r"array\.banks"):
        hardware_from_dict(data)
    data = default_data()
    del data["vector"]["cycles_per_element"]["rng"]
    with pytest.raises(UserError, match="rng"):
        hardware_from_dict(data)
    data = default_data()
    data["array"]["rows"] = 0
    with pytest.raises(UserError, match=r"array\.rows"):
        hardware_from_dict(data)


def test_missing_hardware_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_hardware(tmp_path / "nope.yaml")


def test_point_tiles_keep_collocation_rows_on_chip():
    """A 34 MB activation over 100 collocation points is 340 KB per one-point tile: it fits in a
    third of the 1 MiB buffer (349.5 KB), so the tiled schedule moves it through no DRAM, while
    the layer-by-layer schedule (one tile) streams it; weights are never split."""
    hw = load_hardware()
    assert hw.schedule.tile_points == 1
    big = smx("forward", 1_000_000, 32, 32)
    trace = Trace(gemms=[big], meta={"points": {"interior": 100, "boundary": 100}})
    pinta = Pinta(hw)
    assert pinta.tiles(trace) == 100
    # Tiles take points of every condition: the smallest condition bounds their number.
    assert pinta.tiles(Trace(meta={"points": {"interior": 100, "boundary": 40}})) == 40
    assert pinta.run(trace).gemms[0].dram_bytes == 0
    data = default_data()
    data["schedule"]["tile_points"] = None
    layerwise = Pinta(hardware_from_dict(data)).run(trace).gemms[0]
    assert layerwise.dram_bytes == pytest.approx(big.bytes_a + 1_000_000 * 32 * 8.5 / 8)
    heavy_weight = GemmRecord("forward", 100, 1024, 1024, "fp32", "fp32", 32, 32, None)
    tiled = pinta.run(Trace(gemms=[heavy_weight], meta=trace.meta)).gemms[0]
    assert tiled.dram_bytes == heavy_weight.bytes_b  # a 4 MiB weight spills whatever the tiles
