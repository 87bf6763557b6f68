"""Capture modules: a DeepSeek causal LM re-assembled from mlacc custom-op calls.

Adapters (`adapters/`) read a user's model (ours, Hugging Face's, the public inference
code's) and build a `CapturedCausalLM` that shares the user's weight tensors but computes
with one custom op per building block (`mla.rms_norm`, `mla.attention`, `moe.router`,
`moe.experts`, `moe.mlp`). torch.export of it yields a graph of those ops plus a few aten ops
(embedding, residual adds, reshapes, the LM head), which raising turns into mla/moe ops.

Every capture module records `source`, the ``file:line`` of the user's module it stands for;
the importer stamps it on the ops it produces, so errors and reports point at the user's code.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .custom_ops import mark_layer_input, op, weight_ref


class CaptureModule(nn.Module):
    """Base: `source` is the ``file:line`` of the user module this one stands for.

    A capture module holds the user's weight tensors but never hands them to torch.export:
    `weight(name)` emits a named reference (`custom_ops.weight_ref`) instead, keyed by the
    user's state-dict name (`assign_weight_keys`). Export cost is then independent of the
    number of weights, and a meta-device model traces like a real one.
    """

    def __init__(self, source: str = "") -> None:
        super().__init__()
        self.source = source
        self._held: dict[str, torch.Tensor] = {}
        self._keys: dict[str, str] = {}
        self._parts: dict[str, list[str]] = {}  # held name -> the user keys it stacks

    def hold(self, name: str, tensor: torch.Tensor | None) -> None:
        """Keeps one of the user's tensors under `name` (None: absent optional weight)."""
        if tensor is not None:
            self._held[name] = tensor

    def has(self, name: str) -> bool:
        return name in self._held

    def weight(self, name: str) -> torch.Tensor | None:
        """The held tensor `name` as a named weight reference in the traced graph."""
        tensor = self._held.get(name)
        if tensor is None:
            return None
        key = self._keys.get(name)
        if key is None:
            raise KeyError(
                f"weight '{name}' of {type(self).__name__} has no key; "
                "call assign_weight_keys first"
            )
        return weight_ref(key, tensor)

    def weight_keys(self) -> dict[str, str]:
        """Held name -> the weight's key (set by `assign_weight_keys`)."""
        return dict(self._keys)

    def structure(self) -> tuple | None:
        """Everything this module's trace depends on except its weights' keys and data; None
        when unknown (a submodule that is not a capture module). Layers with equal structures
        trace to the same ops (`repeated_layers`)."""
        children = []
        for name, child in self.named_children():
            sub = child.structure() if isinstance(child, CaptureModule) else None
            if sub is None:
                return None
            children.append((name, sub))
        held = sorted((n, tuple(t.shape), str(t.dtype)) for n, t in self._held.items())
        return (type(self).__qualname__, self.source, tuple(held), self.options(), *children)

    def options(self) -> str:
        """The attributes this module gives its ops, as text (part of `structure`)."""
        return ""


def assign_weight_keys(root: nn.Module, names: dict[int, str]) -> None:
    """Names every held tensor by the user's state-dict key (`names`: id(tensor) -> key)."""
    for module in root.modules():
        if not isinstance(module, CaptureModule):
            continue
        if isinstance(module, CapturedMoE):
            module.stack_experts(names)
        for name, tensor in module._held.items():
            if name in module._keys:
                continue
            key = names.get(id(tensor))
            if key is None:
                raise KeyError(
                    f"{type(module).__name__}.{name} is not a parameter or buffer of "
                    "the model being captured"
                )
            module._keys[name] = key


def held_tensors(root: nn.Module) -> dict[str, torch.Tensor]:
    """Key -> tensor of every weight the captured model reads."""
    out: dict[str, torch.Tensor] = {}
    for module in root.modules():
        if isinstance(module, CaptureModule):
            for name, key in module._keys.items():
                out[key] = module._held[name]
    return out


def stacked_parts(root: nn.Module) -> dict[str, list[str]]:
    """Key -> the user's keys, in order, of every weight the capture stacked from several
    tensors (`CapturedMoE`'s experts): how to rebuild it from a checkpoint."""
    out: dict[str, list[str]] = {}
    for module in root.modules():
        if isinstance(module, CaptureModule):
            for name, parts in module._parts.items():
                out[module._keys[name]] = parts
    return out


