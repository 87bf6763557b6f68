"""Adapter for models laid out like DeepSeek-V3's public inference code (``inference/model.py``).

Such a model is a ``Transformer`` with ``embed``, ``layers[i].attn_norm/attn/ffn_norm/ffn``,
``norm``, ``head`` and a complex rotary table ``freqs_cis`` (a buffer), called as
``forward(tokens, start_pos=0)`` and returning the last position's logits ``[B, vocab]``. It is
stateful: each ``MLA`` writes into its own ``kv_cache``/``pe_cache`` buffers (``absorb``) or
``k_cache``/``v_cache`` (``naive``), and its ``MoE`` dispatches with ``bincount().tolist()``
and a Python loop over experts, which plain ``torch.export`` cannot trace.

The captured model shares the user's weight tensors (the IR's weight keys are the model's
state-dict names; the routed experts' weights go in stacked, keyed after theirs by
`CapturedMoE`) and none of its buffers (caches, ``freqs_cis``): the ``prefill``/``decode``
entry points take mlacc's explicit latent caches instead (``kv_lora_rank + qk_rope_head_dim``
per token per layer, the concatenation of the ``kv_cache`` and ``pe_cache`` rows of the
user's model).
The ``forward`` entry point is stateless: it attends over the tokens of the call only, so it
reproduces the user's ``forward(tokens, start_pos)`` for a fresh sequence (start_pos 0, the
usual prefill); for decoding, use ``prefill``/``decode`` (or ``generate``).

Options are read from the modules' own attributes (``MLA.n_heads``, ``MLA.softmax_scale``,
``Gate.topk``, ``Gate.score_func``, ...), falling back to ``model.args`` (a ``ModelArgs``)
where a module lacks one. The public ``Transformer`` keeps no ``args``, so the rotary
parameters come from ``model.args`` when the user attached one, and are otherwise recovered
from the ``freqs_cis`` table itself (theta, YaRN factor and ramp; the fitted
``original_seq_len``/``beta_*`` reproduce the same frequencies; the public defaults, beta
32/1 and a power-of-two context, are preferred, which recovers V3's own numbers). Either
way the parameters are checked against the table when it holds data.

Routing as the public ``Gate`` does it: groups ranked by the sum of their top-2 scores when
the gate has a bias (V3's aux-loss-free selection bias), by their max otherwise; weights
normalized to sum 1 only for sigmoid scores; times ``route_scale``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from ...dialects.mla.rope import rope_params
from ...runtime.semantics.rope import correction_range, inv_freq
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

DESCRIPTION = "a Transformer laid out like DeepSeek-V3's inference/model.py"

_MLA_FINGERPRINT = ("wkv_a", "kv_norm")  # present in every MLA of the public code


# ------------------------------------------------------------------------------ recognition


def matches(model: nn.Module) -> bool:
    """A model with the public code's layout and calling convention, but not mlacc's own.

    mlacc's `DeepSeekModel` was laid out after the public code (same attribute names) and has
    its own adapter; what tells them apart is the calling convention this adapter binds:
    ``forward(tokens, start_pos)`` returning last-position logits (ours takes ``positions`` and
    returns every position). Both are checked: the `DeepSeekModel` class explicitly, then the
    ``start_pos`` parameter. Layers are checked loosely (one MLA-looking attention is enough),
    so that a model with a broken layer gets `adapt`'s error naming that layer.
    """
    from ..models.deepseek import DeepSeekModel

    if isinstance(model, DeepSeekModel):
        return False
    parts = ("embed", "norm", "head")
    if not all(isinstance(getattr(model, name, None), nn.Module) for name in parts):
        return False
    layers = getattr(model, "layers", None)
    if not isinstance(layers, (nn.ModuleList, nn.Sequential)) or len(layers) == 0:
        return False
    if "start_pos" not in _parameters(model.forward):
        return False
    return any(
        all(
            isinstance(getattr(getattr(layer, "attn", None), name, None), nn.Module)
            for name in _MLA_FINGERPRINT
        )
        for layer in layers
    )


def _parameters(fn: Any) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


# --------------------------------------------------------------------------------- settings


class _Settings:
    """Reads an option from a module attribute, else from ``model.args``, else fails."""

    def __init__(self, model: nn.Module) -> None:
        self.args = getattr(model, "args", None)

    def get(
        self, path: str, module: Any, names: tuple[str, ...], arg: str | None, kind: type = int
    ) -> Any:
        for name in names:
            value = getattr(module, name, None)
            if value is not None and not isinstance(value, (nn.Module, torch.Tensor)):
                return _as(kind, value, path, module, name)
        if arg is not None and self.args is not None and getattr(self.args, arg, None) is not None:
            return _as(kind, getattr(self.args, arg), path, module, f"args.{arg}")
        where = " or ".join(f"'{n}'" for n in names)
        extra = f" (nor model.args.{arg})" if arg else ""
        raise fail(path, module, f"has no attribute {where}{extra}")

    def arg(self, name: str) -> Any:
        return None if self.args is None else getattr(self.args, name, None)


def _as(kind: type, value: Any, path: str, module: Any, name: str) -> Any:
    try:
        if kind is int and float(value) != int(value):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise fail(path, module, f"'{name}' = {value!r} is not a valid {kind.__name__}") from None


# ---------------------------------------------------------------------------------- tensors


def _weight(parent: nn.Module, name: str, path: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The weight of linear `parent.name` (no bias, no fp8 block scales) of shape `shape`."""
    module = getattr(parent, name, None)
    where = f"{path}.{name}" if path else name
    if module is None:
        raise fail(path, parent, f"has no '{name}'")
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise fail(where, module, "has no weight tensor")
    if getattr(module, "bias", None) is not None:
        raise fail(where, module, "has a bias; DeepSeek's projections have none")
    if weight.element_size() == 1 or getattr(module, "scale", None) is not None:
        raise fail(
            where,
            module,
            f"holds quantized {str(weight.dtype).removeprefix('torch.')} "
            "weights with block scales; dequantize them first (mlacc applies its own "
            "FP8 with fp8=True)",
        )
    _check_shape(where, module, weight, shape)
    return weight


