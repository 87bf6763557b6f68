"""Compiled tiny models for the `llvm` tests: each compiled once per session."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch

import mlacc
from mlacc.backends.plan_builder import build_plan
from mlacc.dialects import make_context
from mlacc.dialects._mlir import ir
from mlacc.model_input import builtin_model, default_args, import_model
from mlacc.runtime.artifact import Artifact

# LLVM without optimization: 4x faster to compile, same numerics (tests check numerics).
TEST_OPTIONS = {"opt_level": 0}


def reference_twin(art: Artifact, model: torch.nn.Module, args: tuple, kwargs: dict | None):
    """The `reference` executable of the graph an `llvm` artifact was compiled from (same
    module after the pipeline): the golden model. The artifact keeps only the prepared weight
    forms its code reads, so the model's captured weights are imported again."""
    with make_context():
        plan, constants = build_plan(ir.Module.parse(art.mlir))
        captured = import_model(model, args, kwargs).weights
    weights = {**captured, **art.weights, **constants}
    manifest = {
        **art.manifest,
        "target": "reference",
        "executor": "reference",
        "payload": ["plan.json"],
        "backend": {},
    }
    payload = {"plan.json": json.dumps(plan.to_json()).encode()}
    return Artifact(manifest, art.mlir, weights, payload).load()


def models() -> dict[str, Callable[[], torch.nn.Module]]:
    """The model structures: mlacc's V3/V2 tiny, Hugging Face DeepseekV3/V2 tiny, the public
    code's layout, and mlacc's V3 tiny trained briefly (the FP8 accuracy bar)."""
    from hf_models import hf_v2, hf_v3
    from model_runs import public_layout_model
    from trained_models import trained_hf_v2, trained_reference_v3

    return {
        "reference-v3": lambda: builtin_model("deepseek-v3-tiny", seed=2),
        "reference-v2": lambda: builtin_model("deepseek-v2-tiny", seed=2),
        "hf-v3": hf_v3,
        "hf-v2": lambda: hf_v2(num_hidden_layers=2),
        "public": public_layout_model,
        "trained-v3": trained_reference_v3,
        "trained-hf-v2": trained_hf_v2,
    }


_cache: dict[tuple, tuple[object, object, Artifact]] = {}


@pytest.fixture(scope="session")
def compiled() -> Callable[..., tuple[object, object, Artifact]]:
    """``compiled(model, fp8=False, batch=1, block_size=None) -> (llvm executable, reference
    executable, llvm artifact)``: example batch `batch` of 16 tokens, cache 256 slots (paged
    in blocks of `block_size` when given)."""

    def get(name: str, fp8: bool = False, batch: int = 1, block_size: int | None = None):
        key = (name, fp8, batch, block_size)
        if key not in _cache:
            model = models()[name]()
            args = (default_args(model)[0].expand(batch, -1).contiguous(),)
            with torch.no_grad():
                art = mlacc.compile(
                    model,
                    args,
                    target="llvm",
                    fp8=fp8,
                    cache_block_size=block_size,
                    **TEST_OPTIONS,
                )
            _cache[key] = (art.load(), reference_twin(art, model, args, None), art)
        return _cache[key]

    return get
