"""Adapter for Hugging Face ``DeepseekV3ForCausalLM`` and ``DeepseekV2ForCausalLM``
(transformers >= 5, the in-library implementations; not ``trust_remote_code`` ports).

The captured model holds HF's own tensors, so the weight keys in the IR are HF's state-dict
names (``model.layers.0.self_attn.kv_b_proj.weight``, ...), except the routed experts:
``moe.experts`` takes them stacked, and `CapturedMoE` keys them ``<experts module>.w_gate`` /
``.w_up`` / ``.w_down`` (for transformers 5's stacked ``gate_up_proj`` these are views, no
copy). Everything numeric is read off the modules HF built, not re-derived from the config,
and checked where it can be:

- attention: ``softmax_scale`` is the attention module's own ``scaling``
  (``qk_head_dim ** -0.5``, times ``yarn_get_mscale(factor, mscale_all_dim) ** 2`` when the
  rope parameters have a non-zero ``mscale_all_dim``); the q/kv RMSNorm eps is the norms'
  ``variance_epsilon`` (HF builds ``q_a_layernorm``/``kv_a_layernorm`` with the default 1e-6,
  not ``rms_norm_eps``).
- rope: ``theta``, YaRN ``factor`` (``max_position_embeddings / original`` when None, as
  HF), ``original_max_position_embeddings``, ``beta_fast``/``beta_slow`` (``or 32``/``or 1``
  as HF), ``truncate`` (default True) and ``cos_sin_scale`` = the rotary module's
  ``attention_scaling`` (HF's YaRN ``attention_factor``: ``mscale / mscale_all_dim`` ratio, or
  ``0.1 ln(factor) + 1`` without both). Our inverse frequencies are compared with HF's
  ``inv_freq`` buffer; any rope HF computes differently (linear, dynamic, llama3, longrope,
  partial rotary) is a CaptureError. Layout: V2's complex-pair rotation and V3's
  ``rope_interleave=True`` are our ``interleaved`` (V3 writes the rotated pair
  de-interleaved, the same permutation for q and k, so scores are identical);
  ``rope_interleave=False`` is ``rotate_half``.
- routing: V3 sigmoid + ``e_score_correction_bias`` + groups ranked by their top-2 sum,
  ``norm_topk_prob`` and ``routed_scaling_factor`` from the router module. V2 softmax, no
  bias; ``greedy`` (one group) or ``group_limited_greedy`` (groups ranked by max); V2 never
  normalizes (HF's V2 router ignores ``norm_topk_prob``) and always scales. HF V2 masks the
  dropped groups with 0 instead of -inf: the same selection whenever
  ``top_k <= topk_group * experts_per_group`` (softmax scores are positive), which is checked.
- experts: transformers 5 stacks them (``gate_up_proj [E, 2I, D]``, gate rows first;
  ``down_proj [E, D, I]``): w_gate/w_up are the two row halves of gate_up_proj, w_down is
  down_proj. A ModuleList of per-expert MLPs (older layouts, the published checkpoints'
  per-expert names) is taken too and stacked by `CapturedMoE`.
- ignored config quirks: ``num_key_value_heads`` (V3's config defaults it to 128 whatever
  the head count; MLA expands the latent to every head through kv_b_proj and HF's sdpa path
  runs regardless).

Calling convention (``bind``): ``model(input_ids, attention_mask=None, position_ids=None,
...)``. ``input_ids`` (positional or keyword), ``position_ids`` and a ``[batch, seq]``
``attention_mask`` are inputs; the mask is honored as HF does (padded keys are invisible,
positions are as given: ``arange`` by default, left padding included); ``use_cache`` is ignored
(no cache object is returned); ``logits_to_keep`` may be an int; ``return_dict=False`` gives a
tuple. Anything else (``past_key_values``, ``inputs_embeds``, ``labels``, a padding mask,
``output_*`` flags) is a CaptureError: the latent KV cache is reached through the compiled
``prefill``/``decode`` entry points instead.

Output (``format``): what HF returns for ``use_cache=False``, a
``transformers.modeling_outputs.MoeCausalLMOutputWithPast`` holding only ``logits``
(transformers registers its ModelOutputs with torch's pytree under a serializable name,
``transformers.modeling_outputs.MoeCausalLMOutputWithPast``, so the out spec survives
``save()``/``load()``; the loading process must have imported ``transformers`` before the
first call, or the runtime cannot rebuild the output object). Non-tensor call arguments
(``logits_to_keep=1``, ``return_dict=False``) shape the captured forward, but the runtime
takes tensors only, so call the compiled model with ``input_ids``/``position_ids``/mask.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ...dialects.mla.rope import rope_params
from ...runtime.semantics.rope import inv_freq as our_inv_freq
from ..capture_modules import (
    AttentionSpec,
    CapturedAttention,
    CapturedBlock,
    CapturedCausalLM,
    CapturedMLP,
    CapturedMoE,
    CapturedRMSNorm,
    RouterSpec,
    default_positions,
)
from ..errors import CaptureError
from . import Bound, CausalLM, fail, source_of

DESCRIPTION = "Hugging Face DeepseekV3ForCausalLM / DeepseekV2ForCausalLM"

_FAMILIES = {"DeepseekV3ForCausalLM": "deepseek_v3", "DeepseekV2ForCausalLM": "deepseek_v2"}
_SILU = ("silu", "swish")


# ----------------------------------------------------------------------------- recognition


def _family(model: nn.Module) -> str | None:
    """``deepseek_v3`` / ``deepseek_v2`` from the class name or ``config.model_type``."""
    for cls in type(model).__mro__:
        if cls.__name__ in _FAMILIES:
            return _FAMILIES[cls.__name__]
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return model_type if model_type in _FAMILIES.values() else None


def matches(model: nn.Module) -> bool:
    """An HF DeepSeek-V2/V3 causal LM: the family (class or model_type), a decoder with
    ``layers`` and an ``lm_head``, and MLA attention (``kv_a_proj_with_mqa``) in its layers.
    Parts that then do not fit are reported by `adapt`, naming the module."""
    if _family(model) is None or not hasattr(model, "config"):
        return False
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, nn.ModuleList) or not hasattr(model, "lm_head"):
        return False
    return any(hasattr(getattr(layer, "self_attn", None), "kv_a_proj_with_mqa") for layer in layers)


# ------------------------------------------------------------------------------- helpers


def _child(parent: nn.Module, name: str, path: str) -> nn.Module:
    module = getattr(parent, name, None)
    if not isinstance(module, nn.Module):
        raise fail(path, parent, f"has no '{name}' module")
    return module


def _linear(parent: nn.Module, name: str, path: str) -> torch.Tensor:
    """The weight of a bias-free linear child ``parent.<name>``."""
    module = _child(parent, name, path)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise fail(f"{path}.{name}", module, "expected a linear layer with a 2-D weight")
    if getattr(module, "bias", None) is not None:
        raise fail(
            f"{path}.{name}",
            module,
            "linear layers with a bias are not supported (attention_bias / mlp_bias must be False)",
        )
    return weight


def _norm(parent: nn.Module, name: str, path: str) -> tuple[torch.Tensor, float, nn.Module]:
    """Weight, eps and module of an RMSNorm child."""
    module = _child(parent, name, path)
    weight = getattr(module, "weight", None)
    eps = getattr(module, "variance_epsilon", getattr(module, "eps", None))
    if not isinstance(weight, torch.Tensor) or eps is None:
        raise fail(f"{path}.{name}", module, "expected an RMSNorm (weight, variance_epsilon)")
    return weight, float(eps), module


def _rms_norm(parent: nn.Module, name: str, path: str) -> CapturedRMSNorm:
    weight, eps, module = _norm(parent, name, path)
    return CapturedRMSNorm(weight, eps, source_of(module))


def _shape_check(
    path: str, module: nn.Module, what: str, tensor: torch.Tensor, expected: tuple[int, ...]
) -> None:
    if tuple(tensor.shape) != tuple(expected):
        raise fail(
            path,
            module,
            f"{what} has shape {tuple(tensor.shape)}, expected {tuple(expected)} from the config",
        )


def _silu(path: str, module: nn.Module, config: Any) -> None:
    act = getattr(config, "hidden_act", "silu")
    if act not in _SILU:
        raise fail(path, module, f"hidden_act '{act}' is not supported (SwiGLU with silu only)")


# ------------------------------------------------------------------------------------ rope


def _rope(model: nn.Module, family: str) -> dict[str, Any]:
    """Our `rope` attribute for HF's rotary embedding (``model.rotary_emb``), verified
    against HF's own ``inv_freq``."""
    config = model.config
    path = "model.rotary_emb"
    rotary = _child(model.model, "rotary_emb", "model")
    params = dict(getattr(config, "rope_parameters", None) or {})
    rope_type = params.get("rope_type", params.get("type", "default"))
    theta = float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
    dim = int(config.qk_rope_head_dim)
    max_pos = int(config.max_position_embeddings)
    if float(params.get("partial_rotary_factor", 1.0) or 1.0) != 1.0:
        raise fail(path, rotary, "partial_rotary_factor != 1 is not supported")
    if rope_type == "default":
        factor, original, beta_fast, beta_slow, truncate = 1.0, max_pos, 32.0, 1.0, True
    elif rope_type == "yarn":
        original = int(params.get("original_max_position_embeddings") or max_pos)
        factor = float(params.get("factor") or max_pos / original)
        beta_fast = float(params.get("beta_fast") or 32)
        beta_slow = float(params.get("beta_slow") or 1)
        truncate = bool(params.get("truncate", True))
        if factor < 1.0:
            raise fail(path, rotary, f"YaRN factor {factor} < 1 is not supported")
    else:
        raise fail(path, rotary, f"rope_type '{rope_type}' is not supported (default or yarn)")
    scale = getattr(rotary, "attention_scaling", 1.0)
    if family == "deepseek_v2":
        layout = "interleaved"
    else:
        layout = "interleaved" if getattr(config, "rope_interleave", True) else "rotate_half"
    rope = rope_params(
        layout=layout,
        theta=theta,
        factor=factor,
        original_seq_len=original,
        beta_fast=beta_fast,
        beta_slow=beta_slow,
        cos_sin_scale=float(scale),
        truncate=truncate,
    )
    theirs = getattr(rotary, "inv_freq", None)
    if isinstance(theirs, torch.Tensor) and not theirs.is_meta:
        ours = our_inv_freq(rope, dim)
        tol = (
            1e-6
            if theirs.dtype in (torch.float32, torch.float64)
            else torch.finfo(theirs.dtype).eps
        )
        if theirs.shape != ours.shape or not torch.allclose(
            ours.to(theirs.dtype).float(), theirs.detach().cpu().float(), rtol=tol, atol=0.0
        ):
            raise fail(
                path,
                rotary,
                f"its inverse frequencies differ from mlacc's rope "
                f"({rope_type}, rope parameters {params}); this rope cannot be expressed",
            )
    return rope


