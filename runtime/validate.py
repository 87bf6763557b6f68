"""Structural checks of what an artifact carries, so a damaged file fails at load time with
one ArtifactError that says what is wrong, instead of somewhere inside a kernel."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ArtifactError
from .plan import Arg, Function, Plan
from .torch_ops import is_torch_op

if TYPE_CHECKING:
    from .semantics.registry import InPlace

TENSOR_DTYPES = frozenset(
    {
        "float32",
        "float16",
        "bfloat16",
        "float64",
        "float8_e4m3fn",
        "float8_e5m2",
        "int64",
        "int32",
        "int16",
        "int8",
        "uint8",
        "bool",
    }
)


def _fail(where: str, what: str) -> None:
    raise ArtifactError(f"malformed artifact: {where} {what}")


def _expect(ok: bool, where: str, what: str) -> None:
    if not ok:
        _fail(where, what)


def check_tensor_spec(spec: Any, where: str) -> None:
    """A {shape: [int|None...], dtype: name} dict."""
    _expect(isinstance(spec, dict), where, "must be a tensor spec object")
    shape, dtype = spec.get("shape"), spec.get("dtype")
    _expect(
        isinstance(shape, list)
        and all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40)
            for d in shape
        ),
        where,
        f"has an invalid shape {shape!r}",
    )
    _expect(
        isinstance(dtype, str) and dtype in TENSOR_DTYPES, where, f"has an unknown dtype {dtype!r}"
    )


def check_manifest(manifest: dict[str, Any]) -> None:
    """Entry points, their signatures, the weight table and the payload list are well-formed."""
    entry_points = manifest["entry_points"]
    _expect(bool(entry_points), "manifest", "has no entry points")
    for name, sig in entry_points.items():
        where = f"entry point '{name}'"
        _expect(isinstance(sig, dict), where, "must be an object")
        _expect(isinstance(sig.get("inputs"), list), where, "has no input list")
        _expect(isinstance(sig.get("outputs"), list), where, "has no output list")
        for i, spec in enumerate(sig["inputs"]):
            check_tensor_spec(spec, f"{where} input {i}")
            _expect(isinstance(spec.get("name", ""), str), f"{where} input {i}", "has a bad name")
        for i, spec in enumerate(sig["outputs"]):
            if spec is not None:
                check_tensor_spec(spec, f"{where} output {i}")
        constants = sig.get("constants", [])
        _expect(
            isinstance(constants, list)
            and all(
                isinstance(c, dict)
                and isinstance(c.get("index"), int)
                and "value" in c
                and (c["value"] is None or isinstance(c["value"], (bool, int, float, str)))
                for c in constants
            ),
            where,
            "has malformed constants",
        )
        for key in ("in_spec", "out_spec"):
            _expect(sig.get(key) is None or isinstance(sig[key], str), where, f"has a bad {key}")
        roles = sig.get("roles", [])
        _expect(
            isinstance(roles, list)
            and all(r in ("tokens", "positions", "mask", "other") for r in roles),
            where,
            "has malformed input roles",
        )
    default = manifest.get("default_entry")
    _expect(
        default is None or (isinstance(default, str) and default in entry_points),
        "manifest",
        f"names a default entry point {default!r} that does not exist",
    )
    weights = manifest.get("weights", {})
    _expect(
        isinstance(weights, dict)
        and isinstance(weights.get("present", True), bool)
        and isinstance(weights.get("tensors", {}), dict),
        "manifest",
        "has a malformed weight table",
    )
    for key, spec in weights.get("tensors", {}).items():
        check_tensor_spec(spec, f"weight '{key}'")
    payload = manifest.get("payload", [])
    _expect(
        isinstance(payload, list) and all(isinstance(p, str) for p in payload),
        "manifest",
        "has a malformed payload list",
    )
    if "kv_cache" in manifest:
        check_cache_spec(manifest["kv_cache"])


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_cache_spec(spec: Any) -> None:
    """The manifest's ``kv_cache``: what the runtime allocates (docs/execution-contract.md)."""
    where = "manifest kv_cache"
    _expect(isinstance(spec, dict), where, "must be an object")
    for key in ("layers", "batch", "max_seq_len", "entry", "chunk"):
        _expect(_positive_int(spec.get(key)), where, f"needs a positive integer '{key}'")
    _expect(spec.get("dtype") in TENSOR_DTYPES, where, f"has a bad dtype {spec.get('dtype')!r}")
    layout = spec.get("layout", "contiguous")
    _expect(layout in ("contiguous", "paged"), where, f"has an unknown layout {layout!r}")
    shape = spec.get("shape")
    if layout == "paged":
        for key in ("block_size", "max_blocks", "blocks"):
            _expect(_positive_int(spec.get(key)), where, f"needs a positive integer '{key}'")
        _expect(
            spec["max_blocks"] * spec["block_size"] >= spec["max_seq_len"]
            and spec["blocks"] >= 1 + spec["max_blocks"],
            where,
            "has a block pool that cannot hold one sequence besides the scratch block",
        )
        want = [spec["blocks"], spec["block_size"], spec["entry"]]
    else:
        want = [spec["batch"], spec["max_seq_len"], spec["entry"]]
    _expect(shape is None or shape == want, where, f"has shape {shape}, expected {want}")


