"""Model → graph-level MLIR: adapt, torch.export, torch-mlir FX import, raise to mla/moe.

Weights never enter the IR: the importer's input hook turns every parameter and buffer into
an ``mlacc.weight`` op named by the user's state-dict key, so a meta-device model (no data)
captures exactly like a real one, and the IR of the 671B model stays a few MB.

A causal LM gets three entry points: ``forward`` (the user's call, the user's output),
``prefill`` and ``decode`` (tokens, positions and one latent KV cache per layer in; logits and
the updated caches out; value semantics, the runtime owns the buffers). A model with a
multi-token-prediction layer (DeepSeek-V3's MTP) also returns the final hidden states from
``prefill``/``decode`` (right after the logits) and gets ``verify`` (the main model over two
tokens: the last one and a draft), ``draft`` (the MTP layer over two (token, hidden) pairs,
with its own latent cache) and ``draft_prefill`` (the MTP layer over a prompt chunk): what
speculative decoding runs (docs/execution-contract.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from ..dialects._mlir import ir
from ..dialects.core import weight
from ..dialects.parsing import as_module
from .adapters import CausalLM, adapt
from .capture_modules import (
    CaptureModule,
    assign_weight_keys,
    default_positions,
    held_tensors,
    stacked_parts,
)
from .errors import CaptureError
from .raising import opaque_ops, raise_custom_ops
from .repeated_layers import LayerRuns, plan_layer_runs, stamp_repeated_layers

Progress = Callable[[str], None]

# KV cache length when none is asked for: models advertise up to 160k positions, and example
# caches of that length would not fit in memory for a real config.
DEFAULT_CACHE_LEN = 4096

# Tokens per sequence that `verify` and `draft` take: the last confirmed token and one draft
# (depth-1 MTP).
SPECULATIVE_WIDTH = 2
MTP_ENTRY_POINTS = ("verify", "draft", "draft_prefill")


@dataclass
class EntryPoint:
    """How an entry point is called: input names and pytree specs of inputs and outputs."""

    input_names: list[str]
    in_spec: str | None = None
    out_spec: str | None = None
    # Non-tensor leaves of the example call (ints, floats, bools, None, strings), by their
    # position among the flattened (args, kwargs): export specialized the graph to them.
    constants: list[dict[str, Any]] = field(default_factory=list)
    # What each tensor input is to a causal LM ("tokens", "positions", "mask" or "other"): the
    # runtime pads a smaller call up to the compiled shape by these (docs/execution-contract.md).
    roles: list[str] = field(default_factory=list)


@dataclass
class Captured:
    """The imported module (in the caller's context) and what the runtime needs to call it."""

    module: ir.Module
    entry_points: dict[str, EntryPoint] = field(default_factory=dict)
    family: str = ""
    cache: dict[str, Any] | None = None  # {"layers", "batch", "max_seq_len", "entry", "dtype"}
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # key -> the tensor read
    # key -> the user's keys it stacks, for weights the capture built from several tensors
    parts: dict[str, list[str]] = field(default_factory=dict)


class _Forward(nn.Module):
    def __init__(self, model: CausalLM, layers: list[int] | None) -> None:
        super().__init__()
        self.lm = model.lm
        self._model = model
        self.layers = layers

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        bound = self._model.bind(args, kwargs)
        logits, _ = self.lm.logits(
            bound.tokens, bound.positions, None, key_mask=bound.key_mask, layers=self.layers
        )
        return self._model.format(logits)


class _Cached(nn.Module):
    """prefill/decode/verify: ``(tokens, positions, *caches)``, paged: ``(tokens, positions,
    block_table, *caches)``; returns ``(logits, *caches)``, or with an MTP layer
    ``(logits, hidden, *caches)`` (`hidden`: the final hidden states, after the final norm)."""

    def __init__(self, model: CausalLM, paged: bool, layers: list[int] | None) -> None:
        super().__init__()
        self.lm = model.lm
        self.paged = paged
        self.with_hidden = model.lm.mtp is not None
        self.layers = layers

    @property
    def cache_args(self) -> int:
        """The index of layer 0's cache among the arguments."""
        return 3 if self.paged else 2

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, *rest: torch.Tensor):
        table, caches = (rest[0], rest[1:]) if self.paged else (None, rest)
        hidden, new_caches = self.lm.hidden(
            tokens, positions, list(caches), block_table=table, layers=self.layers
        )
        logits = self.lm.head(hidden)
        return (logits, hidden, *new_caches) if self.with_hidden else (logits, *new_caches)