# ------------------------------------------------------------------------------- attention


def _attention(attn: nn.Module, config: Any, rope: dict[str, Any], path: str) -> CapturedAttention:
    heads = int(config.num_attention_heads)
    # num_key_value_heads is not read: kv_b_proj expands the latent to all `heads` (V3's config
    # defaults it to 128 whatever the head count; HF's sdpa path runs regardless).
    dn, dr, dv = int(config.qk_nope_head_dim), int(config.qk_rope_head_dim), int(config.v_head_dim)
    c = int(config.kv_lora_rank)
    hidden = int(config.hidden_size)
    weights = {
        "wkv_a": _linear(attn, "kv_a_proj_with_mqa", path),
        "wkv_b": _linear(attn, "kv_b_proj", path),
        "wo": _linear(attn, "o_proj", path),
    }
    kv_norm, eps, _ = _norm(attn, "kv_a_layernorm", path)
    weights["kv_norm"] = kv_norm
    if getattr(attn, "q_a_proj", None) is not None:
        weights["wq_a"] = _linear(attn, "q_a_proj", path)
        q_norm, q_eps, _ = _norm(attn, "q_a_layernorm", path)
        weights["q_norm"] = q_norm
        weights["wq_b"] = _linear(attn, "q_b_proj", path)
        if q_eps != eps:
            raise fail(
                path,
                attn,
                f"q_a_layernorm eps {q_eps} != kv_a_layernorm eps {eps} "
                "(mla.attention has one eps)",
            )
        q_lora = int(weights["wq_a"].shape[0])
        _shape_check(f"{path}.q_a_proj", attn.q_a_proj, "weight", weights["wq_a"], (q_lora, hidden))
        _shape_check(
            f"{path}.q_b_proj",
            attn.q_b_proj,
            "weight",
            weights["wq_b"],
            (heads * (dn + dr), q_lora),
        )
        _shape_check(f"{path}.q_a_layernorm", attn.q_a_layernorm, "weight", q_norm, (q_lora,))
    else:
        if getattr(attn, "q_proj", None) is None:
            raise fail(path, attn, "has neither q_a_proj/q_a_layernorm/q_b_proj nor q_proj")
        weights["wq"] = _linear(attn, "q_proj", path)
        q_lora = 0
        _shape_check(
            f"{path}.q_proj", attn.q_proj, "weight", weights["wq"], (heads * (dn + dr), hidden)
        )
    _shape_check(
        f"{path}.kv_a_proj_with_mqa",
        attn.kv_a_proj_with_mqa,
        "weight",
        weights["wkv_a"],
        (c + dr, hidden),
    )
    _shape_check(f"{path}.kv_a_layernorm", attn.kv_a_layernorm, "weight", kv_norm, (c,))
    _shape_check(
        f"{path}.kv_b_proj", attn.kv_b_proj, "weight", weights["wkv_b"], (heads * (dn + dv), c)
    )
    _shape_check(f"{path}.o_proj", attn.o_proj, "weight", weights["wo"], (hidden, heads * dv))
    scaling = getattr(attn, "scaling", None)
    if not isinstance(scaling, (int, float)):
        raise fail(
            path,
            attn,
            "has no 'scaling' attribute (not transformers' own DeepSeek "
            "attention; trust_remote_code ports are not supported)",
        )
    spec = AttentionSpec(
        num_heads=heads,
        q_lora_rank=q_lora,
        kv_lora_rank=c,
        qk_nope_head_dim=dn,
        qk_rope_head_dim=dr,
        v_head_dim=dv,
        softmax_scale=float(scaling),
        eps=eps,
        rope=rope,
        weights=weights,
    )
    return CapturedAttention(spec, source_of(attn))