class CapturedRMSNorm(CaptureModule):
    """`mla.rms_norm` with the user's weight."""

    def __init__(self, weight: torch.Tensor, eps: float, source: str = "") -> None:
        super().__init__(source)
        self.hold("weight", weight)
        self.eps = float(eps)

    def options(self) -> str:
        return repr(self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return op("mla.rms_norm")(x, self.weight("weight"), eps=self.eps)


@dataclass
class AttentionSpec:
    """What an adapter read off a user's MLA module: dims, options and weights.

    `weights` maps wq | (wq_a, q_norm, wq_b), wkv_a, kv_norm, wkv_b, wo to tensors laid out like
    ``nn.Linear.weight`` (``[out, in]``) and norm weights.
    """

    num_heads: int
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    softmax_scale: float
    eps: float
    rope: dict[str, Any]
    weights: dict[str, torch.Tensor] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        return {
            "num_heads": self.num_heads,
            "q_lora_rank": self.q_lora_rank,
            "kv_lora_rank": self.kv_lora_rank,
            "qk_nope_head_dim": self.qk_nope_head_dim,
            "qk_rope_head_dim": self.qk_rope_head_dim,
            "v_head_dim": self.v_head_dim,
            "softmax_scale": float(self.softmax_scale),
            "eps": float(self.eps),
            "rope": self.rope,
        }

    @property
    def cache_entry(self) -> int:
        """Latent cache values per token: kv_lora_rank + qk_rope_head_dim."""
        return self.kv_lora_rank + self.qk_rope_head_dim


_ATTENTION_WEIGHTS = ("wkv_a", "kv_norm", "wkv_b", "wo", "wq", "wq_a", "q_norm", "wq_b")


class CapturedAttention(CaptureModule):
    """`mla.attention`: the whole MLA block, optionally over a latent KV cache."""

    def __init__(self, spec: AttentionSpec, source: str = "") -> None:
        super().__init__(source)
        self.spec = spec
        for name in _ATTENTION_WEIGHTS:
            self.hold(name, spec.weights.get(name))

    def options(self) -> str:
        return repr(self.spec.attributes())

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        kv_cache: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        block_table: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        w = {name: self.weight(name) for name in _ATTENTION_WEIGHTS}
        return op("mla.attention")(
            x,
            positions,
            w["wkv_a"],
            w["kv_norm"],
            w["wkv_b"],
            w["wo"],
            w["wq"],
            w["wq_a"],
            w["q_norm"],
            w["wq_b"],
            kv_cache,
            key_mask,
            block_table,
            **self.spec.attributes(),
        )


class CapturedMLP(CaptureModule):
    """`moe.mlp`: a SwiGLU FFN (dense layers, shared experts)."""

    def __init__(
        self, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor, source: str = ""
    ) -> None:
        super().__init__(source)
        for name, tensor in (("w_gate", w_gate), ("w_up", w_up), ("w_down", w_down)):
            self.hold(name, tensor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return op("moe.mlp")(x, self.weight("w_gate"), self.weight("w_up"), self.weight("w_down"))


@dataclass
class RouterSpec:
    """What an adapter read off a user's gate: weights and routing options."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    score_func: str
    top_k: int
    n_groups: int
    topk_group: int
    group_score: str
    route_scale: float
    norm_topk_prob: bool

    def attributes(self) -> dict[str, Any]:
        return {
            "score_func": self.score_func,
            "top_k": self.top_k,
            "n_groups": self.n_groups,
            "topk_group": self.topk_group,
            "group_score": self.group_score,
            "route_scale": float(self.route_scale),
            "norm_topk_prob": bool(self.norm_topk_prob),
        }


# The experts' weights as (w_gate, w_up, w_down): per-expert lists ([I, D], [I, D], [D, I]) or
# stacked tensors ([E, I, D], [E, I, D], [E, D, I]), read from the module's `tensor(name)`.
ExpertWeights = Callable[[nn.Module], tuple[Any, Any, Any]]


class CapturedMoE(CaptureModule):
    """DeepSeekMoE: `moe.router` + `moe.experts` (+ the shared experts' `moe.mlp`).

    `moe.experts` takes stacked expert weights. An adapter hands over the user's tensors
    (`tensors`) and how to read the experts from them (`expert_weights`); before capture,
    `assign_weight_keys` stacks them once (free on the meta device) under keys derived from
    the user's: ``<common prefix>.w_gate`` / ``.w_up`` / ``.w_down``. One op then carries all
    experts, whatever their number: tracing a 256-expert layer costs what an 8-expert one does.
    """

    def __init__(
        self,
        router: RouterSpec,
        tensors: dict[str, torch.Tensor],
        expert_weights: ExpertWeights,
        shared: CapturedMLP | None,
        source: str = "",
    ) -> None:
        super().__init__(source)
        self.router = router
        self.hold("router_weight", router.weight)
        self.hold("router_bias", router.bias)
        self._tensor_names = sorted(tensors)
        self._expert_sources = dict(tensors)
        self._expert_weights = expert_weights
        self.shared = shared

    def tensor(self, name: str) -> torch.Tensor:
        """An expert tensor by the adapter's name for it (as given, for `expert_weights`)."""
        return self._expert_sources[name]

    def stack_experts(self, names: dict[int, str]) -> None:
        """Holds the stacked expert weights, keyed after the user's expert tensors."""
        keys = [names.get(id(t)) for t in self._expert_sources.values()]
        if None in keys or not keys:
            raise KeyError(f"{type(self).__name__}: expert tensors are not parameters of the model")
        prefix = _common_prefix(keys)
        for name, weights in zip(("w_gate", "w_up", "w_down"), self._expert_weights(self)):
            if isinstance(weights, torch.Tensor):
                stacked = weights
            else:
                stacked = torch.stack(list(weights))
                parts = [names.get(id(t)) for t in weights]
                if None not in parts:
                    self._parts[name] = parts
            self._held[name] = stacked.detach()
            self._keys[name] = f"{prefix}{name}"

    def options(self) -> str:
        return repr(self.router.attributes())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        weights, indices = op("moe.router")(
            tokens,
            self.weight("router_weight"),
            self.weight("router_bias"),
            **self.router.attributes(),
        )
        y = op("moe.experts")(
            tokens,
            weights,
            indices,
            self.weight("w_gate"),
            self.weight("w_up"),
            self.weight("w_down"),
        )
        if self.shared is not None:
            y = y + self.shared(tokens)
        return y.reshape(shape)


def _common_prefix(keys: list[str]) -> str:
    """The longest common ``.``-separated prefix of `keys`, with its trailing dot."""
    parts = [k.split(".") for k in keys]
    common = []
    for column in zip(*parts):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    if len(common) == len(parts[0]):  # a single tensor: drop its own name
        common = common[:-1]
    return ".".join(common) + "." if common else ""


class CapturedBlock(CaptureModule):
    """One decoder layer: ``x + attn(attn_norm(x))``, then ``+ ffn(ffn_norm(x))``."""

    def __init__(
        self,
        attn_norm: CapturedRMSNorm,
        attn: CapturedAttention,
        ffn_norm: CapturedRMSNorm,
        ffn: nn.Module,
        source: str = "",
    ) -> None:
        super().__init__(source)
        self.attn_norm, self.attn, self.ffn_norm, self.ffn = attn_norm, attn, ffn_norm, ffn

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        kv_cache: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        block_table: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn, new_cache = self.attn(self.attn_norm(x), positions, kv_cache, key_mask, block_table)
        x = x + attn
        return x + self.ffn(self.ffn_norm(x)), new_cache


class CapturedMTP(CaptureModule):
    """DeepSeek-V3's depth-1 multi-token prediction layer (`MTPLayer`): predicts ``t_{i+2}``.

    ``h' = eh_proj([enorm(embed(t_{i+1})); hnorm(h_i)])``, then a decoder block (a normal MLA
    block with its own latent cache), then its `norm`, then the main model's `head`; `embed`
    and `head` are the main model's tensors (shared weights, the same keys)."""

    def __init__(
        self,
        embed: torch.Tensor,
        enorm: CapturedRMSNorm,
        hnorm: CapturedRMSNorm,
        eh_proj: torch.Tensor,
        block: CapturedBlock,
        norm: CapturedRMSNorm,
        head: torch.Tensor,
        source: str = "",
    ) -> None:
        super().__init__(source)
        self.hold("embed", embed)
        self.enorm, self.hnorm = enorm, hnorm
        self.hold("eh_proj", eh_proj)
        self.block = block
        self.norm = norm
        self.hold("head", head)

    def forward(
        self,
        tokens: torch.Tensor,
        hidden: torch.Tensor,
        positions: torch.Tensor,
        kv_cache: torch.Tensor | None = None,
        block_table: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """MTP logits ``[B, S, vocab]`` for the next tokens ``t_{i+1}`` (`tokens`) and the main
        model's final hidden states ``h_i`` (`hidden`, after its final norm) at `positions`
        (those of ``i``); with `kv_cache`, also the updated MTP cache."""
        x = torch.cat(
            [self.enorm(F.embedding(tokens, self.weight("embed"))), self.hnorm(hidden)], dim=-1
        )
        x, new_cache = self.block(
            F.linear(x, self.weight("eh_proj")), positions, kv_cache, None, block_table
        )
        return F.linear(self.norm(x), self.weight("head")), new_cache


class CapturedCausalLM(CaptureModule):
    """Embedding → blocks → final norm → LM head, with or without latent KV caches; optionally
    an MTP layer (`mtp`) that drafts the token after next."""

    def __init__(
        self,
        embed: torch.Tensor,
        blocks: list[CapturedBlock],
        norm: CapturedRMSNorm,
        head: torch.Tensor,
        source: str = "",
        mtp: CapturedMTP | None = None,
    ) -> None:
        super().__init__(source)
        self.hold("embed", embed)
        self.blocks = nn.ModuleList(blocks)
        self.norm = norm
        self.hold("head", head)
        self.mtp = mtp

    @property
    def cache_entry(self) -> int:
        return self.blocks[0].attn.spec.cache_entry

    @property
    def dtype(self) -> torch.dtype:
        """The activation dtype: the embedding's."""
        return self._held["embed"].dtype

    @property
    def dim(self) -> int:
        """The model (hidden state) width."""
        return int(self._held["embed"].shape[1])

    def hidden(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        caches: list[torch.Tensor] | None,
        *,
        key_mask: torch.Tensor | None = None,
        block_table: torch.Tensor | None = None,
        layers: Collection[int] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Final hidden states ``[B, S, dim]`` (after the final norm: the input of the head)
        and (with caches) the updated caches; arguments as `logits`.

        `layers`: run only these layers, each input marked (`mark_layer_input`), as the
        first trace of a repeated-layer capture (`repeated_layers`)."""
        h = F.embedding(tokens, self.weight("embed"))
        new_caches = []
        for i, block in enumerate(self.blocks):
            if layers is not None:
                if i not in layers:
                    continue
                h = mark_layer_input(h, i)
            cache = None if caches is None else caches[i]
            h, cache = block(h, positions, cache, key_mask, block_table)
            if cache is not None:
                new_caches.append(cache)
        if layers is not None:
            h = mark_layer_input(h, len(self.blocks))
        return self.norm(h), new_caches

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head over final hidden states."""
        return F.linear(hidden, self.weight("head"))

    def logits(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        caches: list[torch.Tensor] | None,
        *,
        key_mask: torch.Tensor | None = None,
        block_table: torch.Tensor | None = None,
        layers: Collection[int] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits ``[B, S, vocab]`` and (with caches) the updated caches.

        `key_mask` (no caches) hides padded keys; `block_table` makes the caches paged pools
        (docs/execution-contract.md); `layers` as in `hidden`."""
        h, new_caches = self.hidden(
            tokens, positions, caches, key_mask=key_mask, block_table=block_table, layers=layers
        )
        return self.head(h), new_caches


def default_positions(tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Positions ``start .. start+S-1`` for every sequence of ``tokens [B, S]``."""
    batch, seq = tokens.shape
    return (torch.arange(seq, device=tokens.device) + start).expand(batch, seq)