def check_weights(manifest: dict[str, Any], weights: Mapping[str, Any]) -> None:
    """Every stored tensor matches the manifest's weight table where the table names it."""
    table = manifest.get("weights", {}).get("tensors", {})
    for key, tensor in weights.items():
        spec = table.get(key)
        if spec is None:
            continue
        dtype = str(tensor.dtype).removeprefix("torch.")
        _expect(
            list(tensor.shape) == spec["shape"] and dtype == spec["dtype"],
            f"weight '{key}'",
            f"is {dtype}{list(tensor.shape)} but the manifest says {spec['dtype']}{spec['shape']}",
        )


def check_plan(
    plan: Plan,
    manifest: dict[str, Any],
    weights: Mapping[str, Any],
    has_kernel: Callable[[str], bool],
    in_place_forms: Mapping[str, InPlace] | None = None,
) -> None:
    """SSA well-formedness, known ops and weights, and agreement with the manifest.
    `in_place_forms` (default: the semantics' ``IN_PLACE``) says which operand each op marked
    in place updates."""
    entry_points = manifest["entry_points"]
    _expect(
        set(plan.functions) == set(entry_points),
        "plan",
        f"functions {sorted(plan.functions)} differ from the entry points {sorted(entry_points)}",
    )
    need_weights = manifest.get("weights", {}).get("present", True)
    for name, fn in plan.functions.items():
        where = f"plan function '{name}'"
        _expect(
            len(fn.inputs) == len(entry_points[name]["inputs"]),
            where,
            "has a different number of inputs than its entry point",
        )
        defined: set[int] = set()
        for vid in fn.inputs:
            _define(vid, defined, where)
        for i, step in enumerate(fn.steps):
            at = f"{where} step {i} ('{step.op}')"
            _expect(
                isinstance(step.op, str)
                and isinstance(step.attrs, dict)
                and isinstance(step.args, list)
                and isinstance(step.results, list),
                at,
                "is malformed",
            )
            for arg in step.args:
                _check_arg(arg, defined, at)
            if step.op == "mlacc.weight":
                key = step.attrs.get("key")
                _expect(isinstance(key, str), at, "has no weight key")
                _expect(
                    not need_weights or key in weights,
                    at,
                    f"reads weight '{key}' that is not stored",
                )
            else:
                _expect(
                    has_kernel(step.op) or is_torch_op(step.op),
                    at,
                    "names an op no kernel implements",
                )
            for vid in step.results:
                if vid is not None:
                    _define(vid, defined, at)
        _expect(isinstance(fn.outputs, list), where, "has no output list")
        for arg in fn.outputs:
            _check_arg(arg, defined, f"{where} outputs")
        _check_donations(fn, where, in_place_forms)


def _check_donations(fn: Function, where: str, forms: Mapping[str, InPlace] | None = None) -> None:
    """Every in-place step updates a donated input that nothing else reads and returns it as
    the output it is donated to; every donation has exactly one such step. (In-place kernels
    write into the caller's tensors: a plan that gets this wrong corrupts them silently.)"""
    from .interpreter import value_refs
    from .semantics import IN_PLACE

    _expect(
        all(
            isinstance(i, int)
            and isinstance(o, int)
            and 0 <= i < len(fn.inputs)
            and 0 <= o < len(fn.outputs)
            for i, o in fn.donated.items()
        ),
        where,
        "donates an input or output that does not exist",
    )
    _expect(
        len(set(fn.donated.values())) == len(fn.donated),
        where,
        "donates two inputs to the same output",
    )
    donated = {fn.inputs[i]: fn.outputs[o].get("ref") for i, o in fn.donated.items()}
    readers: dict[int, int] = {}
    for vid in [r for step in fn.steps for r in value_refs(step.args)] + value_refs(fn.outputs):
        readers[vid] = readers.get(vid, 0) + 1
    updated: set[int] = set()
    for i, step in enumerate(fn.steps):
        at = f"{where} step {i} ('{step.op}')"
        _expect(isinstance(step.in_place, bool), at, "has a non-boolean in_place flag")
        if not step.in_place:
            continue
        form = (IN_PLACE if forms is None else forms).get(step.op)
        _expect(form is not None, at, "is marked in place but the op has no in-place form")
        index = list(inspect.signature(form.fn).parameters).index(form.operand)
        buffer = step.args[index].get("ref") if index < len(step.args) else None
        _expect(
            buffer in donated and readers.get(buffer) == 1,
            at,
            "updates a buffer that is not a donated input read by this step alone",
        )
        _expect(donated[buffer] in step.results, at, "does not return the buffer it donates to")
        updated.add(buffer)
    _expect(updated == set(donated), where, "donates an input that no in-place step updates")


def _define(vid: Any, defined: set[int], where: str) -> None:
    _expect(
        isinstance(vid, int) and not isinstance(vid, bool), where, f"defines a bad value id {vid!r}"
    )
    _expect(vid not in defined, where, f"defines value {vid} twice")
    defined.add(vid)


def _check_arg(arg: Arg, defined: set[int], where: str) -> None:
    _expect(isinstance(arg, dict) and len(arg) == 1, where, f"has a malformed argument {arg!r}")
    ((kind, value),) = arg.items()
    if kind == "ref":
        _expect(
            isinstance(value, int) and value in defined,
            where,
            f"uses value {value!r} before it is defined",
        )
    elif kind == "list":
        _expect(isinstance(value, list), where, "has a malformed list argument")
        for item in value:
            _check_arg(item, defined, where)
    else:
        _expect(
            kind == "lit" and (value is None or isinstance(value, (bool, int, float, str))),
            where,
            f"has a malformed argument {arg!r}",
        )
