"""The MLA cost model: FLOPs and bytes of each way to run one attention op, on a roofline.

Ways compared for an op with a latent KV cache of ``T`` tokens and ``S`` new ones:

- absorbed: ``W_UK,h^T`` applied to ``q_nope`` (query side), attention over the latent cache
  (``C + dr`` values per token), ``W_UV,h`` applied to the context (output side);
- un-absorbed: ``wkv_b`` expands every cached latent into per-head ``k_nope`` and ``v``
  (``H * (dn + dv)`` values per token, written and read back), then ordinary attention;

and, for the absorbed form, pre-multiplying weights at compile time: ``W_UK,h^T W_UQ,h``
(query side, needs the q low-rank path) and ``W_O,h W_UV,h`` (output side). Each choice is the
cheaper estimate of ``max(flops / peak, bytes / bandwidth)`` on the target's roofline. Both
attention cores are causal: the ``S`` new tokens are the last of the ``T`` keys, so a query
attends to ``T - (S - 1) / 2`` keys on average; expanding the cache (un-absorbed) still
touches all ``T``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MlaShape:
    """The dims of one `mla.attention` op in one entry point."""

    batch: int
    new_tokens: int  # S
    keys: int  # T: cache length (or S without a cache)
    heads: int
    nope: int
    rope: int
    value: int
    latent: int  # C = kv_lora_rank
    q_lora: int
    dim: int
    element_bytes: int


@dataclass(frozen=True)
class Roofline:
    """The machine the estimate is for (defaults: H100 SXM datasheet, bf16 dense)."""

    peak_tflops: float = 989.0
    bandwidth_gbs: float = 3350.0
    name: str = ""  # the device, for the reason

    def describe(self) -> str:
        """``on NAME (P TFLOP/s, B GB/s)``: the roofline the decision used."""
        where = f" {self.name}" if self.name else " the default roofline"
        return f"on{where} ({self.peak_tflops:.4g} TFLOP/s, {self.bandwidth_gbs:.4g} GB/s)"

    def seconds(self, flops: float, nbytes: float) -> float:
        return max(flops / (self.peak_tflops * 1e12), nbytes / (self.bandwidth_gbs * 1e9))


@dataclass(frozen=True)
class Cost:
    """FLOPs, bytes moved and the roofline time of one alternative."""

    flops: float
    nbytes: float
    seconds: float

    def describe(self) -> str:
        gflop, mb = self.flops / 1e9, self.nbytes / 1e6
        return f"{self.seconds * 1e6:.3g} us ({gflop:.3g} GFLOP, {mb:.3g} MB)"


def _cost(flops: float, nbytes: float, machine: Roofline) -> Cost:
    return Cost(flops, nbytes, machine.seconds(flops, nbytes))


def attention_costs(s: MlaShape, machine: Roofline) -> dict[str, Cost]:
    """Costs of the attention core, absorbed and un-absorbed (shared projections left out)."""
    b, n, t, h = s.batch, s.new_tokens, s.keys, s.heads
    seen = max(1.0, t - (min(n, t) - 1) / 2)  # causal: keys a query attends to, on average
    cache = b * t * (s.latent + s.rope)
    wkv_b = h * (s.nope + s.value) * s.latent
    absorbed_flops = (
        2 * b * n * h * (s.nope * s.latent + seen * (2 * s.latent + s.rope) + s.latent * s.value)
    )
    absorbed_bytes = s.element_bytes * (cache + wkv_b + 2 * b * n * h * s.latent)
    expand_flops = 2 * b * t * s.latent * h * (s.nope + s.value)
    core_flops = 2 * b * n * h * seen * (s.nope + s.rope + s.value)
    kv = b * t * h * (s.nope + s.value)
    unabsorbed_bytes = s.element_bytes * (cache + wkv_b + 2 * kv)
    return {
        "absorbed": _cost(absorbed_flops, absorbed_bytes, machine),
        "unabsorbed": _cost(expand_flops + core_flops, unabsorbed_bytes, machine),
    }


def premultiply_costs(s: MlaShape, machine: Roofline) -> dict[str, Cost]:
    """Costs of the absorbed form's query and output sides, with and without pre-multiplied
    weights (``q_*`` needs the q low-rank path: without it the product is not smaller)."""
    b, n, h, e = s.batch, s.new_tokens, s.heads, s.element_bytes
    out = {
        "o_separate": _cost(
            2 * b * n * h * s.value * (s.latent + s.dim),
            e * h * s.value * (s.latent + s.dim),
            machine,
        ),
        "o_premultiplied": _cost(
            2 * b * n * h * s.latent * s.dim, e * h * s.latent * s.dim, machine
        ),
    }
    if s.q_lora:
        out["q_separate"] = _cost(
            2 * b * n * h * s.nope * (s.q_lora + s.latent),
            e * h * s.nope * (s.q_lora + s.latent),
            machine,
        )
        out["q_premultiplied"] = _cost(
            2 * b * n * h * s.latent * s.q_lora, e * h * s.latent * s.q_lora, machine
        )
    return out


@dataclass(frozen=True)
class Decision:
    """What the pass does with one op, and why (shown in the IR)."""

    absorb: bool
    premultiply_q: bool
    premultiply_o: bool
    reason: str


def decide(
    s: MlaShape, has_cache: bool, machine: Roofline, absorb: str, premultiply: str
) -> Decision:
    """Picks absorbed vs un-absorbed and the pre-multiplications (`absorb`, `premultiply`:
    "auto" follows the cost model, "always"/"never" override it)."""
    core = attention_costs(s, machine)
    compare = (
        f"absorbed {core['absorbed'].describe()} vs un-absorbed {core['unabsorbed'].describe()}"
    )
    shape = f"S={s.new_tokens} T={s.keys}"
    if not has_cache:
        use = False
        why = f"{shape}: no latent KV cache to attend over, un-absorbed ({compare})"
    elif absorb in ("always", "never"):
        use = absorb == "always"
        why = f"{shape}: absorb={absorb} by option ({compare})"
    else:
        use = core["absorbed"].seconds <= core["unabsorbed"].seconds
        cheaper = "absorbed" if use else "un-absorbed"
        why = f"{shape}: {cheaper} is cheaper {machine.describe()} ({compare})"
    if not use:
        return Decision(False, False, False, why)
    pre = premultiply_costs(s, machine)
    picks = []
    for side in ("q", "o"):
        if f"{side}_premultiplied" not in pre:
            picks.append(False)
            continue
        if premultiply in ("always", "never"):
            picks.append(premultiply == "always")
        else:
            picks.append(pre[f"{side}_premultiplied"].seconds < pre[f"{side}_separate"].seconds)
        why += (
            f"; {side} side {'pre-multiplied' if picks[-1] else 'kept apart'}: "
            f"{pre[f'{side}_premultiplied'].describe()} pre-multiplied vs "
            f"{pre[f'{side}_separate'].describe()} apart"
        )
    return Decision(True, picks[0], picks[1], why)
