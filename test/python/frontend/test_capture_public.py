"""Capture of models laid out like DeepSeek-V3's public inference code (`adapters/public.py`).

The model under test is the fixture `public_model.py` (stateful latent caches, complex rotary
table, a MoE with a data-dependent Python dispatch loop), in tiny fp32 configs.
"""

from __future__ import annotations

import re

import pytest
import torch
from public_model import ModelArgs, Transformer, init_weights, tiny_args

import mlacc
from mlacc.frontend.adapters import public
from mlacc.frontend.errors import CaptureError
from mlacc.frontend.models import DeepSeekModel, get_config

BATCH, SEQ = 2, 8


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def make(args: ModelArgs, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return init_weights(Transformer(args), seed).eval()


def tokens_for(args: ModelArgs, seq: int = SEQ, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, args.vocab_size, (BATCH, seq), generator=gen)


def reset_caches(model: Transformer) -> None:
    for layer in model.layers:
        layer.attn.kv_cache.zero_()
        layer.attn.pe_cache.zero_()


def functions(text: str) -> dict[str, str]:
    """Function name -> body text of a printed module."""
    parts = re.split(r"func\.func @(\w+)", text)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.fixture(scope="module")
def v3() -> tuple[ModelArgs, Transformer, mlacc.Artifact]:
    """The V3-style tiny config (q low-rank, YaRN, sigmoid + bias, grouped routing), compiled."""
    args = tiny_args()
    model = make(args)
    art = mlacc.compile(model, (tokens_for(args),), target="reference", cache_len=args.max_seq_len)
    return args, model, art


# --------------------------------------------------------------------------------- recognition


def test_plain_export_rejects_the_moe_dispatch_loop() -> None:
    """Why the adapter exists: bincount(...).tolist() + a loop over experts is data-dependent."""
    args = tiny_args(n_layers=2)
    model = make(args)
    with pytest.raises(Exception, match=r"(?i)data.dependent|GuardOnDataDependent") as info:
        torch.export.export(model, (tokens_for(args),))
    assert "GuardOnDataDependentSymNode" in type(info.value).__name__ + str(info.value)


def test_matches_public_layout_but_not_our_model() -> None:
    assert public.matches(make(tiny_args(n_layers=2)))
    ours = DeepSeekModel(get_config("deepseek-v3-tiny"))
    assert not public.matches(ours)  # same attribute names, but mlacc's own (reference adapter)
    assert not public.matches(torch.nn.Linear(2, 2))


def test_rope_from_table_equals_rope_from_args() -> None:
    """The public Transformer keeps no `args`: the rotary parameters are fitted to freqs_cis."""
    for overrides in (
        {},
        {"max_seq_len": 32},
        {
            "qk_rope_head_dim": 64,
            "rope_theta": 10000.0,
            "original_seq_len": 4096,
            "max_seq_len": 8192,
            "rope_factor": 40.0,
            "n_layers": 1,
            "n_dense_layers": 1,
        },
    ):
        args = tiny_args(**overrides)
        model = Transformer(args)
        fitted = public.adapt(model).lm.blocks[0].attn.spec.rope
        model.args = args
        given = public.adapt(model).lm.blocks[0].attn.spec.rope
        assert fitted["layout"] == "interleaved" and fitted["cos_sin_scale"] == 1.0
        assert fitted["theta"] == args.rope_theta
        if args.max_seq_len > args.original_seq_len:
            assert fitted == given  # the public defaults (beta 32/1, power-of-two context) found
        else:
            assert fitted["factor"] == given["factor"] == 1.0


def test_table_wins_over_stale_args() -> None:
    """The module rotates with freqs_cis: args that disagree with it are not used."""
    args = tiny_args(n_layers=1, n_dense_layers=1)
    model = Transformer(args)
    model.args = tiny_args(n_layers=1, n_dense_layers=1, rope_factor=8.0)
    assert public.adapt(model).lm.blocks[0].attn.spec.rope["factor"] == args.rope_factor


def test_meta_model_needs_args() -> None:
    args = tiny_args(n_layers=2)
    with torch.device("meta"):
        model = Transformer(args)
    tokens = tokens_for(args)
    with pytest.raises(CaptureError, match=r"no rotary parameters.*model\.args"):
        mlacc.capture(model, (tokens,))
    model.args = args
    text = str(mlacc.capture(model, (tokens,)))
    assert text.count('"mla.attention"(') == 3 * args.n_layers  # forward, prefill, decode


# ------------------------------------------------------------------------------------ numerics


def test_v3_style_forward_matches(v3) -> None:
    args, model, art = v3
    tokens = tokens_for(args)
    reset_caches(model)
    expected = model(tokens)
    out = art.load()(tokens)
    assert out.shape == (BATCH, args.vocab_size)
    assert rel_err(out, expected) < 1e-3


VARIANTS = {
    # DeepSeek-V2-Lite style: no q low-rank, softmax scores, no bias, grouped by max, no YaRN
    "no-qlora-softmax-groups": dict(
        q_lora_rank=0, score_func="softmax", gate_bias=False, route_scale=1.0, max_seq_len=32
    ),
    # softmax, greedy (one group), YaRN on
    "softmax-greedy-yarn": dict(
        score_func="softmax",
        gate_bias=False,
        n_expert_groups=1,
        n_limited_groups=1,
        n_activated_experts=3,
    ),
    # sigmoid without bias: groups ranked by max, weights normalized
    "sigmoid-nobias": dict(gate_bias=False, q_lora_rank=0),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_forward_matches(name: str) -> None:
    args = tiny_args(n_layers=2, **VARIANTS[name])
    model = make(args, seed=3)
    tokens = tokens_for(args, seed=4)
    expected = model(tokens)
    out = mlacc.compile(model, (tokens,), target="reference").load()(tokens)
    assert rel_err(out, expected) < 1e-3


def test_explicit_start_pos() -> None:
    args = tiny_args(n_layers=2)
    model = make(args)
    tokens = tokens_for(args)
    expected = model(tokens, 0)
    exe = mlacc.compile(model, (tokens, 0), target="reference").load()
    assert rel_err(exe(tokens, 0), expected) < 1e-3
    with pytest.raises(mlacc.runtime.InputError, match="was 0 when the model was compiled"):
        exe(tokens, 5)


def test_prefill_decode_match_stateful_model(v3) -> None:
    """Chunked prefill + decode over explicit latent caches = the model's own stateful calls;
    each cache row is the model's ``kv_cache`` row followed by its ``pe_cache`` row."""
    args, model, art = v3
    exe = art.load()
    spec = art.manifest["kv_cache"]
    assert (spec["layers"], spec["batch"], spec["max_seq_len"]) == (
        args.n_layers,
        BATCH,
        args.max_seq_len,
    )
    assert spec["entry"] == args.kv_lora_rank + args.qk_rope_head_dim
    caches = [
        torch.zeros(spec["batch"], spec["max_seq_len"], spec["entry"])
        for _ in range(spec["layers"])
    ]
    tokens = tokens_for(args, seq=2 * SEQ + 3, seed=7)
    reset_caches(model)

    def positions(start: int, count: int) -> torch.Tensor:
        return (torch.arange(count) + start).expand(BATCH, count)

    steps = [(0, SEQ, "prefill"), (SEQ, SEQ, "prefill")]  # two prefill chunks
    steps += [(p, 1, "decode") for p in range(2 * SEQ, 2 * SEQ + 3)]
    for start, count, entry in steps:
        chunk = tokens[:, start : start + count]
        expected = model(chunk, start)
        logits, *caches = exe.run(entry, chunk, positions(start, count), *caches)
        assert rel_err(logits[:, -1], expected) < 1e-3, (entry, start)
    end = steps[-1][0] + 1
    for layer, cache in zip(model.layers, caches):
        attn = layer.attn
        theirs = torch.cat([attn.kv_cache[:BATCH, :end], attn.pe_cache[:BATCH, :end]], dim=-1)
        assert rel_err(cache[:, :end], theirs) < 1e-4
        assert not cache[:, end:].any()


def test_generate_matches_greedy_stateful_decoding(v3) -> None:
    """`exe.generate` (runtime-held latent cache) = greedy decoding with the model's own cache,
    the way the public code's generate.py drives it: forward(prompt, 0), then one token at a
    time at its position."""
    args, model, art = v3
    prompt = tokens_for(args, seed=11)
    reset_caches(model)
    ids, logits = prompt, model(prompt, 0)
    for _ in range(4):
        nxt = logits.argmax(dim=-1, keepdim=True)
        logits = model(nxt, ids.shape[1])
        ids = torch.cat([ids, nxt], dim=1)
    assert torch.equal(art.load().generate(prompt, 4), ids)


# -------------------------------------------------------------------------------- captured IR


def test_captured_ir(v3) -> None:
    args, model, art = v3
    text = str(mlacc.capture(model, (tokens_for(args),), cache_len=args.max_seq_len))
    assert "torch.operator" not in text
    moe_layers = args.n_layers - args.n_dense_layers
    for name, body in functions(text).items():
        assert body.count('"mla.attention"(') == args.n_layers, name
        assert body.count('"moe.router"(') == moe_layers, name
        assert body.count('"moe.experts"(') == moe_layers, name
    keys = set(re.findall(r'"mlacc\.weight"\(\) \{key = "([^"]+)"\}', text))
    names = dict(model.named_parameters())
    assert {
        "layers.1.ffn.gate.bias",
        "layers.2.attn.wq_a.weight",
        "layers.0.ffn.w2.weight",
        "embed.weight",
        "head.weight",
    } <= keys
    # routed experts: the model's per-expert names, or one stacked tensor per projection keyed
    # after them (layers.N.ffn.experts.w_gate [E, I, D] = w1, w_up = w3, w_down = w2)
    stacked = {"w1": "w_gate", "w3": "w_up", "w2": "w_down"}
    expert = re.compile(r"(layers\.\d+\.ffn\.experts\.)\d+\.(w[123])\.weight")
    for name in names:
        match = expert.fullmatch(name)
        if match and name not in keys:
            assert match[1] + stacked[match[2]] in keys, name
        elif not match:
            assert name in keys, name  # every other parameter is read, under its own name
    assert {k for k in keys if k not in names} <= {
        f"layers.{i}.ffn.experts.{w}" for i in range(args.n_layers) for w in stacked.values()
    }
    buffers = {name for name, _ in model.named_buffers()}
    assert {"freqs_cis", "layers.0.attn.kv_cache", "layers.0.attn.pe_cache"} <= buffers
    assert not keys & buffers
    assert not set(art.manifest["weights"]["tensors"]) & buffers


# ------------------------------------------------------------------------------------- errors


def capture_error(model: Transformer) -> str:
    with pytest.raises(CaptureError) as info:
        mlacc.capture(model, (tokens_for(tiny_args()),))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_projection_names_the_layer() -> None:
    model = make(tiny_args(n_layers=3))
    del model.layers[2].attn.wkv_b
    message = capture_error(model)
    assert "layers.2.attn" in message and "wkv_b" in message


def test_wrong_shape_and_bias_are_named() -> None:
    model = make(tiny_args(n_layers=2))
    model.layers[1].ffn.experts[5].w2.weight = torch.nn.Parameter(torch.zeros(3, 3))
    assert "layers.1.ffn.experts.5.w2" in capture_error(model)
    model = make(tiny_args(n_layers=2))
    model.layers[0].attn.wo.bias = torch.nn.Parameter(torch.zeros(model.layers[0].attn.dim))
    assert "layers.0.attn.wo" in capture_error(model)


def test_unknown_score_func_is_named() -> None:
    model = make(tiny_args(n_layers=2))
    model.layers[1].ffn.gate.score_func = "relu"
    message = capture_error(model)
    assert "layers.1.ffn.gate" in message and "relu" in message
