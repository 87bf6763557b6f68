"""`--moe-group-experts`: numerics before vs after on real model structures, the IR it leaves,
the EPLB placement function, and its failure paths."""

from __future__ import annotations

import pytest
import torch

import mlacc
from mlacc.model_input import builtin_model
from mlacc.passes._moe_placement import PlacementError, pack, place_experts, replicate
from mlacc.runtime.errors import CompileError

PASS = "moe-group-experts"


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def logits(out) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else (out[0] if isinstance(out, tuple) else out)


_BASELINE: dict[str, torch.Tensor] = {}  # logits without the pass, per builtin model


def check_pass_preserves_logits(
    model, ids: torch.Tensor, pipeline: str = PASS, cache_key: str | None = None
) -> str:
    """Compiles `model` without and with the pass; asserts the logits agree; returns the IR."""
    with torch.no_grad():
        want = _BASELINE.get(cache_key) if cache_key is not None else None
        if want is None:
            before = mlacc.compile(model, (ids,), target="reference", pipeline="none")
            assert "moe.experts" in before.mlir
            want = logits(before.load()(ids))
            if cache_key is not None:
                _BASELINE[cache_key] = want
        after = mlacc.compile(model, (ids,), target="reference", pipeline=pipeline)
        assert '"moe.experts"' not in after.mlir
        assert '"moe.dispatch"' in after.mlir and '"moe.combine"' in after.mlir
        got = logits(after.load()(ids))
    err = rel_err(got, want)
    assert err < 1e-4, f"relative error {err:.2e}"
    return after.mlir


# ------------------------------------------------------------------ numerics: our reference


IDS = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["deepseek-v3-tiny", "deepseek-v2-tiny"])
def test_reference_model_logits_unchanged(name: str) -> None:
    mlir = check_pass_preserves_logits(builtin_model(name), IDS, cache_key=name)
    assert "mlacc.shared_merged = true" in mlir


def test_reference_model_options_logits_unchanged() -> None:
    """Non-default block size, no shared merge, placement: still the same logits."""
    name = "deepseek-v3-tiny"
    mlir = check_pass_preserves_logits(
        builtin_model(name),
        IDS,
        f"{PASS}{{block-size=3 merge-shared=false groups=2 replicate=2}}",
        cache_key=name,
    )
    assert '"moe.mlp"' in mlir and "mlacc.shared_merged = false" in mlir
    assert "mlacc.placement = " in mlir


# ------------------------------------------------------------------ numerics: Hugging Face


