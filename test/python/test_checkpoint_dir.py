"""Checkpoint folders in (`mlacc compile DIR`), FP8 checkpoints, and text out (`mlacc generate`).

Tolerances: float32 folders match eager to 1e-4 (the compiled graph reorders sums); the public
layout's bf16 folder to 3% relative (bf16 activations, eager runs in float32 on the same
bf16-rounded weights); the FP8 folder to 1e-4 of the eager model whose quantized linears
compute ``dequant(quant(x)) @ dequant(W)^T`` from the checkpoint's own blocks.
"""

from __future__ import annotations

import copy
import json
import weakref
from pathlib import Path

import pytest
import torch
from checkpoints import (
    fp8_folder,
    public_folder,
    public_model_and_args,
    save_hf,
    tokenizer_folder,
)
from hf_models import hf_v2, hf_v3, tokens
from model_runs import prefill_then_decode, rel_err
from safetensors.torch import load_file, save_file
from tool_helpers import assert_one_error_line, run_tool

import mlacc
from mlacc.frontend.models import DeepSeekModel, config_from_hf, load_checkpoint
from mlacc.frontend.models.checkpoint import CheckpointReader
from mlacc.runtime.errors import CompileError
from mlacc.runtime.semantics.fp8 import dequantize, quantize

IDS = tokens(batch=2, seq=10)


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """family -> (eager model, its save_pretrained folder in ~10 shards)."""
    root = tmp_path_factory.mktemp("hf")
    return {
        name: (model, save_hf(model, root / name))
        for name, model in (("v3", hf_v3()), ("v2", hf_v2()))
    }


def _eager(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids, use_cache=False).logits


# ------------------------------------------------------------------ folders match eager