class _Draft(nn.Module):
    """draft/draft_prefill: ``(tokens, hidden, positions, [block_table,] mtp_cache)``: the next
    tokens ``t_{i+1}``, the main model's hidden states ``h_i`` and the positions ``i``;
    returns ``(mtp_logits, mtp_cache)`` (the logits predict ``t_{i+2}``)."""

    def __init__(self, model: CausalLM, paged: bool) -> None:
        super().__init__()
        self.lm = model.lm
        self.paged = paged

    def forward(
        self, tokens: torch.Tensor, hidden: torch.Tensor, positions: torch.Tensor, *rest
    ) -> tuple[torch.Tensor, torch.Tensor]:
        table, (cache,) = (rest[0], rest[1:]) if self.paged else (None, rest)
        logits, new_cache = self.lm.mtp(tokens, hidden, positions, cache, table)
        return logits, new_cache


def capture(
    model: nn.Module,
    args: tuple,
    kwargs: dict | None = None,
    *,
    context: ir.Context,
    cache_len: int | None = None,
    cache_block_size: int | None = None,
    entry_points: tuple[str, ...] = ("forward", "prefill", "decode", *MTP_ENTRY_POINTS),
    progress: Progress | None = None,
    stamp_repeats: bool = True,
) -> Captured:
    """Captures `model` called as ``model(*args, **kwargs)`` into a module in `context`.

    The example call fixes the compiled shapes: its batch is the largest batch the artifact
    serves and its length is the prefill chunk (docs/execution-contract.md).

    Args:
        cache_len: tokens the latent KV cache holds per sequence (default: the model's
            max_seq_len, at most DEFAULT_CACHE_LEN).
        cache_block_size: page the cache in blocks of this many tokens (None: contiguous).
        entry_points: which of forward/prefill/decode (and, for a model with an MTP layer,
            verify/draft/draft_prefill) to build.
        progress: called with a line per stage (export, import, raise) and its time.
        stamp_repeats: trace the first layer of each run of identical layers and stamp out
            the rest (`repeated_layers`; the same module, several times faster for deep
            models); False traces every layer.
    """
    kwargs = dict(kwargs or {})
    if cache_len is not None and cache_len <= 0:
        raise CaptureError(f"cache_len must be positive, got {cache_len}")
    if cache_block_size is not None and cache_block_size <= 0:
        raise CaptureError(f"cache_block_size must be positive, got {cache_block_size}")
    say = progress or (lambda _line: None)
    start = time.perf_counter()
    adapted = adapt(model)
    names = _weight_names(model)
    assign_weight_keys(adapted.lm, names)
    runs = plan_layer_runs(list(adapted.lm.blocks))
    layers = runs.traced if runs.repeats and stamp_repeats else None
    traced = runs.count if layers is None else len(layers)
    say(
        f"adapted {type(model).__name__} as {adapted.family} ({runs.count} layers, "
        f"{traced} traced) in {time.perf_counter() - start:.1f}s"
    )
    tokens, positions, _ = adapted.bind(tuple(args), kwargs)
    programs: list[tuple[str, nn.Module, tuple, dict]] = []
    if "forward" in entry_points:
        programs.append(("forward", _Forward(adapted, layers), tuple(args), kwargs))
    cache = None
    if {"prefill", "decode"} & set(entry_points):
        batch = tokens.shape[0]
        length = cache_len or min(adapted.max_seq_len, DEFAULT_CACHE_LEN)
        if length < tokens.shape[1]:
            raise CaptureError(
                f"cache_len {length} cannot hold the {tokens.shape[1]} tokens of "
                "the example call (prefill writes them all)"
            )
        dtype = adapted.lm.dtype
        mtp = adapted.lm.mtp is not None and length >= SPECULATIVE_WIDTH
        cache = cache_layout(
            layers=len(adapted.lm.blocks),
            batch=batch,
            max_seq_len=length,
            entry=adapted.lm.cache_entry,
            dtype=str(dtype).removeprefix("torch."),
            chunk=tokens.shape[1],
            block_size=cache_block_size,
            mtp_dim=adapted.lm.dim if adapted.lm.mtp is not None else None,
        )
        shape = cache["shape"]
        caches = tuple(
            torch.zeros(*shape, dtype=dtype, device=tokens.device) for _ in adapted.lm.blocks
        )
        table: tuple[torch.Tensor, ...] = ()
        if cache_block_size:
            width = cache["max_blocks"]
            table = (torch.zeros(batch, width, dtype=torch.int32, device=tokens.device),)
        cached = _Cached(adapted, paged=bool(cache_block_size), layers=layers)
        if "prefill" in entry_points:
            programs.append(("prefill", cached, (tokens, positions, *table, *caches), {}))
        if "decode" in entry_points:
            step = tokens[:, :1]
            call = (step, default_positions(step), *table, *caches)
            programs.append(("decode", cached, call, {}))
        if mtp:
            pair = torch.zeros(batch, SPECULATIVE_WIDTH, dtype=tokens.dtype, device=tokens.device)
            if "verify" in entry_points:
                call = (pair, default_positions(pair), *table, *caches)
                programs.append(("verify", cached, call, {}))
            draft = _Draft(adapted, paged=bool(cache_block_size))
            mtp_cache = torch.zeros(*shape, dtype=dtype, device=tokens.device)
            for name, ids in (("draft", pair), ("draft_prefill", tokens)):
                if name in entry_points:
                    # where the traced hidden states live: with the weight references
                    # (`custom_ops.weight_ref`), on the default device whatever the model's
                    hidden = torch.zeros(*ids.shape, adapted.lm.dim, dtype=dtype)
                    call = (ids, hidden, default_positions(ids), *table, mtp_cache)
                    programs.append((name, draft, call, {}))
        if "mtp" in cache:  # the MTP cache buffer exists only for the entry points that take it
            drafts = any(name.startswith("draft") for name, *_ in programs)
            cache["mtp"]["layers"] = 1 if drafts else 0
    captured = Captured(
        module=None,
        family=adapted.family,
        cache=cache,  # type: ignore[arg-type]
        weights=held_tensors(adapted.lm),
        parts=stacked_parts(adapted.lm),
    )
    from torch_mlir.extras.fx_importer import FxImporter

    importer = FxImporter(context=context, hooks=_WeightHooks(names))
    for name, wrapper, call_args, call_kwargs in programs:
        t0 = time.perf_counter()
        try:
            ep = torch.export.export(wrapper, call_args, call_kwargs, strict=False)
        except Exception as err:
            raise CaptureError(f"torch.export of '{name}' failed: {_first_line(err)}") from err
        _relocate(ep, wrapper)
        t1 = time.perf_counter()
        importer.import_program(ep, func_name=name)
        say(f"{name}: exported in {t1 - t0:.1f}s, imported in {time.perf_counter() - t1:.1f}s")
        captured.entry_points[name] = EntryPoint(
            input_names=_input_names(name, ep, len(adapted.lm.blocks), bool(cache_block_size)),
            in_spec=_spec(ep.call_spec.in_spec) if name == "forward" else None,
            out_spec=_spec(ep.call_spec.out_spec) if name == "forward" else None,
            constants=_constants(call_args, call_kwargs) if name == "forward" else [],
            roles=_roles(call_args, call_kwargs, adapted) if name == "forward" else [],
        )
    module = importer.module
    with context:
        t0 = time.perf_counter()
        raised = raise_custom_ops(module)
        say(f"raised {raised} ops to mla/moe in {time.perf_counter() - t0:.1f}s")
        if layers is not None:
            t0 = time.perf_counter()
            _stamp_layers(module, runs, programs)
            stamped = runs.count - len(runs.runs)
            say(f"stamped {stamped} repeated layers in {time.perf_counter() - t0:.1f}s")
        left = opaque_ops(module)
        if left:
            op_name, where = left[0]
            raise CaptureError(
                f"{where or '<unknown>'}: op '{op_name}' stays an opaque "
                "torch.operator after capture; no target can run it"
            )
    with context:
        captured.module = as_module(module.operation)
    return captured