def hf_model(family: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The tiny random HF model of `family` (test/python/hf_models.py) and its input tokens."""
    pytest.importorskip("transformers")
    import hf_models

    model = hf_models.hf_v3() if family == "v3" else hf_models.hf_v2()
    return model, hf_models.tokens()


@pytest.mark.parametrize("family", ["v3", "v2"])
def test_hf_logits_unchanged(family: str) -> None:
    """V3: one shared expert (merged as expert 8); V2: two shared experts of the routed size,
    concatenated (I_s = 2I), merged as experts 8 and 9."""
    model, ids = hf_model(family)
    mlir = check_pass_preserves_logits(model, ids)
    assert "mlacc.shared_merged = true" in mlir
    assert "moe.mlp" not in mlir.split("moe.router", 1)[1].split("return", 1)[0]
    if family == "v2":
        assert "runs as expert(s) 8, 9" in mlir
        assert "torch.aten.permute" in mlir


# ------------------------------------------------------------------ failure paths


def test_bad_option_is_a_compile_error(tmp_path) -> None:
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.zeros((1, 3), dtype=torch.long)
    with pytest.raises(CompileError, match="block-size' must be positive"):
        mlacc.compile(
            model,
            (ids,),
            target="reference",
            pipeline=f"{PASS}{{block-size=0}}",
            repro_dir=tmp_path,
        )


def test_histogram_of_wrong_length_fails_at_the_experts_op(tmp_path) -> None:
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.zeros((1, 3), dtype=torch.long)
    with pytest.raises(CompileError, match=r"histogram has 3 entries, expected one per expert"):
        mlacc.compile(
            model,
            (ids,),
            target="reference",
            pipeline=f"{PASS}{{groups=2 histogram={{1,2,3}}}}",
            repro_dir=tmp_path,
        )
    assert (tmp_path / "mlacc-repro-moe-group-experts.mlir").exists()


# ------------------------------------------------------------------ placement (EPLB)


def test_uniform_load_balances_groups() -> None:
    p = place_experts(8, 4)
    assert p.loads == (2.0, 2.0, 2.0, 2.0)
    assert sorted(e for g in p.groups for e in g) == list(range(8))
    assert all(len(g) == 2 for g in p.groups)
    assert p.replicas == (1,) * 8


def test_histogram_packing_is_balanced() -> None:
    hist = [40, 10, 30, 20, 25, 15, 35, 5]
    p = place_experts(8, 2, hist)
    assert sum(p.loads) == sum(hist)
    assert all(len(g) == 4 for g in p.groups)
    assert max(p.loads) == 90  # perfect split of 180
    # the heaviest expert and the second heaviest land in different groups
    assert not any(0 in g and 6 in g for g in p.groups)


def test_hot_expert_is_replicated() -> None:
    hist = [100, 10, 10, 10, 10, 10, 10, 10]
    flat = place_experts(8, 2, hist)
    assert flat.max_load == 130
    rep = place_experts(8, 2, hist, max_replicas=2)
    assert rep.replicas[0] == 2
    assert sum(rep.replicas) == 10
    assert all(0 in g for g in rep.groups)  # one replica per group
    assert rep.max_load < flat.max_load
    assert rep.loads == (85.0, 85.0)


def test_replication_stops_when_it_does_not_help() -> None:
    """Uniform load: extra replicas cannot lower the maximum, so none are made."""
    assert place_experts(8, 2, max_replicas=4).replicas == (1,) * 8


def test_placement_is_deterministic() -> None:
    hist = [7, 7, 7, 3, 3, 3, 9, 1, 4, 4, 4, 4]
    runs = {place_experts(12, 3, hist, max_replicas=3) for _ in range(5)}
    assert len(runs) == 1


def test_replicate_and_pack_helpers() -> None:
    assert replicate([4.0, 1.0, 1.0], extra=2, max_per_expert=2) == [2, 2, 1]
    p = pack([4.0, 1.0, 1.0, 2.0], [1, 1, 1, 1], 2)
    assert p.groups == ((0, 2), (1, 3)) and p.loads == (5.0, 3.0)


def test_unfillable_groups_raise() -> None:
    with pytest.raises(PlacementError, match="do not fill 3 groups"):
        place_experts(8, 3)
    assert sum(len(g) for g in place_experts(8, 3, max_replicas=1).groups) == 9
    with pytest.raises(PlacementError, match="4 entries"):
        place_experts(8, 2, [1, 2, 3, 4])


# ------------------------------------------------------------------ MLIR input


def _vt(shape: str, dtype: str = "f32") -> str:
    return f"!torch.vtensor<[{shape}],{dtype}>"


def _layer(n: str = "?", shared: int = 16) -> str:
    """A softmax-routed layer (4 experts of I=8, D=16) plus a shared MLP of width `shared`."""
    x, w, i = _vt(f"{n},16"), _vt(f"{n},2"), _vt(f"{n},2", "si64")
    g, d, sg, sd = _vt("4,8,16"), _vt("4,16,8"), _vt(f"{shared},16"), _vt(f"16,{shared}")
    return f"""
func.func @forward(%x: {x}) -> {x} {{
  %gate = "mlacc.weight"() {{key = "gate"}} : () -> {_vt("4,16")}
  %weights, %indices = "moe.router"(%x, %gate) {{
      score_func = "softmax", top_k = 2 : i64, n_groups = 1 : i64, topk_group = 1 : i64,
      group_score = "max", route_scale = 1.5 : f64, norm_topk_prob = false,
      operandSegmentSizes = array<i32: 1, 1, 0>}} : ({x}, {_vt("4,16")}) -> ({w}, {i})
  %w_gate = "mlacc.weight"() {{key = "wg"}} : () -> {g}
  %w_up = "mlacc.weight"() {{key = "wu"}} : () -> {g}
  %w_down = "mlacc.weight"() {{key = "wd"}} : () -> {d}
  %routed = "moe.experts"(%x, %weights, %indices, %w_gate, %w_up, %w_down)
    : ({x}, {w}, {i}, {g}, {g}, {d}) -> {x}
  %s_gate = "mlacc.weight"() {{key = "sg"}} : () -> {sg}
  %s_up = "mlacc.weight"() {{key = "su"}} : () -> {sg}
  %s_down = "mlacc.weight"() {{key = "sd"}} : () -> {sd}
  %shared = "moe.mlp"(%x, %s_gate, %s_up, %s_down) : ({x}, {sg}, {sg}, {sd}) -> {x}
  %one = torch.constant.int 1
  %sum = torch.aten.add.Tensor %routed, %shared, %one : {x}, {x}, !torch.int -> {x}
  return %sum : {x}
}}
"""


def test_dynamic_token_count_with_two_shared_experts() -> None:
    """N dynamic: the shared columns' size comes from aten.size.int; I_s = 2I merges as two
    experts; numerics match the per-expert form."""
    g = torch.Generator().manual_seed(0)
    shapes = dict(
        gate=(4, 16),
        wg=(4, 8, 16),
        wu=(4, 8, 16),
        wd=(4, 16, 8),
        sg=(16, 16),
        su=(16, 16),
        sd=(16, 16),
    )
    weights = {k: torch.randn(s, generator=g) / 4 for k, s in shapes.items()}
    x = torch.randn(5, 16, generator=g)
    text = _layer()
    before = mlacc.compile(text, target="reference", pipeline="none", weights=weights)
    after = mlacc.compile(text, target="reference", pipeline=PASS, weights=weights)
    assert "torch.aten.size.int" in after.mlir and '"moe.experts"' not in after.mlir
    assert "mlacc.shared_merged = true" in after.mlir
    want, got = logits(before.load()(x)), logits(after.load()(x))
    assert rel_err(got, want) < 1e-5


def test_pass_twice_is_idempotent() -> None:
    from mlacc.dialects import make_context
    from mlacc.dialects._mlir import ir
    from mlacc.passes.pipeline import run_pipeline

    with make_context():
        module = ir.Module.parse(_layer("4"))
        run_pipeline(module, PASS, reproducer=False)
        once = str(module)
        run_pipeline(module, PASS, reproducer=False)
        assert str(module) == once
    assert "moe.experts" not in once


def test_builtin_tensors_are_rejected_at_the_op(tmp_path) -> None:
    """The fused weights are torch-dialect ops: builtin `tensor` operands fail with a located
    error naming the problem, and the module is left for the reproducer."""
    from mlacc.dialects import make_context
    from mlacc.dialects._mlir import ir
    from mlacc.passes.pipeline import PipelineError, run_pipeline

    text = """
func.func @f(%x: tensor<4x16xf32>, %w: tensor<4x2xf32>, %i: tensor<4x2xi64>,
             %g: tensor<4x8x16xf32>, %u: tensor<4x8x16xf32>, %d: tensor<4x16x8xf32>)
    -> tensor<4x16xf32> {
  %y = "moe.experts"(%x, %w, %i, %g, %u, %d)
    : (tensor<4x16xf32>, tensor<4x2xf32>, tensor<4x2xi64>, tensor<4x8x16xf32>,
       tensor<4x8x16xf32>, tensor<4x16x8xf32>) -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}
"""
    with make_context():
        module = ir.Module.parse(text)
        with pytest.raises(PipelineError) as info:
            run_pipeline(module, PASS, repro_dir=tmp_path, source_name="layer.mlir")
    err = info.value
    assert err.location.endswith(":5:8"), err.location  # the moe.experts op
    assert "expects !torch.vtensor operands" in err.message
    assert (tmp_path / "mlacc-repro-moe-group-experts.mlir").exists()
