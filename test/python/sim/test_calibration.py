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
    ]
    predictions = {"a": 120.0, "b": 190.0, "c": 500.0}
    result = cal.calibrate(refs, lambda r: predictions[r.name])
    errors = [p["error_pct"] for p in result["points"]]
    assert errors == pytest.approx([20.0, -5.0, 900.0])
    s = result["summary"]
    assert s["points"] == 2 and s["fitted_points"] == 1
    assert s["mean_abs_error_pct"] == pytest.approx(12.5)
    assert s["max_abs_error_pct"] == pytest.approx(20.0)
    assert s["within_15_pct"] == 1
    text = cal.table(result)
    assert "+20.0%" in text and "(fit)" in text and "2 validation points (+1 fitted)" in text
    md = cal.markdown(result)
    assert md.count("\n| `h100-like` |") == 3 and "+900.0% (fit)" in md


def test_every_reference_names_its_source_and_a_preset() -> None:
    from mlacc.backends.sim.lowering import presets

    for ref in cal.REFERENCES:
        assert ref.source and ref.value > 0 and ref.unit in ("TB/s", "TFLOP/s")
        assert ref.device in presets()


def test_a_copy_prediction_is_bytes_moved_over_time() -> None:
    """The copy point: 2 x 1 GiB over the simulated time, at most the datasheet bandwidth."""
    ref = next(r for r in cal.REFERENCES if r.kind == "copy" and r.device == "h100-like")
    predicted = cal.simulate(ref)
    assert 0.85 * 3.35 <= predicted <= 3.35