def _stamp_layers(
    module: ir.Module, runs: LayerRuns, programs: list[tuple[str, nn.Module, tuple, dict]]
) -> None:
    """Expands the traced layers of every entry point that runs the decoder stack."""
    wrappers = {name: wrapper for name, wrapper, *_ in programs}
    for fn in module.operation.regions[0].blocks[0].operations:
        wrapper = wrappers[ir.StringAttr(fn.attributes["sym_name"]).value]
        if isinstance(wrapper, _Forward):
            stamp_repeated_layers(fn, runs, cache_args=None)
        elif isinstance(wrapper, _Cached):
            stamp_repeated_layers(fn, runs, cache_args=wrapper.cache_args)


class _WeightHooks:
    """FX importer hooks: parameters and buffers become `mlacc.weight` ops."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names

    def prepare_module(self, module_op: Any) -> None:
        pass

    def resolve_literal(self, gni: Any, literal: Any, info: Any) -> None:
        return None

    def resolve_input(self, gni: Any, value: Any, info: Any) -> ir.Value:
        key = self.names.get(id(value), info.input_spec.target)
        return weight(key, gni._cc.tensor_to_vtensor_type(value))

    def store_produced_value(self, *args: Any) -> None:
        raise CaptureError("the model mutates a parameter or buffer; capture needs a pure forward")


def _weight_names(model: nn.Module) -> dict[int, str]:
    names: dict[int, str] = {}
    for name, tensor in [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]:
        names.setdefault(id(tensor), name)
    return names


_FRAME = 'File "{file}", line {line}, in forward\n'


def _relocate(ep: torch.export.ExportedProgram, root: nn.Module) -> None:
    """Points every node at the user's source line of the module it came from."""
    default = getattr(root, "lm", root)
    for node in ep.graph.nodes:
        source = ""
        for fqn, _ in reversed(list((node.meta.get("nn_module_stack") or {}).values())):
            try:
                sub = root.get_submodule(fqn)
            except AttributeError:
                continue
            if isinstance(sub, CaptureModule) and sub.source:
                source = sub.source
                break
        source = source or getattr(default, "source", "")
        if source:
            file, _, line = source.rpartition(":")
            node.meta["stack_trace"] = _FRAME.format(file=file, line=line)


