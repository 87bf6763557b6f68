"""The accuracy cost of ``--quantize-fp8``: the model with and without FP8, on the same inputs.

`fp8_accuracy` compiles graph-level MLIR twice for the ``reference`` target, through a pipeline
with and one without ``quantize-fp8``, runs the ``forward`` entry point of both on synthetic
inputs (`mlacc.runtime.synthetic.synthetic_inputs`) with the same weights and compares the first
output: cosine similarity and the largest error relative to the reference output's largest
magnitude. `mlacc.compile(..., fp8=True)` stores the result as ``manifest["fp8_report"]``.
"""

from __future__ import annotations

from typing import Any

import torch

ENTRY = "forward"


def fp8_accuracy(
    mlir: str,
    weights: dict[str, torch.Tensor],
    *,
    pipeline: str,
    fp8_pipeline: str,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Compares `mlir` through `pipeline` and through `fp8_pipeline` on synthetic inputs.

    Returns ``{"cosine", "max_rel_err", "inputs": "synthetic", "entry", "seed"}``, or None when
    the module has no ``forward`` entry point.
    """
    from .compiler import compile as mlacc_compile
    from .runtime.synthetic import synthetic_inputs

    reference = mlacc_compile(
        mlir, target="reference", pipeline=pipeline or "none", weights=weights
    )
    if ENTRY not in reference.manifest["entry_points"]:
        return None
    quantized = mlacc_compile(mlir, target="reference", pipeline=fp8_pipeline, weights=weights)
    inputs = synthetic_inputs(reference.manifest["entry_points"][ENTRY]["inputs"], seed=seed)
    with torch.no_grad():
        want = _first(reference.load().run(ENTRY, *inputs))
        got = _first(quantized.load().run(ENTRY, *inputs))
    return {**compare(got, want), "inputs": "synthetic", "entry": ENTRY, "seed": seed}


def compare(got: torch.Tensor, want: torch.Tensor) -> dict[str, float]:
    """Cosine similarity and ``max |got - want| / max |want|`` (fp64)."""
    a, b = got.double().flatten(), want.double().flatten()
    denom = float(a.norm() * b.norm())
    cosine = float(a @ b) / denom if denom else float(torch.equal(a, b))
    scale = float(b.abs().max()) if b.numel() else 0.0
    err = float((a - b).abs().max()) if b.numel() else 0.0
    return {"cosine": cosine, "max_rel_err": err / scale if scale else err}


def _first(out: Any) -> torch.Tensor:
    while isinstance(out, list | tuple):
        out = out[0]
    if hasattr(out, "logits"):
        out = out.logits
    return out
