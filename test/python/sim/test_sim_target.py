"""The `sim` target end to end: real DeepSeek structures compute what the reference and eager
PyTorch compute, `generate` accumulates each step's cost, timing-only runs at full size, and
bad devices and artifacts fail with one clear error."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
import torch
from model_runs import pass_test_models, prefill_then_decode, rel_err

import mlacc
from mlacc.model_input import builtin_model
from mlacc.runtime.artifact import Artifact, read_artifact
from mlacc.runtime.errors import ArtifactError, CompileError, InputError
from mlacc.runtime.synthetic import synthetic_inputs

MODELS = pass_test_models()


def logits(out) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else (out[0] if isinstance(out, tuple) else out)


@pytest.mark.parametrize("name", list(MODELS))
def test_numerics_match_reference_and_eager(name: str) -> None:
    """forward, prefill + decode and generate: bit-identical to the reference target (the
    same semantics run), and within 1e-4 of eager PyTorch."""
    model = MODELS[name]
    hf = name.startswith("hf")
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(3))
    prompt = ids[:, :5]
    kwargs = {"use_cache": False} if hf else None
    kw = kwargs or {}
    with torch.no_grad():
        eager = logits(model(ids, **kw))
        sim = mlacc.compile(model, (prompt,), kwargs, target="sim", cache_len=16).load()
        ref = mlacc.compile(model, (prompt,), kwargs, target="reference", cache_len=16).load()
        got = logits(sim(prompt, **kw))
        torch.testing.assert_close(got, logits(ref(prompt, **kw)), rtol=0, atol=0)
        assert rel_err(got, logits(model(prompt, **kw))) < 1e-4
        stepped = prefill_then_decode(sim, ids, prefill=5)
        assert rel_err(stepped, eager) < 1e-4
        assert torch.equal(sim.generate(prompt, 4), ref.generate(prompt, 4))
    entries = [c.entry for c in sim.report().calls]
    assert entries[:3] == ["forward", "prefill", "decode"]


def test_fp8_is_bit_faithful() -> None:
    """FP8 rounding (e4m3 values, block scales) is emulated exactly as the reference does."""
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.randint(0, 64, (1, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sim = mlacc.compile(model, (ids,), target="sim", fp8=True, device="h100-like")
        ref = mlacc.compile(model, (ids,), target="reference", fp8=True)
        torch.testing.assert_close(logits(sim.load()(ids)), logits(ref.load()(ids)), rtol=0, atol=0)
    assert '"dtype = "fp8"' not in sim.mlir and 'dtype = "fp8"' in sim.mlir  # FP8 tensor rate


def test_generate_accumulates_each_steps_cost() -> None:
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    exe = mlacc.compile(model, (ids,), target="sim", cache_len=64, device="h100-like").load()
    exe.generate(ids, 6)
    report = exe.report()
    assert [c.entry for c in report.calls] == ["prefill"] + ["decode"] * 5
    starts = [c.start for c in report.calls]
    assert starts == sorted(starts) and starts[0] == 0
    assert report.cycles == pytest.approx(sum(c.cycles for c in report.calls))
    assert report.tokens_per_second() > 0 and report.time_per_token() > 0
    # decode attention streams the cache up to the current position (not the whole 64-token
    # cache): its work and bytes grow step by step
    attention = [[k for k in c.kernels if k.op == "mla.latent_attention"] for c in report.calls[1:]]
    flops = [sum(k.flops for k in ks) for ks in attention]
    hbm = [sum(k.bytes["hbm"] for k in ks) for ks in attention]
    assert all(a < b for a, b in pairwise(flops)) and all(a < b for a, b in pairwise(hbm))
    assert flops[0] == pytest.approx(flops[-1] * 9 / 13)  # contexts 9 and 13
    assert report.kv_cache["values_per_token_per_layer"] == 40
    assert {k.layer for k in report.calls[1].kernels} >= {0, 1, 2}
    # only the embedding, the final norm and the LM head (weights outside the layers) are not
    # in a layer; attention, cache writes and residual adds belong to theirs
    outside = {k.op for k in report.calls[1].kernels if k.layer is None}
    assert outside <= {"torch.aten.embedding", "mla.rms_norm", "torch.aten.linear"}, outside


def test_timing_only_runs_without_data(tmp_path) -> None:
    model = builtin_model("deepseek-v3-tiny")
    ids = torch.zeros(1, 8, dtype=torch.int64)
    art = mlacc.compile(model, (ids,), target="sim", timing_only=True, cache_len=16)
    assert art.weights == {} or all(k.startswith("__constant") for k in art.weights)
    exe = mlacc.load(art.save(tmp_path / "t.mlacc"))
    out = exe(ids)
    assert logits(out).device.type == "meta"
    report = exe.report()
    assert report.timing_only and report.calls[0].kernels


def test_full_size_deepseek_v3_decode_timing_only() -> None:
    """The real 671B shapes (meta weights): one decode step of all 61 layers at batch 64 and
    context 4096 (the benchmark times it; here it must simply work and be complete)."""
    art = mlacc.compile(
        "deepseek-v3",
        (torch.zeros(64, 16, dtype=torch.int64, device="meta"),),
        target="sim",
        timing_only=True,
        cache_len=4096,
    )
    exe = art.load()
    specs = exe.entry_points["decode"]["inputs"]
    exe.run(
        "decode",
        *synthetic_inputs(specs, meta=True),
    )
    report = exe.report()
    layers = {row["layer"] for row in report.by_layer()}
    assert set(range(61)) <= layers
    totals = report.totals()
    # the active experts' weights cross HBM: 58 MoE layers x 256 experts x 3 x 7168 x 2048 x 2 B
    # x ~86% active (512 routed tokens spread over 256 experts)
    assert totals.bytes["hbm"] > 58 * 256 * 3 * 7168 * 2048 * 2 * 0.8
    assert report.kv_cache["values_per_token_per_layer"] == 576
    assert report.tokens_per_second() > 0


# --------------------------------------------------------------------------- failure paths


def _tiny(**options) -> Artifact:
    model = builtin_model("deepseek-v3-tiny")
    return mlacc.compile(model, (torch.zeros(1, 4, dtype=torch.int64),), target="sim", **options)


def test_unknown_device(tmp_path) -> None:
    with pytest.raises(InputError, match="unknown device 'tpu-v9'"):
        _tiny(device="tpu-v9", repro_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # the input's fault: no reproducer


def test_invalid_device_file_names_the_key(tmp_path) -> None:
    from pathlib import Path

    preset = Path(mlacc.backends.sim.lowering.PRESETS) / "edge-npu.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text(preset.read_text().replace("lanes = ", "lanes = -"))
    with pytest.raises(InputError, match=r"key 'core\.vector\.lanes' must be a positive integer"):
        _tiny(device=str(bad))


def test_fp8_on_a_device_without_fp8(tmp_path) -> None:
    with pytest.raises(CompileError, match="has no fp8 tensor-engine rate"):
        _tiny(device="edge-npu", fp8=True, timing_only=True, repro_dir=tmp_path)
    assert (tmp_path / "mlacc-repro-sim-lowering.mlir").is_file()  # a lowering failure
    art = _tiny(device="edge-npu", fp8=True, timing_only=True, fp8_fallback="bf16")
    assert "no FP8 on edge-npu: runs at the bf16 rate" in art.mlir


def test_unknown_option() -> None:
    with pytest.raises(InputError, match="target 'sim' has no option 'cores'"):
        _tiny(cores=4)


def _rewrite(art: Artifact, tmp_path, name: str, data: bytes):
    payload = dict(art.payload)
    payload[name] = data
    path = tmp_path / "x.mlacc"
    Artifact(manifest=art.manifest, mlir=art.mlir, weights=art.weights, payload=payload).save(path)
    return path


def test_corrupt_device_in_artifact(tmp_path) -> None:
    art = _tiny(timing_only=True)
    path = _rewrite(art, tmp_path, "device.toml", b"clock_ghz = [")
    with pytest.raises(ArtifactError, match="device description is invalid"):
        mlacc.load(path)


def test_malformed_schedule_in_artifact(tmp_path) -> None:
    art = _tiny(timing_only=True)
    plan = json.loads(art.payload["plan.json"])
    step = next(s for f in plan["functions"].values() for s in f["steps"] if s.get("cost"))
    step["cost"]["tiles"] = 0
    path = _rewrite(art, tmp_path, "plan.json", json.dumps(plan).encode())
    with pytest.raises(ArtifactError, match="malformed kernel schedule: kernel schedule 'tiles'"):
        read_artifact(path) and mlacc.load(path)


def test_expert_placement_reaches_the_expert_kernels() -> None:
    """A skewed routing histogram placed on 4 groups makes the busiest group slower; the
    placement survives `--quantize-fp8` (its FP8 grouped matmuls carry it too)."""
    from mlacc.compiler import DEFAULT_PIPELINE

    model = builtin_model("deepseek-v3-tiny")
    ids = torch.zeros(2, 8, dtype=torch.int64)
    skewed = "moe-group-experts{groups=4 histogram={10,1,1,1,1,1,1,1}}"

    def expert_cycles(pipeline: str, fp8: bool) -> tuple[float, str]:
        art = mlacc.compile(
            model,
            (ids,),
            target="sim",
            pipeline=pipeline,
            fp8=fp8,
            timing_only=True,
            cache_len=16,
            device="h100-like",
        )
        exe = art.load()
        exe(ids)
        grouped = [k for k in exe.report().calls[0].kernels if "grouped_matmul" in k.op]
        return sum(k.cycles for k in grouped), art.mlir

    for fp8 in (False, True):
        uniform, _ = expert_cycles(DEFAULT_PIPELINE, fp8)
        placed, mlir = expert_cycles(DEFAULT_PIPELINE.replace("moe-group-experts", skewed), fp8)
        assert "expert placement: busiest core has 2.59x the mean load" in mlir
        assert placed > uniform


def test_bad_options_fail_at_compile(tmp_path) -> None:
    for options, message in (
        ({"buffers": 0}, "option 'buffers' must be an integer >= 1, got 0"),
        ({"buffers": 2.5}, "option 'buffers' must be an integer >= 1, got 2.5"),
        ({"fp8_fallback": "int4"}, "option 'fp8-fallback' must be one of"),
    ):
        with pytest.raises(InputError, match=message):
            _tiny(timing_only=True, repro_dir=tmp_path, **options)
    assert not list(tmp_path.iterdir())


def test_lowered_module_is_not_relowered_for_another_device(tmp_path) -> None:
    art = _tiny(timing_only=True, device="datacenter-npu")
    with pytest.raises(CompileError, match="already lowered for device 'datacenter-npu'"):
        mlacc.compile(
            art.mlir,
            target="sim",
            pipeline="none",
            timing_only=True,
            device="edge-npu",
            repro_dir=tmp_path,
        )
    # the same device: lowering again changes nothing
    again = mlacc.compile(art.mlir, target="sim", pipeline="none", timing_only=True)
    assert again.mlir.count('"accel.kernel"') == art.mlir.count('"accel.kernel"')


def test_captured_whole_layer_ops_need_the_default_pipeline() -> None:
    from mlacc.runtime.errors import UnsupportedOpError

    with pytest.raises(UnsupportedOpError, match=r"op 'mla\.attention' is not supported by target"):
        _tiny(timing_only=True, pipeline="none")


def test_schedule_beyond_the_device_is_an_artifact_error(tmp_path) -> None:
    art = _tiny(timing_only=True, device="edge-npu")
    plan = json.loads(art.payload["plan.json"])
    step = next(s for f in plan["functions"].values() for s in f["steps"] if s.get("cost"))
    step["cost"]["cores"] = 64
    path = _rewrite(art, tmp_path, "plan.json", json.dumps(plan).encode())
    with pytest.raises(ArtifactError, match="uses 1 chip\\(s\\) x 64 cores; the device has 1 x 2"):
        mlacc.load(path)


def test_multi_chip_moe_moves_routed_rows_over_the_links() -> None:
    """On 8 chips, experts are spread over all of them: dispatch and combine cross the links
    even for a single sequence (whose other kernels run on one chip)."""
    exe = _tiny(timing_only=True, device="datacenter-npu").load()
    exe.run("decode", *synthetic_inputs(exe.entry_points["decode"]["inputs"], meta=True))
    kernels = exe.report().calls[0].kernels
    for op in ("moe.dispatch", "moe.combine"):
        assert all(k.bytes["link"] > 0 and k.busy["link"] > 0 for k in kernels if k.op == op)
    assert exe.report().totals().bytes["link"] > 0
