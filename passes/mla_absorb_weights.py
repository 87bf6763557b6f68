"""`--mla-absorb-weights`: MLA attention over the latent KV cache, chosen per entry point.

Every `mla.attention` is decomposed into its projections and either the absorbed core::

    q_latent = mla.absorb_query(q_nope, wkv_b)          // W_UK,h^T q_nope,h
    cache'   = mla.cache_update(cache, [c_kv; k_pe], positions)
    ctx      = mla.latent_attention(q_latent, q_pe, cache', positions)
    o        = mla.absorb_output(ctx, wkv_b)            // W_UV,h ctx_h

or the un-absorbed one (``mla.kv_expand`` of the latent into per-head K/V, then
``mla.decoupled_attention``). The cost model (`_mla_cost_model`) picks per op, from the
entry point's shapes (decode: one new token over a long cache, memory-bound; prefill: many)
on the target device's roofline (the `sim` target passes its device's achievable rates as the
``peak-tflops`` / ``bandwidth-gbs`` / ``device`` options; without them, H100 datasheet figures),
and decides whether to pre-multiply ``W_UK^T W_UQ`` / ``W_O W_UV`` at compile time (usually a
loss: 3x the bytes for DeepSeek-V3). The choice and its reason are attributes of the core op
(``mlacc.absorb``, ``mlacc.absorb_reason``). Either way the cache stays the latent one:
``kv_lora_rank + qk_rope_head_dim`` values per token per layer.

Before (schematic)::

    %y, %cache2 = "mla.attention"(%x, %pos, ..., %cache) {...}
After (decode)::

    %q_lat = "mla.absorb_query"(%q_nope, %wkv_b) ...
    %cache2 = "mla.cache_update"(%cache, %entries, %pos)
    %ctx = "mla.latent_attention"(%q_lat, %q_pe, %cache2, %pos) {mlacc.absorb = "absorbed", ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..dialects import mla
from ..dialects._mlir import ir
from ..dialects.types import tensor_info
from . import _torch_builders as tb
from ._mla_cost_model import Decision, MlaShape, Roofline, decide
from .registry import PassError, option, register_pass

_ELEMENT_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


@dataclass(frozen=True)
class MlaAbsorbWeightsOptions:
    """Options of `--mla-absorb-weights`."""

    absorb: Literal["auto", "always", "never"] = option(
        "auto", "absorb where the cost model says so, or always/never (ops with a cache)"
    )
    premultiply: Literal["auto", "always", "never"] = option(
        "auto", "pre-multiply W_UK^T W_UQ and W_O W_UV when cheaper, or always/never"
    )
    peak_tflops: float = option(989.0, "compute roof of the cost model (TFLOP/s)", positive=True)
    bandwidth_gbs: float = option(3350.0, "memory roof of the cost model (GB/s)", positive=True)
    device: str = option("", "the device the roofline describes (named in the reason)")


def run(module: ir.Operation, options: MlaAbsorbWeightsOptions) -> None:
    """Decomposes every `mla.attention` in `module`."""
    found: list[ir.Operation] = []

    def collect(op: ir.Operation) -> ir.WalkResult:
        if op.name == "mla.attention":
            found.append(op)
        return ir.WalkResult.ADVANCE

    module.walk(collect)
    machine = Roofline(options.peak_tflops, options.bandwidth_gbs, options.device)
    for op in found:
        _decompose(op.opview, options, machine)


def _shape(op: mla.AttentionOp, a: dict) -> tuple[MlaShape, bool]:
    x = tensor_info(op.x.type)
    cache = None if op.kv_cache is None else tensor_info(op.kv_cache.type)
    table = None if op.block_table is None else tensor_info(op.block_table.type)
    if (
        x is None
        or None in x.shape
        or (cache is not None and None in cache.shape)
        or (table is not None and None in table.shape)
    ):
        raise PassError("mla-absorb-weights needs static shapes", op=op)
    batch, seq, dim = x.shape
    keys = seq
    if cache is not None:
        keys = cache.shape[1] * (table.shape[1] if table is not None else 1)
    shape = MlaShape(
        batch=batch,
        new_tokens=seq,
        keys=keys,
        heads=a["num_heads"],
        nope=a["qk_nope_head_dim"],
        rope=a["qk_rope_head_dim"],
        value=a["v_head_dim"],
        latent=a["kv_lora_rank"],
        q_lora=a["q_lora_rank"],
        dim=dim,
        element_bytes=_ELEMENT_BYTES.get(x.dtype, 4),
    )
    return shape, cache is not None


def _decompose(op: mla.AttentionOp, options: MlaAbsorbWeightsOptions, machine: Roofline) -> None:
    a = op.attribute_values()
    shape, has_cache = _shape(op, a)
    decision = decide(shape, has_cache, machine, options.absorb, options.premultiply)
    with ir.InsertionPoint(op), op.location:
        out, new_cache = _build(op, a, shape, decision)
    op.out.replace_all_uses_with(out)
    if op.new_cache is not None:
        op.new_cache.replace_all_uses_with(new_cache)
    op.erase()


def _build(
    op: mla.AttentionOp, a: dict, s: MlaShape, d: Decision
) -> tuple[ir.Value, ir.Value | None]:
    b, n, h = s.batch, s.new_tokens, s.heads
    heads = {"num_heads": h, "qk_nope_head_dim": s.nope, "v_head_dim": s.value}
    pos, rope, scale = op.positions, a["rope"], a["softmax_scale"]
    x = op.x
    # query: [B, S, H, dn + dr] -> q_nope, rotated q_pe
    c_q = mla.rms_norm(tb.linear(x, op.wq_a), op.q_norm, eps=a["eps"]) if s.q_lora else None
    w_q = op.wq_b if s.q_lora else op.wq
    if d.premultiply_q:
        w_q_heads = tb.view(w_q, (h, s.nope + s.rope, s.q_lora))
        w_pe = tb.view(tb.narrow(w_q_heads, 1, s.nope, s.rope), (h * s.rope, s.q_lora))
        q_pe = tb.view(tb.linear(c_q, w_pe), (b, n, h, s.rope))
        q_nope = None
    else:
        q = tb.view(tb.linear(c_q if s.q_lora else x, w_q), (b, n, h, s.nope + s.rope))
        q_nope, q_pe = tb.narrow(q, -1, 0, s.nope), tb.narrow(q, -1, s.nope, s.rope)
    q_pe = mla.rotary_embedding(q_pe, pos, rope=rope)
    # keys: normalized latent and rotated shared k_pe -> the latent cache entries
    kv = tb.linear(x, op.wkv_a)
    c_kv = mla.rms_norm(tb.narrow(kv, -1, 0, s.latent), op.kv_norm, eps=a["eps"])
    k_pe = mla.rotary_embedding(tb.narrow(kv, -1, s.latent, s.rope), pos, rope=rope)
    new_cache, table = None, op.block_table
    if op.kv_cache is not None:
        new_cache = mla.cache_update(op.kv_cache, tb.cat([c_kv, k_pe], -1), pos, block_table=table)
    wkv_b = op.wkv_b
    if d.absorb:
        if d.premultiply_q:
            w_uk = tb.narrow(tb.view(wkv_b, (h, s.nope + s.value, s.latent)), 1, 0, s.nope)
            w_uq = tb.narrow(tb.view(w_q, (h, s.nope + s.rope, s.q_lora)), 1, 0, s.nope)
            w_uk_uq = tb.einsum("hdc,hdq->hcq", [w_uk, w_uq], (h, s.latent, s.q_lora))
            q_latent = tb.einsum("bsq,hcq->bshc", [c_q, w_uk_uq], (b, n, h, s.latent))
        else:
            q_latent = mla.absorb_query(q_nope, wkv_b, **heads)
        core = mla.latent_attention(
            q_latent,
            q_pe,
            new_cache,
            pos,
            block_table=table,
            kv_lora_rank=s.latent,
            softmax_scale=scale,
        )
        if d.premultiply_o:
            w_uv = tb.narrow(tb.view(wkv_b, (h, s.nope + s.value, s.latent)), 1, s.nope, s.value)
            w_o = tb.view(op.wo, (s.dim, h, s.value))
            w_o_uv = tb.einsum("dhv,hvc->dhc", [w_o, w_uv], (s.dim, h, s.latent))
            out = tb.einsum("bshc,dhc->bsd", [core, w_o_uv], (b, n, s.dim))
        else:
            o = mla.absorb_output(core, wkv_b, **heads)
            out = tb.linear(tb.view(o, (b, n, h * s.value)), op.wo)
    else:
        if new_cache is not None:
            keys = new_cache if table is None else mla.cache_gather(new_cache, table)
            latent, keys_pe = (
                tb.narrow(keys, -1, 0, s.latent),
                tb.narrow(keys, -1, s.latent, s.rope),
            )
            key_pos = tb.positions(b, s.keys)
        else:
            latent, keys_pe = c_kv, k_pe
            key_pos = pos if op.key_mask is None else tb.mask_positions(pos, op.key_mask)
        k_nope, v = mla.kv_expand(latent, wkv_b, **heads)
        core = mla.decoupled_attention(
            q_nope, q_pe, k_nope, keys_pe, v, pos, key_pos, softmax_scale=scale
        )
        out = tb.linear(tb.view(core, (b, n, h * s.value)), op.wo)
    owner = core.owner
    owner.attributes["mlacc.absorb"] = ir.StringAttr.get("absorbed" if d.absorb else "unabsorbed")
    owner.attributes["mlacc.absorb_reason"] = ir.StringAttr.get(d.reason)
    if d.absorb:
        owner.attributes["mlacc.premultiplied"] = ir.StringAttr.get(
            ",".join(side for side, on in (("q", d.premultiply_q), ("o", d.premultiply_o)) if on)
            or "none"
        )
    return out, new_cache


register_pass(
    "mla-absorb-weights",
    "Rewrite MLA attention to run over the latent KV cache (W_UK to the query, W_UV to the output)",
    MlaAbsorbWeightsOptions,
    run,
)
