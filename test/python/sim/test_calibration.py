"""The arithmetic of `benchmarks/sim_calibration.py` (errors, summary, table), on made-up
predictions, plus one real point (fast)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[3] / "benchmarks" / "sim_calibration.py"
_SPEC = importlib.util.spec_from_file_location("sim_calibration", _PATH)
cal = importlib.util.module_from_spec(_SPEC)
sys.modules["sim_calibration"] = cal  # dataclasses look their module up
_SPEC.loader.exec_module(cal)


def test_error_is_signed_percent_of_the_measurement() -> None:
    assert cal.error_pct(110.0, 100.0) == pytest.approx(10.0)
    assert cal.error_pct(2.7, 3.0) == pytest.approx(-10.0)
    with pytest.raises(ValueError):
        cal.error_pct(1.0, 0.0)


def test_summary_leaves_fitted_points_out() -> None:
    refs = [
        cal.Reference("a", "h100-like", "copy", (1,), 100.0, "TB/s", "s"),
        cal.Reference("b", "h100-like", "copy", (1,), 200.0, "TB/s", "s"),
        cal.Reference("c", "h100-like", "copy", (1,), 50.0, "TB/s", "s", fitted=True),
        cal.Reference("d", "h100-like", "decode_step", (1, 1, 8), 10.0, "ms", "s"),
    ]
    predictions = {"a": 120.0, "b": 190.0, "c": 500.0, "d": 8.2}
    result = cal.calibrate(refs, lambda r: predictions[r.name])
    errors = [p["error_pct"] for p in result["points"]]
    assert errors == pytest.approx([20.0, -5.0, 900.0, -18.0])
    s = result["summary"]
    assert s["points"] == 3 and s["fitted_points"] == 1
    assert s["mean_abs_error_pct"] == pytest.approx(43 / 3)
    assert s["max_abs_error_pct"] == pytest.approx(20.0)
    assert (s["kernels_within_15_pct"], s["kernel_points"]) == (1, 2)
    assert (s["steps_within_20_pct"], s["step_points"]) == (1, 1)
    text = cal.table(result)
    assert "+20.0%" in text and "(fit)" in text and "3 validation points (+1 fitted)" in text
    assert "kernels: 1 of 2 within 15%; model steps: 1 of 1 within 20%" in text
    md = cal.markdown(result)
    assert md.count("\n| `h100-like` |") == 4 and "+900.0% (fit)" in md


def test_every_reference_names_its_source_and_a_preset() -> None:
    from mlacc.backends.sim.lowering import presets

    for ref in cal.REFERENCES:
        assert ref.source and ref.value > 0 and ref.unit in ("TB/s", "TFLOP/s", "ms")
        assert ref.device in presets()
        assert (ref.unit == "ms") == (ref.kind in cal.MODEL_STEPS)


def test_model_steps_run_on_multi_node_clusters_of_their_preset() -> None:
    """A step point's cluster is its preset's chips in nodes of 8 with a network between
    them; the decode and prefill points are both there."""
    from mlacc.backends.sim.lowering import resolve_device
    from mlacc.runtime.sim.device import derive_device

    steps = [r for r in cal.REFERENCES if r.kind in cal.MODEL_STEPS]
    assert {r.kind for r in steps} == set(cal.MODEL_STEPS)
    for ref in steps:
        base = resolve_device(ref.device)
        device = derive_device(base, ref.cluster)
        assert device.nodes > 1 and device.chips_per_node == 8 and device.network is not None
        assert device.core == base.core and device.hbm == base.hbm
        per_chip, prompt, context = ref.shape
        assert per_chip >= 1 and context >= prompt >= 1


def test_a_copy_prediction_is_bytes_moved_over_time() -> None:
    """The copy point: 2 x 1 GiB over the simulated time, at most the datasheet bandwidth."""
    ref = next(r for r in cal.REFERENCES if r.kind == "copy" and r.device == "h100-like")
    predicted = cal.simulate(ref)
    assert 0.85 * 3.35 <= predicted <= 3.35