@pytest.mark.parametrize("family", ["v3", "v2"])
def test_hf_folder_matches_eager(hf_folders, family: str) -> None:
    """A sharded save_pretrained folder compiles from its path: forward, and prefill then
    decode over the latent cache, match the eager model."""
    model, folder = hf_folders[family]
    assert len(list(folder.glob("*.safetensors"))) > 5
    chunk = IDS[:, :6]  # the prefill chunk; the other 4 tokens are decoded one by one
    exe = mlacc.compile(str(folder), (chunk,), target="reference").load()
    want = _eager(model, IDS)
    torch.testing.assert_close(exe(chunk), want[:, :6], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(prefill_then_decode(exe, IDS, 6), want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["v3", "v2"])
def test_hf_folder_on_sim(hf_folders, family: str) -> None:
    """The sim target runs a folder functionally and reports its cost."""
    model, folder = hf_folders[family]
    exe = mlacc.compile(folder, (IDS,), target="sim", device="h100-like").load()
    torch.testing.assert_close(exe(IDS), _eager(model, IDS), atol=1e-4, rtol=1e-4)
    assert exe.report().cycles > 0


def test_public_layout_folder(tmp_path: Path) -> None:
    """The public inference code's config.json + converted shard; its forward is the last
    position's logits."""
    model, args = public_model_and_args()
    folder = public_folder(model, args, tmp_path / "public")
    ids = IDS % args.vocab_size
    got = mlacc.compile(folder, (ids,), target="reference").load()(ids)
    assert got.dtype == torch.bfloat16  # ModelArgs.dtype "bf16"
    with torch.no_grad():
        want = model(ids, 0)
    assert rel_err(got[:, -1].float(), want) < 3e-2


# ------------------------------------------------------------------ streaming, timing only


def test_weights_stream_one_tensor_at_a_time(hf_folders, tmp_path, monkeypatch) -> None:
    """Writing the artifact reads each weight when it is reached and drops it once written:
    the most bytes read from the checkpoint and alive at once stay at one stacked tensor's
    worth, a small part of the model."""
    live = {"now": 0, "peak": 0, "total": 0}
    read = CheckpointReader.read

    def counted(self, target, dtype=None):
        tensor = read(self, target, dtype)
        size = tensor.numel() * tensor.element_size()
        live["now"] += size
        live["total"] += size
        live["peak"] = max(live["peak"], live["now"])
        weakref.finalize(tensor, lambda: live.__setitem__("now", live["now"] - size))
        return tensor

    monkeypatch.setattr(CheckpointReader, "read", counted)
    model, folder = hf_folders["v3"]
    art = mlacc.compile(folder, (IDS,), target="reference")
    assert live["total"] == 0  # compiling read nothing
    path = art.save(tmp_path / "m.mlacc")
    largest = max(p.numel() * p.element_size() for p in model.parameters())
    expert = max(p.numel() * p.element_size() for n, p in model.named_parameters() if "expert" in n)
    stacked = model.config.n_routed_experts * expert  # a layer's experts, stacked
    assert live["peak"] <= 2 * max(largest, stacked)
    assert live["total"] >= 8 * live["peak"]  # measured: 74 KB alive at most of 779 KB read
    torch.testing.assert_close(
        mlacc.runtime.load(path)(IDS), _eager(model, IDS), atol=1e-4, rtol=1e-4
    )


def test_timing_only_reads_config_json_only(hf_folders, tmp_path: Path) -> None:
    """--timing-only needs config.json alone; a real compile of the same folder cannot."""
    _, folder = hf_folders["v3"]
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((folder / "config.json").read_text())
    art = mlacc.compile(bare, (IDS,), target="sim", timing_only=True)
    assert art.manifest["weights"]["present"] is False
    with pytest.raises(CompileError, match=r"no \.safetensors files"):
        mlacc.compile(bare, (IDS,), target="sim")


# ------------------------------------------------------------------ bad folders


def _broken(src: Path, dst: Path, edit) -> Path:
    """A copy of `src` with `edit(dst)` applied."""
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    edit(dst)
    return dst


def _rewrite_shard(folder: Path, change) -> str:
    """Applies `change(tensors)` to the shard holding the first attention weight."""
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    name = index["weight_map"]["model.layers.0.self_attn.o_proj.weight"]
    tensors = load_file(str(folder / name))
    change(tensors)
    save_file(tensors, str(folder / name))
    return name


def _missing_shard(folder: Path) -> None:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    (folder / index["weight_map"]["model.norm.weight"]).unlink()


def _extra_key(folder: Path) -> None:
    _rewrite_shard(
        folder,
        lambda t: t.__setitem__(
            "model.layers.0.self_attn.extra", t["model.layers.0.self_attn.o_proj.weight"].clone()
        ),
    )


def _wrong_shape(folder: Path) -> None:
    key = "model.layers.0.self_attn.o_proj.weight"
    _rewrite_shard(folder, lambda t: t.__setitem__(key, t[key][:, :-1].contiguous()))


def _int_dtype(folder: Path) -> None:
    key = "model.layers.0.self_attn.o_proj.weight"
    _rewrite_shard(folder, lambda t: t.__setitem__(key, t[key].to(torch.int32)))


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (_missing_shard, ["names missing file(s)", ".safetensors"]),
        (_extra_key, ["unknown tensor", "model.layers.0.self_attn.extra", ".safetensors)"]),
        (_wrong_shape, ["model.layers.0.self_attn.o_proj.weight", ".safetensors)", "shape"]),
        (_int_dtype, ["model.layers.0.self_attn.o_proj.weight", "I32", "floating point"]),
    ],
    ids=["missing-shard", "unexpected-key", "shape-mismatch", "int-dtype"],
)
def test_bad_folder_is_one_error_line(hf_folders, tmp_path: Path, edit, needles) -> None:
    """One `mlacc: error:` line naming the tensor and its file; no artifact written."""
    folder = _broken(hf_folders["v3"][1], tmp_path / "broken", edit)
    out = tmp_path / "m.mlacc"
    proc = run_tool("mlacc", "compile", str(folder), "-o", str(out), "--target", "reference")
    assert_one_error_line(proc, "mlacc", *needles)
    assert not out.exists()


def test_not_a_deepseek_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CompileError, match=r"model_type 'llama' is not a DeepSeek model"):
        mlacc.compile(tmp_path, target="reference", timing_only=True)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CompileError, match=r"no config\.json"):
        mlacc.compile(tmp_path, target="reference", timing_only=True)


# ------------------------------------------------------------------ FP8 checkpoints


@pytest.fixture(scope="module")
def fp8_checkpoint(tmp_path_factory):
    """A DeepSeek-V3 FP8 folder (projections 128x128-block e4m3 + weight_scale_inv) of a model
    wide enough for several blocks per weight, its bf16 twin, and the eager model."""
    over = dict(
        hidden_size=256,
        moe_intermediate_size=128,
        intermediate_size=384,
        q_lora_rank=128,
        kv_lora_rank=64,
    )
    model = hf_v3(**over)
    root = tmp_path_factory.mktemp("fp8")
    fp8 = fp8_folder(save_hf(model, root / "fp8"))
    bf16 = save_hf(copy.deepcopy(model).to(torch.bfloat16), root / "bf16")
    return model, fp8, bf16


