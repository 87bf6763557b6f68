"""Repeated-layer capture: trace each run of identical layers once, stamp out the rest.

The stamped module must be the fully traced one: after `canonicalize,cse` (which only moves
and merges constants: the importer shares constants between layers differently) the two
print identically, locations included, up to the order of the hoisted constants, for every
model structure and cache layout.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from mlacc.dialects import make_context
from mlacc.dialects.parsing import module_text
from mlacc.frontend.adapters import adapt
from mlacc.frontend.capture import capture
from mlacc.frontend.capture_modules import assign_weight_keys
from mlacc.frontend.models import DeepSeekModel, get_config
from mlacc.frontend.repeated_layers import plan_layer_runs
from mlacc.model_input import builtin_model
from mlacc.passes.pipeline import run_pipeline


def _deep_reference(n_layers: int = 6, n_dense: int = 2) -> torch.nn.Module:
    config = dataclasses.replace(
        get_config("deepseek-v3-tiny"), n_layers=n_layers, n_dense_layers=n_dense
    )
    torch.manual_seed(0)
    model = DeepSeekModel(config).eval()
    model.init_weights(0)
    return model


def _models() -> dict[str, torch.nn.Module]:
    from hf_models import hf_v2, hf_v3

    return {
        "reference-v3-6-layers": _deep_reference(),
        "reference-v2": builtin_model("deepseek-v2-tiny", seed=2),
        "hf-v3": hf_v3(num_hidden_layers=4),
        "hf-v2": hf_v2(num_hidden_layers=4),
    }


_CONSTANT = re.compile(r"^\s*%\S+ = torch\.constant\.")


def _normalized_text(model: torch.nn.Module, stamp: bool, **cache) -> tuple[tuple, list[str]]:
    """(the module's constants (sorted) and its other lines, in order), the progress lines."""
    progress: list[str] = []
    ids = torch.zeros(2, 8, dtype=torch.long)
    with make_context() as ctx:
        captured = capture(
            model, (ids,), context=ctx, stamp_repeats=stamp, progress=progress.append, **cache
        )
        run_pipeline(captured.module, "canonicalize,cse")
        lines = module_text(captured.module).splitlines()
    constants = sorted(line for line in lines if _CONSTANT.match(line))
    return (constants, [line for line in lines if not _CONSTANT.match(line)]), progress


@pytest.mark.parametrize("name", ["reference-v3-6-layers", "reference-v2", "hf-v3", "hf-v2"])
@pytest.mark.parametrize("cache", [{"cache_len": 32}, {"cache_len": 32, "cache_block_size": 8}])
def test_stamped_module_is_the_fully_traced_one(name: str, cache: dict) -> None:
    model = _models()[name]
    stamped, progress = _normalized_text(model, True, **cache)
    full, _ = _normalized_text(model, False, **cache)
    assert any("stamped" in line for line in progress), progress  # repeats were stamped
    assert stamped == full


def test_runs_group_equal_layers_and_pair_their_weight_keys() -> None:
    model = _deep_reference(n_layers=6, n_dense=2)
    lm = adapt(model).lm
    assign_weight_keys(lm, {id(t): n for n, t in model.named_parameters()})
    plan = plan_layer_runs(list(lm.blocks))
    assert plan.runs == {0: [0, 1], 2: [2, 3, 4, 5]}
    assert plan.traced == [0, 2] and plan.repeats
    assert plan.keys[4]["layers.2.attn.wkv_b.weight"] == "layers.4.attn.wkv_b.weight"
    assert plan.keys[5]["layers.2.ffn.experts.w_gate"] == "layers.5.ffn.experts.w_gate"


def test_a_layer_that_differs_starts_a_new_run() -> None:
    model = _deep_reference(n_layers=5, n_dense=1)
    lm = adapt(model).lm
    assign_weight_keys(lm, {id(t): n for n, t in model.named_parameters()})
    lm.blocks[3].ffn_norm.eps = 1e-3  # an attribute: the ops of layer 3 differ
    plan = plan_layer_runs(list(lm.blocks))
    assert plan.runs == {0: [0], 1: [1, 2], 3: [3], 4: [4]}