def cache_layout(
    *,
    layers: int,
    batch: int,
    max_seq_len: int,
    entry: int,
    dtype: str,
    chunk: int,
    block_size: int | None,
    mtp_dim: int | None = None,
) -> dict[str, Any]:
    """The manifest's ``kv_cache``: what the runtime allocates and how the entry points take it.

    Paged: a pool of ``blocks`` blocks (block 0 is scratch, the rest cover every sequence at
    full length) and a ``[batch, max_blocks]`` block table. With an MTP layer (`mtp_dim`: the
    hidden width), ``mtp`` says that prefill/decode/verify return the final hidden states
    ``[B, S, mtp_dim]`` right after the logits, and that the MTP layer has ``layers`` more
    cache buffers of the same layout (and block table), taken by draft/draft_prefill."""
    out: dict[str, Any] = {
        "layers": layers,
        "batch": batch,
        "max_seq_len": max_seq_len,
        "entry": entry,
        "dtype": dtype,
        "chunk": chunk,
        "layout": "paged" if block_size else "contiguous",
    }
    if block_size:
        max_blocks = -(-max_seq_len // block_size)
        blocks = 1 + batch * max_blocks
        out.update(block_size=block_size, max_blocks=max_blocks, blocks=blocks)
        out["shape"] = [blocks, block_size, entry]
    else:
        out["shape"] = [batch, max_seq_len, entry]
    if mtp_dim:
        out["mtp"] = {"hidden": True, "dim": mtp_dim, "layers": 1, "width": SPECULATIVE_WIDTH}
    return out


def _input_names(
    entry: str, ep: torch.export.ExportedProgram, layers: int, paged: bool
) -> list[str]:
    if entry == "forward":
        return [
            s.arg.name
            for s in ep.graph_signature.input_specs
            if s.kind == torch.export.graph_signature.InputKind.USER_INPUT
        ]
    table = ["block_table"] if paged else []
    if entry.startswith("draft"):
        return ["tokens", "hidden", "positions", *table, "cache.mtp"]
    return ["tokens", "positions", *table, *[f"cache.{i}" for i in range(layers)]]


def _spec(spec: pytree.TreeSpec | None) -> str | None:
    if spec is None:
        return None
    try:
        return pytree.treespec_dumps(spec)
    except Exception:  # noqa: BLE001 - unserializable node types: outputs come back flat
        return None


def _constants(args: tuple, kwargs: dict) -> list[dict[str, Any]]:
    leaves = pytree.tree_leaves((args, kwargs))
    out = []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, torch.Tensor):
            continue
        if not (leaf is None or isinstance(leaf, (bool, int, float, str))):
            raise CaptureError(
                f"argument {i} of the model call is a {type(leaf).__name__}; "
                "capture takes tensors and plain constants"
            )
        out.append({"index": i, "value": leaf})
    return out