def _check_shape(where: str, module: Any, weight: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(weight.shape) != tuple(shape):
        raise fail(where, module, f"weight has shape {list(weight.shape)}, expected {list(shape)}")


def _norm(parent: nn.Module, name: str, path: str, dim: int) -> CapturedRMSNorm:
    weight, eps, module = _norm_parts(parent, name, path, dim)
    return CapturedRMSNorm(weight, eps, source_of(module))


def _norm_parts(
    parent: nn.Module, name: str, path: str, dim: int
) -> tuple[torch.Tensor, float, nn.Module]:
    """``(weight, eps, module)`` of the RMSNorm `parent.name`."""
    module = getattr(parent, name, None)
    where = f"{path}.{name}" if path else name
    if module is None:
        raise fail(path, parent, f"has no '{name}'")
    weight = getattr(module, "weight", None)
    eps = getattr(module, "eps", None)
    if not isinstance(weight, torch.Tensor) or not isinstance(eps, (int, float)):
        raise fail(where, module, "expected an RMSNorm with 'weight' and a numeric 'eps'")
    _check_shape(where, module, weight, (dim,))
    return weight, float(eps), module


# ------------------------------------------------------------------------------------ rotary


def _rope(model: nn.Module, settings: _Settings, dim: int) -> dict[str, Any]:
    """The `rope` attribute (interleaved pairs, YaRN as ``precompute_freqs_cis``)."""
    table = getattr(model, "freqs_cis", None)
    if not isinstance(table, torch.Tensor) or table.is_meta:
        table = None  # nothing to read or check
    elif not table.is_complex():
        raise fail("freqs_cis", table, f"expected a complex rotary table, got {table.dtype}")
    rope = None
    names = ("rope_theta", "rope_factor", "original_seq_len", "beta_fast", "beta_slow")
    if settings.args is not None and all(settings.arg(n) is not None for n in names):
        max_seq_len = settings.arg("max_seq_len") or getattr(model, "max_seq_len", None)
        yarn = max_seq_len is not None and max_seq_len > settings.arg("original_seq_len")
        rope = rope_params(
            layout="interleaved",
            theta=settings.arg("rope_theta"),
            factor=float(settings.arg("rope_factor")) if yarn else 1.0,
            original_seq_len=int(settings.arg("original_seq_len")),
            beta_fast=settings.arg("beta_fast"),
            beta_slow=settings.arg("beta_slow"),
            cos_sin_scale=1.0,
            truncate=True,
        )
    if table is None:
        if rope is None:
            raise fail(
                "",
                model,
                "no rotary parameters: the model has neither a 'freqs_cis' "
                "table with data nor 'args' (a ModelArgs); set model.args = ModelArgs(...)",
            )
        return rope
    freqs = _table_freqs(model, table, dim)
    if rope is not None and _same_freqs(rope, freqs, dim):
        return rope
    fitted = _fit_rope(freqs, dim)
    if fitted is None:
        detail = "does not match model.args and " if rope is not None else ""
        raise fail(
            "freqs_cis",
            table,
            f"the rotary table {detail}is not a (YaRN-corrected) rope table that mlacc can express",
        )
    return fitted


def _table_freqs(model: nn.Module, table: torch.Tensor, dim: int) -> torch.Tensor:
    """The per-pair frequencies of a ``freqs_cis`` table (its row for position 1), float64."""
    if table.dim() != 2 or table.shape[1] != dim // 2 or table.shape[0] < 2:
        raise fail(
            "freqs_cis",
            table,
            f"expected a complex table [max_seq_len, {dim // 2}], got {list(table.shape)}",
        )
    row0, row1 = table[0].to(torch.complex128), table[1].to(torch.complex128)
    if not (
        torch.allclose(row0, torch.ones_like(row0), atol=1e-5)
        and torch.allclose(row1.abs(), torch.ones_like(row1.abs()), atol=1e-5)
    ):
        raise fail("freqs_cis", table, "is not e^(i·t·f) (position 0 must be 1, magnitudes 1)")
    return torch.angle(row1)


def _same_freqs(rope: dict[str, Any], freqs: torch.Tensor, dim: int) -> bool:
    ours = inv_freq(rope, dim).to(torch.float64)
    return bool(torch.allclose(ours, freqs, rtol=1e-5, atol=1e-9))


def _round_sig(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}")


def _fit_rope(freqs: torch.Tensor, dim: int) -> dict[str, Any] | None:
    """Rotary parameters that reproduce `freqs` (interleaved layout), or None.

    Outside YaRN's ramp the frequencies are ``theta^(-2i/dim)`` (fast end) or that over the
    factor (slow end), so consecutive ratios give theta at either end and the slowest pair gives
    the factor; the integer ramp bounds ``(low, high)`` are searched, then expressed as
    ``beta_fast``/``beta_slow`` rotations of a nominal ``original_seq_len``.
    """
    half = dim // 2
    if half == 1:
        plain = rope_params(layout="interleaved", factor=1.0)
        return plain if _same_freqs(plain, freqs, dim) else None
    ratios = [float(freqs[1] / freqs[0]), float(freqs[-1] / freqs[-2])]
    for ratio in ratios:
        if not 0 < ratio < 1:
            continue
        raw = ratio ** (-dim / 2)
        for theta in (_round_sig(raw, 4), _round_sig(raw, 6), raw):
            plain = rope_params(layout="interleaved", theta=theta, factor=1.0)
            if _same_freqs(plain, freqs, dim):
                return plain
            rope = _fit_yarn(freqs, dim, theta)
            if rope is not None:
                return rope
    return None


def _fit_yarn(freqs: torch.Tensor, dim: int, theta: float) -> dict[str, Any] | None:
    half = dim // 2
    orig = inv_freq(rope_params(theta=theta, factor=1.0), dim).to(torch.float64)
    q = freqs / orig  # smooth + (1 - smooth) / factor
    if not float(q[-1]) < 1 - 1e-6:
        return None
    raw = 1.0 / float(q[-1])
    for factor in (_round_sig(raw, 4), _round_sig(raw, 6), raw):
        ramp = 1 - (q - 1 / factor) / (1 - 1 / factor)
        index = torch.arange(half, dtype=torch.float64)
        for low in range(dim):
            for high in range(low, dim):
                span = (high + 0.001 if low == high else high) - low
                expected = ((index - low) / span).clamp(0, 1)
                if float((expected - ramp).abs().max()) > 1e-3:
                    continue
                rope = _yarn_params(theta, factor, low, high, dim)
                if _same_freqs(rope, freqs, dim):
                    return rope
    return None


def _yarn_params(theta: float, factor: float, low: int, high: int, dim: int) -> dict[str, Any]:
    """YaRN parameters whose floored/ceiled correction range is ``(low, high)``.

    Prefers the public defaults (beta_fast 32, beta_slow 1) with a power-of-two
    ``original_seq_len`` (DeepSeek-V3: 4096), when one gives that range; otherwise a nominal
    4096 with betas solved for the range.
    """
    scale = 2 * math.log(theta) / dim

    def length(correction_dim: float, rotations: float) -> float:
        # the L at which dim * ln(L / (2π r)) / (2 ln θ) == correction_dim
        return 2 * math.pi * rotations * math.exp(correction_dim * scale)

    def params(original: int, beta_fast: float, beta_slow: float) -> dict[str, Any]:
        return rope_params(
            layout="interleaved",
            theta=theta,
            factor=factor,
            original_seq_len=original,
            beta_fast=beta_fast,
            beta_slow=beta_slow,
            cos_sin_scale=1.0,
            truncate=True,
        )

    lowest = max(length(low, 32.0) if low > 0 else 0.0, length(high - 1, 1.0))
    highest = min(length(low + 1, 32.0), length(high, 1.0) if high < dim - 1 else math.inf)
    for k in range(1, 40):
        rope = params(2**k, 32.0, 1.0)
        if lowest < 2**k < highest and correction_range(rope, dim) == (low, high):
            return rope
    original = 4096
    return params(
        original,
        original / (2 * math.pi) * math.exp(-(low + 0.5) * scale),
        original / (2 * math.pi) * math.exp(-(high - 0.5) * scale),
    )


# -------------------------------------------------------------------------------- attention


def _attention(
    attn: nn.Module, path: str, settings: _Settings, dim: int, rope: dict[str, Any]
) -> CapturedAttention:
    missing = [n for n in ("wkv_a", "kv_norm", "wkv_b", "wo") if getattr(attn, n, None) is None]
    if missing:
        raise fail(path, attn, f"is not an MLA: missing {', '.join(missing)}")
    has_lora = all(getattr(attn, n, None) is not None for n in ("wq_a", "q_norm", "wq_b"))
    if not has_lora and getattr(attn, "wq", None) is None:
        raise fail(path, attn, "has no query projection (wq, or wq_a/q_norm/wq_b)")
    get = settings.get
    heads = get(path, attn, ("n_heads",), "n_heads")
    local = getattr(attn, "n_local_heads", heads)
    if local != heads:
        raise fail(
            path,
            attn,
            f"is a tensor-parallel shard ({local} of {heads} heads); "
            "capture the model built with world_size 1",
        )
    kv_rank = get(path, attn, ("kv_lora_rank",), "kv_lora_rank")
    dn = get(path, attn, ("qk_nope_head_dim",), "qk_nope_head_dim")
    dr = get(path, attn, ("qk_rope_head_dim",), "qk_rope_head_dim")
    dv = get(path, attn, ("v_head_dim",), "v_head_dim")
    q_rank = get(path, attn, ("q_lora_rank",), "q_lora_rank") if has_lora else 0
    if has_lora and q_rank <= 0:
        raise fail(path, attn, f"has wq_a/q_norm/wq_b but q_lora_rank = {q_rank}")
    qk = dn + dr
    weights = {
        "wkv_a": _weight(attn, "wkv_a", path, (kv_rank + dr, dim)),
        "wkv_b": _weight(attn, "wkv_b", path, (heads * (dn + dv), kv_rank)),
        "wo": _weight(attn, "wo", path, (dim, heads * dv)),
    }
    weights["kv_norm"], eps, _ = _norm_parts(attn, "kv_norm", path, kv_rank)
    if has_lora:
        weights["wq_a"] = _weight(attn, "wq_a", path, (q_rank, dim))
        weights["q_norm"], q_eps, _ = _norm_parts(attn, "q_norm", path, q_rank)
        if q_eps != eps:
            raise fail(path, attn, f"q_norm eps {q_eps} differs from kv_norm eps {eps}")
        weights["wq_b"] = _weight(attn, "wq_b", path, (heads * qk, q_rank))
    else:
        weights["wq"] = _weight(attn, "wq", path, (heads * qk, dim))
    scale = getattr(attn, "softmax_scale", None)
    if scale is None:
        scale = qk**-0.5
        if rope["factor"] != 1.0:
            mscale = 0.1 * float(settings.arg("mscale") or 1.0) * math.log(rope["factor"]) + 1.0
            scale *= mscale * mscale
    spec = AttentionSpec(
        num_heads=heads,
        q_lora_rank=q_rank,
        kv_lora_rank=kv_rank,
        qk_nope_head_dim=dn,
        qk_rope_head_dim=dr,
        v_head_dim=dv,
        softmax_scale=float(scale),
        eps=eps,
        rope=rope,
        weights=weights,
    )
    return CapturedAttention(spec, source_of(attn))


# ----------------------------------------------------------------------------- feed-forward


def _mlp(mlp: nn.Module, path: str, dim: int) -> CapturedMLP:
    return CapturedMLP(*_mlp_weights(mlp, path, dim), source_of(mlp))


def _mlp_weights(mlp: nn.Module, path: str, dim: int) -> tuple[torch.Tensor, ...]:
    """``(w1, w3, w2)`` = (gate, up, down) of a SwiGLU MLP ``w2(silu(w1 x) * w3 x)``."""
    w1 = getattr(getattr(mlp, "w1", None), "weight", None)
    if not isinstance(w1, torch.Tensor) or w1.dim() != 2:
        raise fail(path, mlp, "expected an MLP with w1/w2/w3")
    inter = w1.shape[0]
    return (
        _weight(mlp, "w1", path, (inter, dim)),
        _weight(mlp, "w3", path, (inter, dim)),
        _weight(mlp, "w2", path, (dim, inter)),
    )


def _experts(module: CapturedMoE) -> tuple[list, list, list]:
    n = sum(1 for name in module._tensor_names if name.endswith(".w1"))
    return tuple([module.tensor(f"{e}.{w}") for e in range(n)] for w in ("w1", "w3", "w2"))


def _router(gate: nn.Module, path: str, settings: _Settings, dim: int, experts: int) -> RouterSpec:
    get = settings.get
    weight = getattr(gate, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise fail(path, gate, "has no weight tensor")
    _check_shape(path, gate, weight, (experts, dim))
    bias = getattr(gate, "bias", None)
    if bias is not None:
        _check_shape(path, gate, bias, (experts,))
    score_func = get(path, gate, ("score_func",), "score_func", str)
    if score_func not in ("sigmoid", "softmax"):
        raise fail(path, gate, f"score_func '{score_func}' is not sigmoid or softmax")
    top_k = get(path, gate, ("topk",), "n_activated_experts")
    groups = get(path, gate, ("n_groups",), "n_expert_groups")
    topk_groups = get(path, gate, ("topk_groups",), "n_limited_groups")
    route_scale = get(path, gate, ("route_scale",), "route_scale", float)
    group_score = "top2_sum" if bias is not None else "max"
    if groups < 1 or experts % groups:
        raise fail(path, gate, f"{experts} experts do not split into {groups} groups")
    per_group = experts // groups
    if groups > 1:
        if not 1 <= topk_groups <= groups:
            raise fail(path, gate, f"topk_groups {topk_groups} not in [1, {groups}]")
        if group_score == "top2_sum" and per_group < 2:
            raise fail(
                path,
                gate,
                "a biased gate ranks groups by their top-2 sum, which needs "
                f"2+ experts per group (has {per_group})",
            )
    eligible = topk_groups * per_group if groups > 1 else experts
    if not 1 <= top_k <= eligible:
        raise fail(path, gate, f"topk {top_k} not in [1, {eligible}] (experts in the kept groups)")
    return RouterSpec(
        weight=weight,
        bias=bias,
        score_func=score_func,
        top_k=top_k,
        n_groups=groups,
        topk_group=topk_groups if groups > 1 else 1,
        group_score=group_score,
        route_scale=route_scale,
        norm_topk_prob=score_func == "sigmoid",
    )


def _moe(moe: nn.Module, path: str, settings: _Settings, dim: int) -> CapturedMoE:
    experts = getattr(moe, "experts", None)
    if not isinstance(experts, (nn.ModuleList, list, tuple)) or len(experts) == 0:
        raise fail(path, moe, "has no experts list")
    count = len(experts)
    start = getattr(moe, "experts_start_idx", 0)
    end = getattr(moe, "experts_end_idx", count)
    if (start, end) != (0, count):
        raise fail(
            path,
            moe,
            f"is an expert-parallel shard (experts {start}..{end - 1} of "
            f"{count}); capture the model built with world_size 1",
        )
    router = _router(moe.gate, f"{path}.gate", settings, dim, count)
    tensors: dict[str, torch.Tensor] = {}
    inter = None
    for e, expert in enumerate(experts):
        where = f"{path}.experts.{e}"
        if expert is None:
            raise fail(where, moe, "is missing (None)")
        w1, w3, w2 = _mlp_weights(expert, where, dim)
        if inter is None:
            inter = w1.shape[0]
        elif w1.shape[0] != inter:
            raise fail(where, expert, f"inner size {w1.shape[0]} differs from expert 0's {inter}")
        tensors |= {f"{e}.w1": w1, f"{e}.w3": w3, f"{e}.w2": w2}
    shared_experts = getattr(moe, "shared_experts", None)
    shared = None
    if shared_experts is not None:
        shared = _mlp(shared_experts, f"{path}.shared_experts", dim)
    return CapturedMoE(router, tensors, _experts, shared, source_of(moe))


def _ffn(ffn: nn.Module | None, path: str, settings: _Settings, dim: int) -> nn.Module:
    if ffn is None:
        raise fail(path, ffn, "is missing")
    if getattr(ffn, "gate", None) is not None and getattr(ffn, "experts", None) is not None:
        return _moe(ffn, path, settings, dim)
    if all(getattr(ffn, n, None) is not None for n in ("w1", "w2", "w3")):
        return _mlp(ffn, path, dim)
    raise fail(path, ffn, "expected an MLP (w1/w2/w3) or a MoE (gate/experts/shared_experts)")


# ------------------------------------------------------------------------------------ model


def adapt(model: nn.Module) -> CausalLM:
    """The captured form of a public-code ``Transformer`` (see the module docstring)."""
    settings = _Settings(model)
    embed = getattr(model.embed, "weight", None)
    if not isinstance(embed, torch.Tensor) or embed.dim() != 2:
        raise fail("embed", model.embed, "has no 2-D weight")
    vocab, dim = embed.shape
    part = getattr(model.embed, "part_vocab_size", vocab)
    if part != getattr(model.embed, "vocab_size", vocab):
        raise fail(
            "embed", model.embed, "is a vocabulary shard; capture the model built with world_size 1"
        )
    head = _weight(model, "head", "", (vocab, dim))
    first = next(
        (
            layer.attn
            for layer in model.layers
            if getattr(layer, "attn", None) is not None
            and getattr(layer.attn, "qk_rope_head_dim", None) is not None
        ),
        None,
    )
    rope_dim = (
        getattr(first, "qk_rope_head_dim", None)
        if first is not None
        else settings.arg("qk_rope_head_dim")
    )
    if rope_dim is None:
        raise fail("layers", model.layers, "no attention says its qk_rope_head_dim")
    rope = _rope(model, settings, int(rope_dim))
    blocks = []
    for i, layer in enumerate(model.layers):
        path = f"layers.{i}"
        for name in ("attn_norm", "attn", "ffn_norm", "ffn"):
            if getattr(layer, name, None) is None:
                raise fail(path, layer, f"has no '{name}'")
        blocks.append(
            CapturedBlock(
                _norm(layer, "attn_norm", path, dim),
                _attention(layer.attn, f"{path}.attn", settings, dim, rope),
                _norm(layer, "ffn_norm", path, dim),
                _ffn(layer.ffn, f"{path}.ffn", settings, dim),
                source_of(layer),
            )
        )
    entries = {block.attn.spec.cache_entry for block in blocks}
    if len(entries) != 1:
        raise fail("layers", model.layers, f"layers differ in latent cache width {sorted(entries)}")
    lm = CapturedCausalLM(embed, blocks, _norm(model, "norm", "", dim), head, source_of(model))
    table = getattr(model, "freqs_cis", None)
    max_seq_len = (
        getattr(model, "max_seq_len", None)
        or settings.arg("max_seq_len")
        or (table.shape[0] if isinstance(table, torch.Tensor) else None)
    )
    if not max_seq_len:
        raise fail("", model, "has no max_seq_len (nor args.max_seq_len, nor a freqs_cis table)")

    def bind(args: tuple, kwargs: dict) -> Bound:
        unknown = set(kwargs) - {"tokens", "start_pos"}
        if unknown:
            raise CaptureError(
                f"forward(tokens, start_pos=0) got unexpected argument(s) "
                f"{', '.join(sorted(unknown))}"
            )
        tokens = kwargs.get("tokens", args[0] if args else None)
        start_pos = kwargs.get("start_pos", args[1] if len(args) > 1 else 0)
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            raise CaptureError(
                "forward(tokens, start_pos=0) needs tokens as an integer tensor [batch, seq]"
            )
        return Bound(tokens, default_positions(tokens, start_pos))

    return CausalLM(
        lm=lm,
        family="public",
        max_seq_len=int(max_seq_len),
        bind=bind,
        format=lambda logits: logits[:, -1],
    )
