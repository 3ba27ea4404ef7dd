"""Machine info: CPU model and speed flags parsed from cpuinfo texts of x86 and ARM."""

from pathlib import Path

from tqpinn.machine import SPEED_FLAGS, all_flags, cpu_flags, cpu_info, machine_info, parse_cpuinfo

X86 = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 avx512vl

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 avx512vl
"""

ARM = """\
processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics
CPU implementer\t: 0x41
"""


def test_x86_model_and_flags_in_speed_order():
    info = parse_cpuinfo(X86)
    assert info.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert info.flags == (
        "avx2",
        "fma",
        "avx512f",
        "avx512_bf16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
    )


def test_flags_outside_the_list_are_dropped_and_substrings_do_not_match():
    info = parse_cpuinfo("model name : X\nflags : avx avx512vl avx512_bf16x sse4_2\n")
    assert info.flags == ()


def test_arm_features_and_the_fallback_model():
    info = parse_cpuinfo(ARM, fallback_model="aarch64")
    assert info.model == "aarch64"  # the numeric "processor" line is an index, not a name
    assert info.flags == ("asimd",)


def test_unreadable_cpuinfo_falls_back_to_no_flags(tmp_path: Path):
    info = cpu_info(tmp_path / "missing")
    assert info.flags == ()
    assert info.model  # platform's name of the processor or architecture


def test_machine_info_fields():
    info = machine_info("cpu")
    assert info["device"] == "cpu"
    assert set(info["cpu_flags"]) <= set(SPEED_FLAGS)
    assert info["torch_threads"] >= 1
    assert len(info["loadavg"]) in (0, 3)


def test_all_flags_keeps_every_flag_the_kernel_builds_need(tmp_path):
    assert {"avx512vl", "sse2", "amx_int8"} <= all_flags(X86)  # beyond SPEED_FLAGS
    assert "avx512v" not in all_flags(X86)
    assert {"fp", "asimd", "atomics"} <= all_flags(ARM)
    (tmp_path / "cpuinfo").write_text(ARM)
    assert cpu_flags(tmp_path / "cpuinfo") == all_flags(ARM)
    assert cpu_flags(tmp_path / "missing") == frozenset()
