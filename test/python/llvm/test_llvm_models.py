"""Real model structures compiled for `llvm` match the `reference` target: forward, prefill +
decode over the latent KV cache (contiguous and paged), generate (ragged batches), Hugging
Face attention masks; default and `--fp8` pipelines (FP8 against eager at the accuracy bar)."""

from __future__ import annotations

import pytest
import torch
from model_runs import rel_err

import mlacc
from mlacc.fp8_report import compare

MODELS = ["reference-v3", "reference-v2", "hf-v3", "hf-v2", "public"]
FP8_BAR = 0.99  # logits cosine of the FP8 pipeline against eager fp32 on a trained model


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


def test_paged_ragged_generate_matches_reference(compiled) -> None:
    """Two prompts of different lengths, a paged cache of 4-slot blocks, chunked prefill."""
    llvm, reference, art = compiled("reference-v3", batch=2, block_size=4)
    assert art.manifest["kv_cache"]["layout"] == "paged"
    ids = torch.randint(0, _vocab(llvm), (2, 21), generator=torch.Generator().manual_seed(4))
    mask = torch.ones(2, 21, dtype=torch.int64)
    mask[1, :9] = 0  # left padding: a 12-token prompt beside a 21-token one
    want = reference.generate(ids, 7, attention_mask=mask)
    assert torch.equal(llvm.generate(ids, 7, attention_mask=mask), want)


def test_hf_forward_honors_the_attention_mask() -> None:
    """HF `attention_mask` becomes `key_mask` of the attention: left and right padding."""
    from hf_models import hf_v3, tokens

    model = hf_v3()
    ids = tokens(3, 10, seed=4)
    mask = torch.ones(3, 10, dtype=torch.int64)
    with torch.no_grad():
        exe = mlacc.compile(
            model, (ids,), {"attention_mask": mask}, target="llvm", cache_len=32, opt_level=0
        ).load()
    mask[0, :3] = 0
    mask[1, 7:] = 0
    got = exe(ids, attention_mask=mask).logits
    with torch.no_grad():
        want = model(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["trained-v3", "trained-hf-v2"])
def test_fp8_on_a_trained_model_clears_the_accuracy_bar(name: str, compiled) -> None:
    """FP8 weights and activations against the eager fp32 model, held-out text of its language."""
    from trained_models import held_out, trained_hf_v2, trained_reference_v3

    trained = {"trained-v3": trained_reference_v3, "trained-hf-v2": trained_hf_v2}
    model = trained[name]()  # trained once per session (cached)
    llvm, _, art = compiled(name, True, batch=4)
    assert "fp8.grouped_matmul" in art.mlir
    ids = held_out(model.config.vocab_size)[:, :16]
    with torch.no_grad():
        want = model(ids)
    got = llvm(ids)
    want = want.logits if hasattr(want, "logits") else want
    got = got.logits if hasattr(got, "logits") else got
    assert compare(got, want)["cosine"] > FP8_BAR


def test_copy_mode_and_aliased_caches(compiled) -> None:
    """`in_place_cache = False` leaves the caller's caches untouched (the code updates copies);
    one buffer passed as two layers' caches is refused before the code runs."""
    from mlacc.runtime.errors import InputError

    llvm, _, art = compiled("reference-v3")
    spec = art.manifest["kv_cache"]
    caches = [torch.zeros(spec["shape"]) for _ in range(spec["layers"])]
    assert llvm.in_place_cache
    llvm.in_place_cache = False
    try:
        out = llvm.run("decode", torch.tensor([[3]]), torch.tensor([[5]]), *caches)
    finally:
        llvm.in_place_cache = True
    assert all(c.abs().sum() == 0 for c in caches)
    assert all(o[0, 5].abs().sum() > 0 for o in out[-len(caches) :])
    shared = [caches[0]] * len(caches)
    with pytest.raises(InputError, match="share memory"):
        llvm.run("decode", torch.tensor([[3]]), torch.tensor([[5]]), *shared)


def test_artifact_stores_only_the_weights_its_code_reads(compiled) -> None:
    """Weights the code reads in a prepared form (fused gate/up experts, ...) are not stored
    a second time as they came from the model."""
    import json

    _, _, art = compiled("reference-v3")
    abi = json.loads(art.payload["llvm.json"])
    reads = {w["key"] for e in abi["entry_points"].values() for w in e["weights"]}
    assert set(art.weights) == reads
    assert not any(k.startswith("layers.1.ffn.experts.") for k in art.weights)


NO_MLIR = """
import sys, torch
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch_mlir", "mlir"):
            raise ImportError(f"{name} is blocked in this process")
sys.meta_path.insert(0, Block())
import mlacc.runtime
exe = mlacc.runtime.load(sys.argv[1])
ids = torch.tensor([[5, 9, 2, 7, 1]])
print(exe.generate(ids, 6).tolist())
assert not [m for m in sys.modules if m.startswith(("torch_mlir", "mlir", "mlacc.dialects"))]
"""


def test_artifact_runs_where_mlir_cannot_be_imported(compiled, tmp_path) -> None:
    """Saved, loaded and run (generate) by a process in which importing torch_mlir fails."""
    import subprocess
    import sys

    llvm, _, art = compiled("reference-v3")
    path = tmp_path / "tiny.mlacc"
    art.save(path)
    run = subprocess.run(
        [sys.executable, "-c", NO_MLIR, str(path)], capture_output=True, text=True, check=True
    )
    want = llvm.generate(torch.tensor([[5, 9, 2, 7, 1]]), 6).tolist()
    assert run.stdout.strip() == str(want)
