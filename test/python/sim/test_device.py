"""Device descriptions: the presets' headline figures, and every schema defect as a DeviceError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlacc.runtime.errors import InputError
from mlacc.runtime.sim.device import Device, DeviceError, load_device, parse_device

ROOT = Path(__file__).resolve().parents[3]
DEVICES = ROOT / "backends" / "sim" / "devices"
PRESETS = sorted(DEVICES.glob("*.toml"))

# A valid single-chip description; the error tests edit one line of it.
BASE = """\
name = "t"
description = "test device"
clock_ghz = 1.0
chips = 1
cores = 2

[core]
sram_kib = 64
dma_engines = 1
dma_bytes_per_cycle = 32

[core.tensor]
array = [8, 8]
macs_per_cycle = { bf16 = 64, fp8 = 128 }

[core.vector]
lanes = 16
ops_per_cycle = 32

[hbm]
bandwidth_gbs = 100
latency_ns = 100
capacity_gib = 4

[energy]
pj_per_mac = { bf16 = 0.5, fp8 = 0.25 }
pj_per_vector_op = 1.0
pj_per_byte = { sram = 1.0, hbm = 20.0 }
"""


def _edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


def _error(text: str) -> str:
    with pytest.raises(DeviceError) as info:
        parse_device(text, "x.toml")
    assert isinstance(info.value, InputError)
    message = str(info.value)
    assert message.startswith("device file 'x.toml': ")
    assert "\n" not in message
    return message


def test_presets_exist() -> None:
    assert {p.stem for p in PRESETS} >= {"edge-npu", "datacenter-npu", "h100-like"}


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_parses_and_round_trips(path: Path) -> None:
    device = load_device(path)
    assert device.name == path.stem
    assert device.source == path.read_text()
    assert parse_device(device.source) == device
    json.dumps(device.summary())
    for dtype in device.core.tensor.macs_per_cycle:
        assert dtype in device.energy.pj_per_mac
    assert (device.link is not None) or device.chips == 1


def test_h100_like_figures() -> None:
    h100 = load_device(DEVICES / "h100-like.toml")
    assert h100.peak_flops("bf16") == pytest.approx(989.4e12, rel=5e-3)
    assert h100.peak_flops("fp8") == pytest.approx(1978.9e12, rel=5e-3)
    assert h100.hbm.bandwidth == pytest.approx(3.35e12)
    assert h100.hbm_bytes_per_cycle == pytest.approx(3.35e12 / 1.83e9)
    assert h100.link_bytes_per_cycle == pytest.approx(450e9 / 1.83e9)
    # shared memory (228 KiB) plus the register file (256 KiB) where accumulators live
    assert h100.core.sram_bytes == 484 * 1024
    assert h100.l2 is not None and h100.l2.capacity_bytes == 50 * 2**20
    assert h100.summary()["peak_flops"]["bf16"] == h100.peak_flops("bf16")


def test_edge_npu_has_no_fp8() -> None:
    edge = load_device(DEVICES / "edge-npu.toml")
    assert not edge.core.tensor.supports("fp8")
    assert edge.core.tensor.supports("bf16")
    assert edge.peak_flops("fp8") == 0.0
    assert edge.link is None
    assert edge.link_bytes_per_cycle == 0.0
    assert edge.summary()["link_bandwidth"] is None


def test_units_and_conversions() -> None:
    device = parse_device(BASE)
    assert device.clock_hz == 1e9
    assert device.core.sram_bytes == 64 * 1024
    assert device.core.tensor.array == (8, 8)
    assert device.hbm.latency_s == pytest.approx(100e-9)
    assert device.hbm.capacity_bytes == 4 * 2**30
    assert device.peak_flops("bf16") == 2 * 64 * 2 * 1e9
    assert device.seconds(device.cycles(3e-6)) == pytest.approx(3e-6)
    assert device.summary()["vector_ops_per_s"] == 32 * 2 * 1e9


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_edit("bandwidth_gbs = 100\n", ""), "missing key 'hbm.bandwidth_gbs'"),
        (_edit("[hbm]", "[hbm]\nbandwith_gbs = 1"), "unknown key 'hbm.bandwith_gbs'"),
        (_edit("lanes = 16", "lanes = 16\nfoo = 1"), "unknown key 'core.vector.foo'"),
        (_edit("bf16 = 64,", "bf16 = 64, int8 = 256,"), "'core.tensor.macs_per_cycle.int8'"),
        (_edit("clock_ghz = 1.0", 'clock_ghz = "fast"'), "'clock_ghz' must be a positive number"),
        (_edit("bf16 = 64", "bf16 = -3"), "'core.tensor.macs_per_cycle.bf16' must be a positive"),
        (_edit("latency_ns = 100", "latency_ns = -1"), "'hbm.latency_ns' must be a non-negative"),
        (_edit("cores = 2", "cores = true"), "'cores' must be a positive integer, got true"),
        (_edit("cores = 2", "cores = 2.0"), "'cores' must be a positive integer"),
        (_edit("array = [8, 8]", "array = [8]"), "'core.tensor.array'"),
        (_edit("clock_ghz = 1.0", "clock_ghz = inf"), "'clock_ghz' must be a positive number"),
        (_edit("chips = 1", "chips = 2"), "missing key 'link'"),
        (
            _edit("pj_per_mac = { bf16 = 0.5, fp8 = 0.25 }", "pj_per_mac = { bf16 = 0.5 }"),
            "missing key 'energy.pj_per_mac.fp8'",
        ),
        (
            _edit("macs_per_cycle = { bf16 = 64, fp8 = 128 }", "macs_per_cycle = {}"),
            "'core.tensor.macs_per_cycle'",
        ),
        (
            _edit("[hbm]", "[link]\nbandwidth_gbs = 1\nlatency_ns = 1\n\n[hbm]"),
            "missing key 'energy.pj_per_byte.link'",
        ),
        (_edit("[core.vector]", "[core.vector]\n[core.vector.x]"), "unknown key 'core.vector.x'"),
        (
            _edit("[hbm]", "[l2]\nsize_mib = 8\nbandwidth_gbs = 500\nlatency_ns = 50\n\n[hbm]"),
            "missing key 'energy.pj_per_byte.l2'",
        ),
        (_edit("[hbm]", "[l2]\nsize_mib = 8\n\n[hbm]"), "missing key 'l2.bandwidth_gbs'"),
        (_edit('name = "t"', "name = 3"), "'name' must be a name of letters, digits and"),
        (_edit('name = "t"', 'name = "my npu"'), "(no spaces), got 'my npu'"),
        (_edit("capacity_gib = 4", "capacity_gib = 4\nefficiency = 1.2"), "'hbm.efficiency'"),
        (_edit("lanes = 16", "lanes = 16\nefficiency = 0"), "must be a number in (0, 1]"),
        (_edit("cores = 2", "cores = 2\nlaunch_overhead_ns = -5"), "'launch_overhead_ns'"),
        (_edit("pj_per_vector_op = 1.0", "pj_per_vector_op = 1.0\nstatic_w = -1"), "static_w"),
    ],
)
def test_schema_error(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_optional_fractions_launch_and_static_power() -> None:
    """Absent: full datasheet rates, no launch overhead, no static power. Present: parsed."""
    plain = parse_device(BASE)
    assert plain.hbm.efficiency == plain.core.tensor.efficiency == 1.0
    assert plain.launch_overhead_s == 0.0 and plain.energy.static_w == 0.0
    text = _edit("cores = 2", "cores = 2\nlaunch_overhead_ns = 1500")
    text = text.replace("capacity_gib = 4", "capacity_gib = 4\nefficiency = 0.9")
    text = text.replace("macs_per_cycle = {", "efficiency = 0.8\nmacs_per_cycle = {")
    text = text.replace("pj_per_vector_op = 1.0", "pj_per_vector_op = 1.0\nstatic_w = 300")
    d = parse_device(text)
    assert d.hbm.achievable == pytest.approx(0.9 * 100e9)
    assert d.core.tensor.efficiency == 0.8
    assert d.launch_cycles == pytest.approx(1500.0)  # 1.5 us at 1 GHz
    assert d.energy.static_w == 300.0
    assert d.summary()["hbm_efficiency"] == 0.9


def test_missing_table() -> None:
    assert "missing key 'energy'" in _error(BASE.split("[energy]")[0])


def test_table_expected() -> None:
    text = _edit("[core.vector]\nlanes = 16\nops_per_cycle = 32\n", "")
    text = text.replace("dma_engines = 1", "dma_engines = 1\nvector = 3")
    assert "key 'core.vector' must be a table, got 3" in _error(text)


def test_multi_chip_with_link() -> None:
    text = _edit("chips = 1", "chips = 4").replace(
        "[energy]", "[link]\nbandwidth_gbs = 50\nlatency_ns = 0\n\n[energy]"
    )
    text = text.replace("hbm = 20.0 }", "hbm = 20.0, link = 5.0 }")
    device = parse_device(text)
    assert device.link is not None
    assert device.link.bandwidth == 50e9
    assert device.peak_flops("fp8") == 2 * 128 * 2 * 4 * 1e9


def test_l2_cache() -> None:
    text = _edit("[hbm]", "[l2]\nsize_mib = 8\nbandwidth_gbs = 500\nlatency_ns = 50\n\n[hbm]")
    device = parse_device(text.replace("hbm = 20.0 }", "hbm = 20.0, l2 = 2.0 }"))
    assert device.l2 is not None and device.l2.capacity_bytes == 8 * 2**20
    assert device.l2_bytes_per_cycle == pytest.approx(500.0)
    assert device.summary()["l2_bandwidth"] == 500e9


def test_invalid_toml() -> None:
    message = _error(BASE + "this is not toml\n")
    assert "invalid TOML" in message


def test_unreadable_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(DeviceError) as info:
        load_device(missing)
    assert isinstance(info.value, InputError)
    assert str(missing) in str(info.value)
    assert "cannot read" in str(info.value)
    with pytest.raises(DeviceError, match="cannot read"):
        load_device(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'name = "\xff"\n')
    with pytest.raises(DeviceError, match="not UTF-8"):
        load_device(path)


def test_load_names_file(tmp_path: Path) -> None:
    path = tmp_path / "dev.toml"
    path.write_text(_edit("cores = 2", "cores = 0"))
    with pytest.raises(DeviceError, match=r"device file '.*dev\.toml': key 'cores'"):
        load_device(path)
    path.write_text(BASE)
    assert isinstance(load_device(path), Device)