def test_fp8_checkpoint_blocks_are_stored_bit_identical(fp8_checkpoint) -> None:
    """The artifact's e4m3 weights and scales are the checkpoint's bits (no dequantize and
    re-quantize), and its weight bytes are about half of the bf16 folder's artifact."""
    _, fp8, bf16 = fp8_checkpoint
    art = mlacc.compile(fp8, (IDS,), target="reference")
    assert art.manifest["fp8_weights"]["requantized"] == []
    assert art.manifest["fp8_weights"]["from_checkpoint"] > 0
    stored = {}
    for f in fp8.glob("*.safetensors"):
        stored.update(load_file(str(f)))
    ours = "layers.0.attn.wo.weight"
    theirs = "model.layers.0.self_attn.o_proj.weight"
    weights = dict(art.weights)
    assert torch.equal(weights[ours].view(torch.uint8), stored[theirs].view(torch.uint8))
    assert torch.equal(weights[f"{ours}_scale_inv"], stored[f"{theirs}_scale_inv"])
    experts = next(k for k in weights if k.startswith("layers.1.ffn.{") and "scale" not in k)
    assert weights[experts].dtype == torch.float8_e4m3fn
    plain = mlacc.compile(bf16, (IDS,), target="reference")
    ratio = art.manifest["weights"]["bytes"] / plain.manifest["weights"]["bytes"]
    assert ratio < 0.62  # the embedding and the LM head stay in bf16


def _fake_quant_linears(model: torch.nn.Module, keys: set[str]) -> None:
    """Each linear whose HF name is in `keys` computes dequant(quant(x)) @ W^T, per token per
    128 channels (W: the checkpoint's blocks dequantized by `load_checkpoint`)."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and f"{name}.weight" in keys:

            def forward(x, w=module.weight):
                q, s = quantize(x, block_shape=[128], pow2_scale=False)
                return dequantize(q, s, block_shape=[128], out_dtype="float32") @ w.T

            module.forward = forward


def test_fp8_checkpoint_outputs_equal_dequantize_then_matmul(fp8_checkpoint) -> None:
    """The compiled FP8 model computes what the reference model does with the checkpoint's
    blocks dequantized and each FP8 linear's activations quantized as the fp8 ops do."""
    hf, fp8, _ = fp8_checkpoint
    config = config_from_hf(json.loads((fp8 / "config.json").read_text())).replace(n_mtp_layers=0)
    eager = DeepSeekModel(config).eval()
    load_checkpoint(eager, fp8)
    art = mlacc.compile(fp8, (IDS,), target="reference")
    quantized = {k.removesuffix("_scale_inv") for k in art.weights if k.endswith("_scale_inv")}
    direct = {k for k in quantized if "{" not in k}
    grouped = any("{" in k for k in quantized)
    expert_keys = {n for n, _ in eager.named_parameters() if ".experts." in n or ".shared_" in n}
    _fake_quant_linears(eager, direct | (expert_keys if grouped else set()))
    with torch.no_grad():
        want = eager(IDS)
    torch.testing.assert_close(art.load()(IDS), want, atol=1e-4, rtol=1e-4)
    assert rel_err(want, _eager(hf, IDS)) > 1e-3  # quantizing activations did change things


# ------------------------------------------------------------------ text in, text out


