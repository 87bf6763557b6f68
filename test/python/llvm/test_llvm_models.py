"""Real model structures compiled for `llvm` match the `reference` target: forward, prefill +
decode over the latent KV cache, generate; default and `--fp8` pipelines."""

from __future__ import annotations

import pytest
import torch
from model_runs import rel_err

MODELS = ["reference-v3", "reference-v2", "hf-v3"]


def prefill_then_decode(exe, tokens: torch.Tensor, prefill: int) -> torch.Tensor:
    """Logits of `prefill` over the first `prefill` tokens, then of `decode` token by token;
    the caches are the entry points' last outputs (one per layer)."""
    spec = exe.manifest["kv_cache"]
    caches = [torch.zeros(spec["shape"]) for _ in range(spec["layers"])]
    n = tokens.shape[1]
    pos = torch.arange(n).expand(tokens.shape[0], n)
    out = exe.run("prefill", tokens[:, :prefill], pos[:, :prefill].contiguous(), *caches)
    logits, caches = [out[0]], list(out[-spec["layers"] :])
    for t in range(prefill, n):
        out = exe.run("decode", tokens[:, t : t + 1], pos[:, t : t + 1].contiguous(), *caches)
        logits.append(out[0])
        caches = list(out[-spec["layers"] :])
    return torch.cat(logits, dim=1)


def _vocab(exe) -> int:
    return exe.entry_points["forward"]["outputs"][0]["shape"][-1]


@pytest.mark.parametrize("name", MODELS)
def test_forward_matches_reference(name: str, compiled) -> None:
    llvm, reference, _ = compiled(name)
    tokens = torch.randint(0, _vocab(llvm), (1, 16), generator=torch.Generator().manual_seed(0))
    got, want = llvm(tokens), reference(tokens)
    got = got.logits if hasattr(got, "logits") else got
    want = want.logits if hasattr(want, "logits") else want
    assert rel_err(got, want) < 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_prefill_then_decode_matches_reference(name: str, compiled) -> None:
    llvm, reference, _ = compiled(name)
    tokens = torch.randint(0, _vocab(llvm), (1, 20), generator=torch.Generator().manual_seed(1))
    got = prefill_then_decode(llvm, tokens, 16)
    assert rel_err(got, prefill_then_decode(reference, tokens, 16)) < 1e-4


def test_decode_updates_the_cache_in_place(compiled) -> None:
    llvm, _, art = compiled("reference-v3")
    cache = art.manifest["kv_cache"]
    caches = [
        torch.zeros(cache["batch"], cache["max_seq_len"], cache["entry"])
        for _ in range(cache["layers"])
    ]
    out = llvm.run("decode", torch.tensor([[3]]), torch.tensor([[5]]), *caches)
    assert all(o is c for o, c in zip(out[-len(caches) :], caches))
    assert all(c[0, 5].abs().sum() > 0 and c[0, 4].abs().sum() == 0 for c in caches)


def test_generate_matches_reference(compiled) -> None:
    llvm, reference, _ = compiled("reference-v3")
    ids = torch.randint(0, _vocab(llvm), (1, 5), generator=torch.Generator().manual_seed(2))
    assert torch.equal(llvm.generate(ids, 6), reference.generate(ids, 6))


def test_fp8_matches_reference(compiled) -> None:
    llvm, reference, art = compiled("reference-v3", True)
    assert "fp8.matmul" in art.mlir
    tokens = torch.randint(0, _vocab(llvm), (1, 20), generator=torch.Generator().manual_seed(3))
    assert rel_err(llvm(tokens[:, :16]), reference(tokens[:, :16])) < 1e-4
    got = prefill_then_decode(llvm, tokens, 16)
    assert rel_err(got, prefill_then_decode(reference, tokens, 16)) < 1e-4
