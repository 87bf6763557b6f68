"""Multi-node devices: chips in nodes (scale-up links within, a scale-out network between),
rows forwarded once per node, and devices derived from a preset (`derive_device`)."""

from __future__ import annotations

import math

import pytest
import torch

import mlacc
from mlacc.backends.sim.lowering import resolve_device
from mlacc.backends.sim.tiling import remote_copies
from mlacc.model_input import builtin_model
from mlacc.runtime.sim.device import DeviceError, derive_device, parse_assignments, parse_device
from mlacc.runtime.sim.engine import link_cycles
from mlacc.runtime.sim.schedule import KernelSchedule
from mlacc.runtime.synthetic import synthetic_inputs


def _cluster(nodes: int, network_gbs: float = 50.0, per_node: int = 8) -> dict:
    return {
        "name": f"npu-x{nodes}",
        "chips": per_node * nodes,
        "chips_per_node": per_node,
        "network": {"bandwidth_gbs": network_gbs, "latency_ns": 0.0, "efficiency": 0.5},
        "energy": {"pj_per_byte": {"network": 30.0}},
    }


def test_derived_device_is_the_preset_with_overrides_and_reparses() -> None:
    base = resolve_device("h100-like")
    device = derive_device(base, _cluster(4))
    assert (device.chips, device.chips_per_node, device.nodes) == (32, 8, 4)
    assert device.network.achievable == 25e9  # 50 GB/s x 0.5
    assert device.core == base.core and device.hbm == base.hbm and device.link == base.link
    assert device.energy.pj_per_byte == {**base.energy.pj_per_byte, "network": 30.0}
    assert parse_device(device.source) == device  # the source stands alone


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"chips": 12, "chips_per_node": 8}, "key 'chips_per_node' must divide 'chips' (12)"),
        ({"chips": 16, "chips_per_node": 8}, "missing key 'network' (required when"),
        ({**_cluster(2), "energy": {}}, "missing key 'energy.pj_per_byte.network'"),
        (
            {**_cluster(2), "network": {"bandwidth_gbs": 50, "latency_ns": 0, "efficiency": 2}},
            "key 'network.efficiency' must be a number in (0, 1], got 2",
        ),
    ],
)
def test_node_layout_is_checked(overrides: dict, expected: str) -> None:
    with pytest.raises(DeviceError) as info:
        derive_device(resolve_device("h100-like"), overrides)
    assert expected in str(info.value)


def test_rows_cross_the_network_once_per_node() -> None:
    """One node: every copy goes over the links, (chips - 1) p of them. Several nodes: a
    row crosses the network once per other node holding one of its experts, fewer times
    than the chips it reaches there, and the copies over links and network together reach
    every chip holding one of its experts."""
    single = resolve_device("datacenter-npu")  # 8 chips, one node
    p8 = 1 - (7 / 8) ** 8
    assert remote_copies(single, 8) == pytest.approx((7 * p8, 0.0))
    cluster = derive_device(resolve_device("h100-like"), _cluster(4))
    link, network = remote_copies(cluster, 8)
    p32 = 1 - (31 / 32) ** 8
    assert network == pytest.approx(3 * (1 - (3 / 4) ** 8))
    assert network < 24 * p32  # per-chip copies to the 24 chips of other nodes
    assert link == pytest.approx((32 - 4) * p32)
    assert remote_copies(cluster, 1)[1] == pytest.approx(3 / 4)


def test_link_and_network_stream_concurrently() -> None:
    device = derive_device(resolve_device("h100-like"), _cluster(2, network_gbs=50.0))
    s = KernelSchedule("moe.dispatch", 1, 1, 1, 2, 0, 0.0, 0.0, link_phase="dispatch")
    latency = device.cycles(device.link.latency_s)
    on_links = s.__class__(**{**s.__dict__, "link_bytes": 450e6})
    assert link_cycles(device, on_links) == pytest.approx(latency + device.cycles(1e-3))
    both = s.__class__(**{**s.__dict__, "link_bytes": 450e6, "network_bytes": 25e6})
    assert link_cycles(device, both) == pytest.approx(device.cycles(1e-3) + latency)
    slow = s.__class__(**{**s.__dict__, "link_bytes": 450e6, "network_bytes": 50e6})
    assert link_cycles(device, slow) == pytest.approx(device.cycles(2e-3))  # no latency set


def _moe_traffic(overrides: dict) -> dict[str, float]:
    device = derive_device(resolve_device("datacenter-npu"), overrides)
    model = builtin_model("deepseek-v3-tiny")
    art = mlacc.compile(
        model,
        (torch.zeros(32, 16, dtype=torch.int64),),
        target="sim",
        timing_only=True,
        cache_len=16,
        device=device,  # a Device object: no file needed
        fp8_fallback="bf16",
    )
    exe = art.load()
    exe.run("prefill", *synthetic_inputs(exe.entry_points["prefill"]["inputs"], meta=True))
    kernels = [
        k for c in exe.report().calls for k in c.kernels if k.op in ("moe.dispatch", "moe.combine")
    ]
    return {
        "link": sum(k.bytes["link"] for k in kernels),
        "network": sum(k.bytes["network"] for k in kernels),
        "seconds": sum(k.end - k.start for k in kernels),
    }


def test_a_slower_network_slows_dispatch_and_combine() -> None:
    """The tiny model on 2 nodes x 4 chips: dispatch/combine move bytes over both levels,
    and a network 8x slower makes them slower (its bytes are few: slow networks, so that
    they, not the link latency, set the time); on one node of 8 nothing crosses a network."""
    one_node = _moe_traffic({})
    fast = _moe_traffic(_cluster(2, network_gbs=8.0, per_node=4))
    slow = _moe_traffic(_cluster(2, network_gbs=1.0, per_node=4))
    assert one_node["network"] == 0 and one_node["link"] > 0
    assert fast["network"] > 0 and fast["link"] > 0
    assert fast["network"] == pytest.approx(slow["network"])
    assert slow["seconds"] > 1.5 * fast["seconds"]
    assert math.isclose(fast["link"] + fast["network"], one_node["link"], rel_tol=0.5)


def test_derived_text_survives_quotes_backslashes_controls_and_emoji() -> None:
    text = 'rocket \U0001f680 "quoted" back\\slash \x7f\ttab'
    device = derive_device(resolve_device("h100-like"), {"description": text})
    assert device.description == text
    assert parse_device(device.source).description == text


@pytest.mark.parametrize(
    ("assignments", "expected"),
    [
        (["chips"], "expected KEY=VALUE"),
        (["my key=1"], "KEY of letters, digits, _ and -"),
        (['"chips"=4'], "KEY of letters, digits, _ and -"),
        (["chips=many"], "'many' is not a TOML value"),
        (["clock_ghz=1979-05-27"], "not a date"),
        (["network.x=2", "network=1"], "'network' is already a table"),
        (["chips=1", "chips.x=2"], "'chips' is already a value"),
    ],
)
def test_bad_device_settings_are_one_line_errors(assignments: list[str], expected: str) -> None:
    with pytest.raises(DeviceError) as info:
        parse_assignments(assignments)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_device_settings_nest_by_dotted_keys() -> None:
    table = parse_assignments(["chips=16", "network.bandwidth_gbs=50", "network.efficiency=0.9"])
    assert table == {"chips": 16, "network": {"bandwidth_gbs": 50, "efficiency": 0.9}}