def test_generate_streams_text(hf_folders, tmp_path: Path) -> None:
    """`mlacc generate` encodes the prompt with a local tokenizer, streams the continuation
    and prints tokens/s; the Python API's streamed pieces add up to its text, and its tokens
    are the greedy tokens of `generate`."""
    from mlacc.runtime.text import generate_text, load_tokenizer

    _, folder = hf_folders["v3"]
    tok_dir = tokenizer_folder(tmp_path / "tok", vocab_size=120)
    out = tmp_path / "m.mlacc"
    assert (
        run_tool(
            "mlacc", "compile", str(folder), "-o", str(out), "--target", "reference"
        ).returncode
        == 0
    )
    prompt = "the router chooses"
    proc = run_tool(
        "mlacc",
        "generate",
        str(out),
        "--prompt",
        prompt,
        "--tokenizer",
        str(tok_dir),
        "--max-new-tokens",
        "6",
        "--ignore-eos",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(prompt) and len(proc.stdout.strip()) > len(prompt)
    assert "6 tokens in" in proc.stderr and "tokens/s" in proc.stderr

    exe = mlacc.runtime.load(out)
    tokenizer = load_tokenizer(tok_dir)
    pieces: list[str] = []
    result = generate_text(exe, tokenizer, prompt, 6, on_text=pieces.append, stop_at_eos=False)
    ids = tokenizer.encode(prompt)
    assert "".join(pieces) == result.text
    assert prompt + result.text == tokenizer.decode(ids + result.new_tokens)
    assert exe.generate(torch.tensor([ids]), 6)[0, len(ids) :].tolist() == result.new_tokens
    assert proc.stdout.strip() == (prompt + result.text).strip()


def test_generate_without_a_tokenizer_is_one_error_line(tmp_path: Path) -> None:
    proc = run_tool(
        "mlacc",
        "generate",
        str(tmp_path / "m.mlacc"),
        "--prompt",
        "hi",
        "--tokenizer",
        str(tmp_path),
    )
    assert_one_error_line(proc, "mlacc", "no tokenizer.json")


def test_a_folders_tokenizer_travels_in_the_artifact(hf_folders, tmp_path: Path) -> None:
    """A checkpoint folder's tokenizer is embedded at compile: `mlacc generate` needs no
    --tokenizer and says what the folder's own tokenizer says; its files are checked on read."""
    import shutil
    import zipfile

    _, folder = hf_folders["v3"]
    with_tok = tmp_path / "ckpt"
    shutil.copytree(folder, with_tok)
    tokenizer_folder(with_tok, vocab_size=120)
    out = tmp_path / "m.mlacc"
    proc = run_tool("mlacc", "compile", str(with_tok), "-o", str(out), "--target", "reference")
    assert proc.returncode == 0, proc.stderr
    assert sorted(mlacc.runtime.load(out).artifact.tokenizer) == [
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    common = ("--prompt", "the router chooses", "--max-new-tokens", "4", "--ignore-eos")
    embedded = run_tool("mlacc", "generate", str(out), *common)
    given = run_tool("mlacc", "generate", str(out), *common, "--tokenizer", str(with_tok))
    assert embedded.returncode == 0, embedded.stderr
    assert embedded.stdout == given.stdout and len(embedded.stdout.strip()) > 18

    broken = tmp_path / "broken.mlacc"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            if info.filename != "tokenizer/tokenizer.json":
                dst.writestr(info, src.read(info))
    proc = run_tool("mlacc", "generate", str(broken), *common)
    assert_one_error_line(proc, "mlacc", "tokenizer file 'tokenizer.json' listed")


def test_generate_without_any_tokenizer_is_one_error_line(hf_folders, tmp_path: Path) -> None:
    _, folder = hf_folders["v2"]
    out = tmp_path / "m.mlacc"
    mlacc.compile(str(folder), target="reference").save(out)
    proc = run_tool("mlacc", "generate", str(out), "--prompt", "hi")
    assert_one_error_line(proc, "mlacc", "carries no tokenizer")
    bad = tmp_path / "tok"
    bad.mkdir()
    (bad / "tokenizer.json").write_text("{not json")
    proc = run_tool("mlacc", "compile", str(folder), "-o", str(out), "--tokenizer", str(bad))
    assert_one_error_line(proc, "mlacc", "tokenizer.json is not a tokenizer")


def test_cli_compiles_an_fp8_folder(fp8_checkpoint, tmp_path: Path) -> None:
    """`mlacc compile DIR` on an FP8 checkpoint (no example inputs given: the default ones
    must run, for the FP8 accuracy report) reports its e4m3 bytes."""
    _, fp8, _ = fp8_checkpoint
    out = tmp_path / "m.mlacc"
    proc = run_tool(
        "mlacc", "compile", str(fp8), "-o", str(out), "--target", "reference", "--report"
    )
    assert proc.returncode == 0, proc.stderr
    assert "float8_e4m3fn" in proc.stdout
    manifest = mlacc.runtime.load(out).manifest
    assert manifest["fp8_report"]["cosine"] > 0.9


def test_public_layout_fp8_checkpoint(tmp_path: Path) -> None:
    """The public layout's FP8 form (ModelArgs dtype "fp8", ``<module>.scale`` beside each
    e4m3 ``<module>.weight``) compiles with its blocks taken as stored. Only the fused
    gate/up weights are re-quantized, and reported: the tiny experts' 16 rows end inside a
    128-row block, so concatenating them mixes blocks (V3's 2048 rows do not)."""
    from checkpoints import quantize_blocks

    model, args = public_model_and_args()
    folder = public_folder(model, args, tmp_path / "public")
    shard = folder / "model0-mp1.safetensors"
    tensors = load_file(str(shard))
    for key in [k for k, v in tensors.items() if v.dim() == 2]:
        if key.startswith(("embed", "head")) or key.endswith("gate.weight"):
            continue
        tensors[key], tensors[key.removesuffix(".weight") + ".scale"] = quantize_blocks(
            tensors[key]
        )
    save_file(tensors, str(shard))
    config = json.loads((folder / "config.json").read_text()) | {"dtype": "fp8"}
    (folder / "config.json").write_text(json.dumps(config))
    ids = IDS % args.vocab_size
    art = mlacc.compile(folder, (ids,), target="reference")
    report = art.manifest["fp8_weights"]
    assert report["from_checkpoint"] > 0
    assert report["requantized"] and all("{" in k for k in report["requantized"])
    stored = dict(art.weights)["layers.0.attn.wq_a.weight"]
    assert torch.equal(
        stored.view(torch.uint8), tensors["layers.0.attn.wq_a.weight"].view(torch.uint8)
    )
    assert torch.isfinite(art.load()(ids).float()).all()
