"""Checkpoint folders built on the spot: Hugging Face (``save_pretrained``, sharded, with the
index), the public DeepSeek-V3 inference layout, a DeepSeek-V3 FP8 checkpoint, a tokenizer."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mlacc.runtime.semantics.fp8 import E4M3_MAX

SHARD = "100KB"  # small shards: the tiny models spread over ~10 files
FP8_BLOCK = 128


def save_hf(model: torch.nn.Module, folder: Path) -> Path:
    """``model.save_pretrained`` in small shards (``model.safetensors.index.json``)."""
    model.save_pretrained(folder, max_shard_size=SHARD)
    return folder


def public_folder(model: torch.nn.Module, args: object, folder: Path) -> Path:
    """The public inference code's layout: ``config.json`` (``ModelArgs``) and one shard
    ``model0-mp1.safetensors`` in bf16, as ``convert.py --model-parallel 1`` writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    config = dataclasses.asdict(args) | {"dtype": "bf16"}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model0-mp1.safetensors"))
    return folder


def quantize_blocks(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3's FP8 weight format: e4m3 values and fp32 ``weight_scale_inv`` of shape
    ``ceil(out/128) x ceil(in/128)`` (``w ~= q * scale`` per block)."""
    n, k = w.shape
    rows, cols = math.ceil(n / FP8_BLOCK), math.ceil(k / FP8_BLOCK)
    padded = torch.zeros(rows * FP8_BLOCK, cols * FP8_BLOCK)
    padded[:n, :k] = w.float()
    blocks = padded.reshape(rows, FP8_BLOCK, cols, FP8_BLOCK)
    scale = blocks.abs().amax(dim=(1, 3)).clamp_min(1e-12) / E4M3_MAX
    q = (blocks / scale[:, None, :, None]).reshape(padded.shape)[:n, :k]
    return q.to(torch.float8_e4m3fn), scale


def fp8_folder(folder: Path) -> Path:
    """Turns a Hugging Face DeepSeek-V3 folder into its FP8 form, as the published checkpoint
    is: every 2-D projection (not the embedding, the LM head or the router) becomes e4m3 +
    ``weight_scale_inv``; ``config.json`` gets the ``quantization_config``."""
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    for name in sorted(set(index["weight_map"].values())):
        tensors = load_file(str(folder / name))
        out = {}
        for key, value in tensors.items():
            keep = value.dim() != 2 or "embed_tokens" in key or "lm_head" in key
            if keep or key.endswith("mlp.gate.weight"):
                out[key] = value
                continue
            out[key], out[f"{key}_scale_inv"] = quantize_blocks(value)
            index["weight_map"][f"{key}_scale_inv"] = name
        save_file(out, str(folder / name), metadata={"format": "pt"})
    index_path.write_text(json.dumps(index, indent=2))
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "fp8",
        "fmt": "e4m3",
        "activation_scheme": "dynamic",
        "weight_block_size": [FP8_BLOCK, FP8_BLOCK],
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


CORPUS = [
    "the latent cache holds one compressed vector per token",
    "experts are chosen per token by the router and the shared expert sees every token",
    "rotary position embeddings rotate pairs of channels by an angle that grows with position",
    "a compiler lowers the graph to kernels and the runtime runs them",
]


def tokenizer_folder(folder: Path, vocab_size: int) -> Path:
    """A BPE tokenizer (SentencePiece-style spaces) trained on a few sentences, saved with
    ``save_pretrained`` (``tokenizer.json`` + ``tokenizer_config.json``; ``<eos>`` ends a
    sequence, ``<unk>`` stands for characters it never saw)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<eos>"])
    backend.train_from_iterator(CORPUS, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>"
    )
    wrapped.save_pretrained(folder)
    return folder


def public_model_and_args(n_layers: int = 2, seed: int = 0):
    """The test copy of the public inference code's model (weights rounded to bf16, as its
    checkpoint stores them) and its ``ModelArgs``."""
    sys.path.insert(0, str(Path(__file__).parent / "frontend"))
    try:
        from public_model import Transformer, init_weights, tiny_args
    finally:
        sys.path.pop(0)
    torch.manual_seed(seed)
    args = tiny_args(n_layers=n_layers)
    model = init_weights(Transformer(args), seed).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return model, args