def _roles(args: tuple, kwargs: dict, model: CausalLM) -> list[str]:
    """The role of every tensor leaf of the call, found by what `bind` made of it."""
    bound = model.bind(args, kwargs)
    roles = []
    for leaf in pytree.tree_leaves((args, kwargs)):
        if not isinstance(leaf, torch.Tensor):
            continue
        if leaf is bound.tokens:
            roles.append("tokens")
        elif leaf.data_ptr() == bound.positions.data_ptr():  # the same tensor or a view of it
            roles.append("positions")
        elif bound.key_mask is not None and leaf.shape == bound.tokens.shape:
            roles.append("mask")
        else:
            roles.append("other")
    return roles


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return re.sub(r"\s+", " ", text.splitlines()[0]) if text else type(err).__name__


def import_exported_program(
    program: torch.export.ExportedProgram, *, context: ir.Context, progress: Progress | None = None
) -> Captured:
    """Imports a user's ExportedProgram as the `forward` entry point, as traced: its mlacc
    custom ops become dialect ops, everything else stays torch-dialect ops."""
    from torch_mlir.extras.fx_importer import FxImporter

    say = progress or (lambda _line: None)
    t0 = time.perf_counter()
    importer = FxImporter(context=context, hooks=_WeightHooks({}))
    try:
        importer.import_program(program, func_name="forward")
    except Exception as err:
        raise CaptureError(f"cannot import the exported program: {_first_line(err)}") from err
    say(f"forward: imported in {time.perf_counter() - t0:.1f}s")
    with context:
        raise_custom_ops(program_module := importer.module)
        left = opaque_ops(program_module)
    if left:
        op_name, where = left[0]
        raise CaptureError(
            f"{where or '<unknown>'}: op '{op_name}' stays an opaque "
            "torch.operator after import; no target can run it"
        )
    names = [
        s.arg.name
        for s in program.graph_signature.input_specs
        if s.kind == torch.export.graph_signature.InputKind.USER_INPUT
    ]
    entry = EntryPoint(names, _spec(program.call_spec.in_spec), _spec(program.call_spec.out_spec))
    with context:
        imported = as_module(program_module.operation)
    return Captured(module=imported, entry_points={"forward": entry})
