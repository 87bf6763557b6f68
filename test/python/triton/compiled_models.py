"""Compiled models shared by the Triton tests (each compiled once per session): the model
structures, the serving shapes and the reference twin of a `triton` artifact."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

import mlacc
from mlacc.runtime.artifact import Artifact

# The serving shapes: the example call's batch is the largest batch, its length the chunk.
BATCH, CHUNK, CACHE = 3, 8, 32


def reference_twin(art: Artifact) -> Any:
    """The `reference` executable of the graph a `triton` artifact was compiled from (same
    module after the pipeline, same weights): the golden model without a second capture."""
    from mlacc.backends.plan_builder import build_plan
    from mlacc.dialects import make_context
    from mlacc.dialects._mlir import ir

    with make_context():
        plan, constants = build_plan(ir.Module.parse(art.mlir))
    manifest = {
        **art.manifest,
        "target": "reference",
        "executor": "reference",
        "payload": ["plan.json"],
        "backend": {},
    }
    payload = {"plan.json": json.dumps(plan.to_json()).encode()}
    return Artifact(manifest, art.mlir, {**art.weights, **constants}, payload).load()


def _reference(name: str, **over: Any) -> torch.nn.Module:
    from mlacc.frontend.models import DeepSeekModel, get_config

    model = DeepSeekModel(get_config(name).replace(**over)).eval()
    model.init_weights(2)
    return model


def model_factories() -> dict[str, Callable[[], torch.nn.Module]]:
    """The model structures, each in its smallest config that still has a dense and a MoE
    layer: mlacc's V3 tiny as built in (+ MTP: the serving tests' model), V2 tiny, tiny random
    Hugging Face DeepseekV3/V2, and the public-code layout (`frontend/public_model.py`)."""
    from hf_models import hf_v2, hf_v3
    from model_runs import public_layout_model

    from mlacc.model_input import builtin_model

    return {
        "reference-v3": lambda: builtin_model("deepseek-v3-tiny"),
        "reference-v2": lambda: _reference("deepseek-v2-tiny", n_layers=2),
        "hf-v3": lambda: hf_v3(num_hidden_layers=2),
        "hf-v2": lambda: hf_v2(num_hidden_layers=2),
        "public": public_layout_model,
    }


_models: dict[str, torch.nn.Module] = {}
_compiled: dict[tuple, tuple[Any, Any, Artifact]] = {}


def model(name: str) -> torch.nn.Module:
    if name not in _models:
        _models[name] = model_factories()[name]()
    return _models[name]


def get_compiled(name: str, *, fp8: bool = False, block_size: int | None = None):
    """``(triton executable, reference executable, triton artifact)`` of model `name` at the
    serving shapes (batch 3, chunk 8, cache 32), compiled once per session; the reference
    runs the same graph (`reference_twin`)."""
    key = (name, fp8, block_size)
    if key not in _compiled:
        m = model(name)
        kwargs = {"use_cache": False} if name.startswith("hf") else None
        example = torch.zeros(BATCH, CHUNK, dtype=torch.int64)
        with torch.no_grad():
            art = mlacc.compile(
                m,
                (example,),
                kwargs,
                target="triton",
                fp8=fp8,
                cache_len=CACHE,
                cache_block_size=block_size,
            )
        _compiled[key] = (art.load(), reference_twin(art), art)
    return _compiled[key]