# ------------------------------------------------------------------------------------ FFN


def _mlp_weights(
    mlp: nn.Module, config: Any, path: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(gate_proj, up_proj, down_proj)`` weights of a SwiGLU MLP, checked."""
    _silu(path, mlp, config)
    w_gate, w_up, w_down = (_linear(mlp, n, path) for n in ("gate_proj", "up_proj", "down_proj"))
    inter, hidden = w_gate.shape
    _shape_check(f"{path}.up_proj", mlp.up_proj, "weight", w_up, (inter, hidden))
    _shape_check(f"{path}.down_proj", mlp.down_proj, "weight", w_down, (hidden, inter))
    return w_gate, w_up, w_down


def _mlp(mlp: nn.Module, config: Any, path: str) -> CapturedMLP | None:
    """A SwiGLU MLP (``gate_proj``, ``up_proj``, ``down_proj``); None when it has no width."""
    w_gate, w_up, w_down = _mlp_weights(mlp, config, path)
    if w_gate.shape[0] == 0:
        return None
    return CapturedMLP(w_gate, w_up, w_down, source_of(mlp))


def _stacked_experts(module: CapturedMoE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[E, I, D]`` gate, ``[E, I, D]`` up and ``[E, D, I]`` down: views of transformers 5's
    stacked ``gate_up_proj`` (gate rows first) and ``down_proj`` (no copy)."""
    gate_up, down = module.tensor("gate_up_proj"), module.tensor("down_proj")
    inter = gate_up.shape[1] // 2
    return gate_up[:, :inter], gate_up[:, inter:], down


def _listed_experts(module: CapturedMoE) -> tuple[list, list, list]:
    """Per-expert weight lists of a ModuleList of expert MLPs."""
    n = sum(1 for name in module._tensor_names if name.endswith(".gate_proj"))
    gate, up, down = (
        [module.tensor(f"{e}.{w}") for e in range(n)] for w in ("gate_proj", "up_proj", "down_proj")
    )
    return gate, up, down


def _experts(
    experts: nn.Module, config: Any, num: int, hidden: int, path: str
) -> tuple[dict[str, torch.Tensor], Callable]:
    if isinstance(experts, nn.ModuleList):
        if len(experts) != num:
            raise fail(path, experts, f"has {len(experts)} experts, the gate routes to {num}")
        tensors = {}
        for e, expert in enumerate(experts):
            weights = _mlp_weights(expert, config, f"{path}.{e}")
            if weights[0].shape != weights[-1].T.shape or weights[0].shape[1] != hidden:
                raise fail(f"{path}.{e}", expert, f"expert weights do not fit hidden size {hidden}")
            for name, tensor in zip(("gate_proj", "up_proj", "down_proj"), weights):
                tensors[f"{e}.{name}"] = tensor
        shapes = {tuple(t.shape) for name, t in tensors.items() if name.endswith(".gate_proj")}
        if len(shapes) != 1:
            raise fail(path, experts, f"experts have different shapes {sorted(shapes)}")
        return tensors, _listed_experts
    gate_up = getattr(experts, "gate_up_proj", None)
    down = getattr(experts, "down_proj", None)
    if not isinstance(gate_up, torch.Tensor) or not isinstance(down, torch.Tensor):
        raise fail(
            path,
            experts,
            "expected stacked expert tensors gate_up_proj [E, 2I, D] and "
            "down_proj [E, D, I], or a ModuleList of expert MLPs",
        )
    for bias in ("gate_up_proj_bias", "down_proj_bias"):
        if getattr(experts, bias, None) is not None:
            raise fail(path, experts, f"expert biases ({bias}) are not supported")
    _silu(path, experts, config)
    if gate_up.dim() != 3 or down.dim() != 3 or gate_up.shape[1] % 2:
        raise fail(
            path,
            experts,
            f"gate_up_proj {tuple(gate_up.shape)} / down_proj "
            f"{tuple(down.shape)} are not [E, 2I, D] / [E, D, I]",
        )
    inter = gate_up.shape[1] // 2
    _shape_check(path, experts, "gate_up_proj", gate_up, (num, 2 * inter, hidden))
    _shape_check(path, experts, "down_proj", down, (num, hidden, inter))
    return {"gate_up_proj": gate_up, "down_proj": down}, _stacked_experts


def _router(gate: nn.Module, family: str, num: int, path: str) -> RouterSpec:
    weight = getattr(gate, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.shape[0] != num:
        raise fail(path, gate, f"expected a router weight [{num}, hidden]")
    top_k = int(getattr(gate, "top_k", 0) or 0)
    route_scale = float(getattr(gate, "routed_scaling_factor", 1.0))
    if not 1 <= top_k <= num:
        raise fail(path, gate, f"top_k {top_k} not in [1, {num}]")
    if family == "deepseek_v3":
        bias = getattr(gate, "e_score_correction_bias", None)
        if not isinstance(bias, torch.Tensor):
            raise fail(path, gate, "has no e_score_correction_bias (DeepSeek-V3 noaux_tc routing)")
        if tuple(bias.shape) != (num,):
            raise fail(
                path,
                gate,
                f"e_score_correction_bias has shape {tuple(bias.shape)}, expected ({num},)",
            )
        score_func, group_score = "sigmoid", "top2_sum"
        n_groups, topk_group = getattr(gate, "num_group", None), getattr(gate, "topk_group", None)
        norm = bool(getattr(gate, "norm_topk_prob", False))
    else:
        bias, score_func, group_score, norm = None, "softmax", "max", False
        method = getattr(gate, "topk_method", "greedy")
        if method == "greedy":
            n_groups, topk_group = 1, 1
        elif method == "group_limited_greedy":
            n_groups, topk_group = (
                getattr(gate, "num_group", None),
                getattr(gate, "topk_group", None),
            )
        else:
            raise fail(
                path,
                gate,
                f"topk_method '{method}' is not supported (greedy or group_limited_greedy)",
            )
    if not n_groups or not topk_group:
        raise fail(
            path,
            gate,
            f"group-limited routing needs n_group and topk_group (got {n_groups}, {topk_group})",
        )
    n_groups, topk_group = int(n_groups), int(topk_group)
    if num % n_groups or not 1 <= topk_group <= n_groups:
        raise fail(
            path,
            gate,
            f"{num} experts in {n_groups} groups keeping {topk_group}: "
            "experts must split evenly and 1 <= topk_group <= n_group",
        )
    per_group = num // n_groups
    if n_groups > 1 and group_score == "top2_sum" and per_group < 2:
        raise fail(path, gate, "group scores are top-2 sums: each group needs >= 2 experts")
    if top_k > topk_group * per_group:
        raise fail(
            path,
            gate,
            f"top_k {top_k} > topk_group {topk_group} * experts per group "
            f"{per_group}: it would pick experts from dropped groups",
        )
    return RouterSpec(
        weight=weight,
        bias=bias,
        score_func=score_func,
        top_k=top_k,
        n_groups=n_groups,
        topk_group=topk_group,
        group_score=group_score,
        route_scale=route_scale,
        norm_topk_prob=norm,
    )


def _moe(moe: nn.Module, config: Any, family: str, path: str) -> CapturedMoE:
    gate = _child(moe, "gate", path)
    weight = getattr(gate, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise fail(f"{path}.gate", gate, "has no router weight")
    num = int(weight.shape[0])
    router = _router(gate, family, num, f"{path}.gate")
    tensors, expert_weights = _experts(
        _child(moe, "experts", path), config, num, int(config.hidden_size), f"{path}.experts"
    )
    shared_module = getattr(moe, "shared_experts", None)
    shared = None
    if shared_module is not None:
        shared = _mlp(shared_module, config, f"{path}.shared_experts")
    return CapturedMoE(router, tensors, expert_weights, shared, source_of(moe))


def _ffn(mlp: nn.Module, config: Any, family: str, path: str) -> nn.Module:
    if hasattr(mlp, "gate") and hasattr(mlp, "experts"):
        return _moe(mlp, config, family, path)
    if all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
        dense = _mlp(mlp, config, path)
        if dense is None:
            raise fail(path, mlp, "dense MLP has no width")
        return dense
    raise fail(
        path,
        mlp,
        "expected a dense MLP (gate_proj/up_proj/down_proj) or a MoE "
        "(gate, experts, shared_experts)",
    )


# ------------------------------------------------------------------------------- calling


class _Call:
    """How the user called the model (set by `bind`, read by `format` in the same forward)."""

    def __init__(self) -> None:
        self.keep = 0
        self.return_dict = True


def _parameters(model: nn.Module) -> list[str]:
    try:
        names = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        names = []
    return names or [
        "input_ids",
        "attention_mask",
        "position_ids",
        "past_key_values",
        "inputs_embeds",
        "labels",
        "use_cache",
        "logits_to_keep",
    ]


def _binder(model: nn.Module, call: _Call) -> Callable[[tuple, dict], Bound]:
    names = _parameters(model)
    positional = [n for n in names if n not in ("args", "kwargs")]

    def reject(reason: str) -> CaptureError:
        return fail("", model, reason)

    def bind(args: tuple, kwargs: dict) -> Bound:
        call.keep, call.return_dict = 0, True
        if len(args) > len(positional):
            raise reject(
                f"forward takes at most {len(positional)} positional arguments, got {len(args)}"
            )
        given = dict(zip(positional, args))
        for key, value in kwargs.items():
            if key in given:
                raise reject(f"argument '{key}' given twice")
            given[key] = value
        tokens = given.get("input_ids")
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
            raise reject(
                "capture needs input_ids, a [batch, seq] tensor of token ids "
                "(inputs_embeds is not supported)"
            )
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex:
            raise reject(f"input_ids must be integer token ids, got {tokens.dtype}")
        for key, value in given.items():
            if key in ("input_ids", "position_ids") or value is None:
                continue
            if key == "attention_mask":
                if not isinstance(value, torch.Tensor) or value.shape != tokens.shape:
                    raise reject(
                        "attention_mask must be a [batch, seq] tensor like input_ids "
                        "(a 4D mask is not supported)"
                    )
            elif key == "use_cache":
                continue  # no cache object is returned either way (prefill/decode own it)
            elif key == "return_dict":
                call.return_dict = bool(value)
            elif key == "logits_to_keep":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise reject("logits_to_keep must be a non-negative int")
                call.keep = value
            elif key in ("output_attentions", "output_hidden_states", "output_router_logits"):
                if value:
                    raise reject(f"{key}=True is not supported (only logits are computed)")
            elif key == "past_key_values":
                raise reject(
                    "past_key_values is not supported: use the compiled 'prefill' and "
                    "'decode' entry points, which own the latent KV cache"
                )
            elif key == "labels":
                raise reject("labels (loss computation) are not supported")
            else:
                raise reject(
                    f"argument '{key}' is not supported (only input_ids, position_ids "
                    "and attention_mask)"
                )
        positions = given.get("position_ids")
        if positions is None:
            positions = default_positions(tokens)
        else:
            if not isinstance(positions, torch.Tensor) or positions.dim() not in (1, 2):
                raise reject("position_ids must be a [batch, seq] (or [seq]) tensor")
            if positions.dim() == 1:
                positions = positions[None]
            if positions.shape[-1] != tokens.shape[1] or positions.shape[0] not in (
                1,
                tokens.shape[0],
            ):
                raise reject(
                    f"position_ids has shape {tuple(positions.shape)}, input_ids "
                    f"{tuple(tokens.shape)}"
                )
            positions = positions.expand(tokens.shape[0], tokens.shape[1])
        mask = given.get("attention_mask")
        return Bound(tokens, positions, None if mask is None else mask != 0)

    return bind


def _formatter(call: _Call) -> Callable[[torch.Tensor], Any]:
    from transformers.modeling_outputs import MoeCausalLMOutputWithPast

    def format(logits: torch.Tensor) -> Any:  # noqa: A001 - CausalLM's field name
        if call.keep:
            logits = logits[:, -call.keep :, :]
        out = MoeCausalLMOutputWithPast(logits=logits)
        return out if call.return_dict else out.to_tuple()

    return format


# ---------------------------------------------------------------------------------- adapt


def adapt(model: nn.Module) -> CausalLM:
    family = _family(model)
    if family is None:
        raise fail("", model, "not a Hugging Face DeepseekV3ForCausalLM / DeepseekV2ForCausalLM")
    config = model.config
    inner = _child(model, "model", "")
    rope = _rope(model, family)
    embed = getattr(_child(inner, "embed_tokens", "model"), "weight", None)
    head = _linear(model, "lm_head", "")
    if not isinstance(embed, torch.Tensor) or embed.dim() != 2:
        raise fail("model.embed_tokens", inner.embed_tokens, "expected an embedding table")
    if head.shape[1] != embed.shape[1]:
        raise fail(
            "lm_head",
            model.lm_head,
            f"weight {tuple(head.shape)} does not fit hidden size {embed.shape[1]}",
        )
    layers = inner.layers
    count = getattr(config, "num_hidden_layers", len(layers))
    if count != len(layers):  # HF runs layers[:num_hidden_layers]
        layers = layers[:count]
    blocks = []
    for i, layer in enumerate(layers):
        path = f"model.layers.{i}"
        attn = _attention(_child(layer, "self_attn", path), config, rope, f"{path}.self_attn")
        ffn = _ffn(_child(layer, "mlp", path), config, family, f"{path}.mlp")
        blocks.append(
            CapturedBlock(
                _rms_norm(layer, "input_layernorm", path),
                attn,
                _rms_norm(layer, "post_attention_layernorm", path),
                ffn,
                source_of(layer),
            )
        )
    if not blocks:
        raise fail("model.layers", layers, "the model has no decoder layers")
    lm = CapturedCausalLM(embed, blocks, _rms_norm(inner, "norm", "model"), head, source_of(model))
    call = _Call()
    return CausalLM(
        lm=lm,
        family=f"hf-{family.replace('_', '-')}",
        max_seq_len=int(config.max_position_embeddings),
        bind=_binder(model, call),
        format=_formatter(call),
    )
