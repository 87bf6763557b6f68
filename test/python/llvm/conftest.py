"""Compiled tiny models for the `llvm` tests: each compiled once per session."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

import mlacc
from mlacc.backends.plan_builder import build_plan
from mlacc.dialects import make_context
from mlacc.dialects._mlir import ir
from mlacc.model_input import builtin_model, default_args
from mlacc.runtime.artifact import Artifact

# LLVM without optimization: 4x faster to compile, same numerics (tests check numerics).
TEST_OPTIONS = {"opt_level": 0}


def reference_twin(art: Artifact):
    """The `reference` executable of the graph an `llvm` artifact was compiled from (same
    module after the pipeline, same weights): the golden model, without capturing again."""
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


def _models() -> dict[str, Callable[[], object]]:
    from hf_models import hf_v3

    return {
        "reference-v3": lambda: builtin_model("deepseek-v3-tiny", seed=2),
        "reference-v2": lambda: builtin_model("deepseek-v2-tiny", seed=2),
        "hf-v3": hf_v3,
    }


_cache: dict[tuple[str, bool], tuple[object, object, Artifact]] = {}


@pytest.fixture(scope="session")
def compiled() -> Callable[[str, bool], tuple[object, object, Artifact]]:
    """``compiled(model, fp8) -> (llvm executable, reference executable, llvm artifact)``."""

    def get(name: str, fp8: bool = False):
        key = (name, fp8)
        if key not in _cache:
            model = _models()[name]()
            art = mlacc.compile(model, default_args(model), target="llvm", fp8=fp8, **TEST_OPTIONS)
            _cache[key] = (art.load(), reference_twin(art), art)
        return _cache[key]

    return get
