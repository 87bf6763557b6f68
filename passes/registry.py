"""The pass registry: pass flag -> `PassInfo` (summary, typed options, lazily loaded `run`).

A pass module registers itself at import time::

    @dataclass(frozen=True)
    class MlaAbsorbWeightsOptions:
        mode: str = option("auto", "absorb when the cost model says so ('auto'), 'always', 'never'")

    register_pass(
        "mla-absorb-weights",
        "Rewrite MLA attention to run over the latent KV cache",
        MlaAbsorbWeightsOptions,
        run,  # or "mlacc.passes._absorb_impl:run", imported on first use
    )

`all_passes()` / `get_pass()` import every public module of `mlacc.passes` once, and every
module of the `mlacc.passes` entry-point group (passes that targets bring), so a new pass needs
no edit here. Keep a pass module's top level light (bindings and dialects only; no torch):
`mlacc-opt --help` imports it. Heavy code goes behind a "module:callable" `run`.

`run(module_op, options)` gets the `builtin.module` operation and an instance of the options
dataclass. To fail, raise `PassError(message, op=the_offending_op)`: the pass manager adapter
(`mlir_pass_callback`) turns it into an error diagnostic at that op's location and signals pass
failure; any other exception does the same at the module's location, with its type named.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..dialects._mlir import ir

PassRun = Callable[[ir.Operation, Any], None]

# Targets add passes (their lowerings) under this entry-point group: name -> a module that
# calls `register_pass` when imported.
ENTRY_POINT_GROUP = "mlacc.passes"

# Modules of `mlacc.passes` that are infrastructure, not passes.
_NOT_PASS_MODULES = frozenset({"registry", "pipeline"})


class PassError(Exception):
    """Raised by a pass to fail with a diagnostic at `op`'s location (the module's if None)."""

    def __init__(self, message: str, *, op: ir.Operation | ir.OpView | None = None) -> None:
        super().__init__(message)
        self.op = op


class OptionError(ValueError):
    """A pass option that does not exist or whose value does not parse or validate."""


def option(
    default: Any,
    doc: str,
    *,
    positive: bool = False,
    min: float | None = None,  # noqa: A002 - the option's metadata reads best this way
    max: float | None = None,  # noqa: A002
    power_of_two: bool = False,
) -> Any:
    """A pass option field: ``name: int = option(4, "what it does", positive=True)``.

    The keyword arguments declare the values that make sense; every value given on a command
    line or in a pipeline is checked against them (`check_option_value`), and floats must be
    finite whatever is declared. For a tuple option they apply to each element.
    """
    if isinstance(default, (list, dict, set)):
        raise TypeError("option defaults must be immutable (use a tuple)")
    limits = {"positive": positive, "min": min, "max": max, "power_of_two": power_of_two}
    return field(default=default, metadata={"help": doc, "limits": limits})


@dataclass(frozen=True)
class NoOptions:
    """Options of a pass that takes none."""


@dataclass(frozen=True)
class OptionInfo:
    """One option as the command line spells it: kebab-case name, type, default, help."""

    name: str
    field_name: str
    type: Any
    default: Any
    help: str
    limits: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def type_name(self) -> str:
        return _type_name(self.type)

    @property
    def limits_text(self) -> str:
        """The declared range in words, e.g. ``power of two, <= 1024`` ("" if none)."""
        parts = []
        if self.limits.get("positive"):
            parts.append("> 0")
        for key, sign in (("min", ">="), ("max", "<=")):
            if self.limits.get(key) is not None:
                parts.append(f"{sign} {self.limits[key]}")
        if self.limits.get("power_of_two"):
            parts.append("power of two")
        return ", ".join(parts)


@dataclass(frozen=True)
class PassInfo:
    """A registered pass.

    Attributes:
        flag: the pass argument, e.g. ``mla-absorb-weights`` (``--mla-absorb-weights``).
        summary: one line for ``--help``.
        options: a frozen dataclass type; its fields are the options (see `option`).
        run: ``run(module_op, options)``, or ``"module:callable"`` imported on first use.
    """

    flag: str
    summary: str
    options: type = NoOptions
    run: PassRun | str = field(default="", repr=False)

    @property
    def name(self) -> str:
        """CamelCase pass name (``mla-absorb-weights`` -> ``MlaAbsorbWeights``)."""
        return "".join(part.capitalize() for part in self.flag.split("-"))

    def load(self) -> PassRun:
        """The `run` callable, importing it if it was given as a path."""
        if callable(self.run):
            return self.run
        module_name, _, attr = self.run.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def option_infos(self) -> list[OptionInfo]:
        """The options in declaration order."""
        hints = typing.get_type_hints(self.options)
        return [
            OptionInfo(
                name=f.name.replace("_", "-"),
                field_name=f.name,
                type=hints[f.name],
                default=f.default,
                help=f.metadata.get("help", ""),
                limits=dict(f.metadata.get("limits", {})),
            )
            for f in dataclasses.fields(self.options)
        ]

    def make_options(self, raw: dict[str, str] | list[tuple[str, str]] | None = None) -> Any:
        """Builds the options instance from ``{name: text}`` or ``[(name, text), ...]`` (kebab
        or snake names), checking each value against the option's declared limits.

        Raises:
            OptionError: naming the unknown option or the value that does not parse/validate.
        """
        infos = {o.name: o for o in self.option_infos()}
        values: dict[str, Any] = {}
        pairs = list(raw.items()) if isinstance(raw, dict) else list(raw or [])
        for name, text in pairs:
            opt = infos.get(name.replace("_", "-"))
            if opt is None:
                known = ", ".join(infos) or "none"
                raise OptionError(
                    f"pass '{self.flag}' has no option '{name}' (its options: {known})"
                )
            if opt.field_name in values:
                raise OptionError(f"pass '{self.flag}': option '{opt.name}' is given twice")
            try:
                values[opt.field_name] = parse_value(text, opt.type)
            except ValueError as err:
                raise OptionError(
                    f"pass '{self.flag}': bad value '{text}' for option '{opt.name}' "
                    f"({opt.type_name}): {err}"
                ) from None
        for opt in infos.values():
            if opt.field_name in values:
                problem = check_option_value(opt, values[opt.field_name])
                if problem:
                    raise OptionError(f"pass '{self.flag}': option '{opt.name}' {problem}")
        try:
            return self.options(**values)
        except (ValueError, TypeError) as err:
            raise OptionError(f"pass '{self.flag}': {err}") from None

    def format_options(self, options: Any) -> str:
        """The options that differ from their defaults, as pipeline text: ``k=v k2=v2``."""
        parts = []
        for opt in self.option_infos():
            value = getattr(options, opt.field_name)
            if value != opt.default:
                parts.append(f"{opt.name}={format_value(value)}")
        return " ".join(parts)


_REGISTRY: dict[str, PassInfo] = {}
_BROKEN: dict[str, str] = {}  # pass module -> why it failed to import
_discovered = False


def register_pass(
    flag: str, summary: str, options: type = NoOptions, run: PassRun | str = ""
) -> PassInfo:
    """Registers a pass under `flag`; returns its `PassInfo`.

    Raises:
        ValueError: the flag is taken, or `options` is not a frozen dataclass.
    """
    if flag in _REGISTRY:
        raise ValueError(f"pass '{flag}' is already registered")
    if not (dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen):
        raise ValueError(f"options of pass '{flag}' must be a frozen dataclass")
    if not run:
        raise ValueError(f"pass '{flag}' needs a run callable or 'module:callable' path")
    info = PassInfo(flag, summary, options, run)
    _REGISTRY[flag] = info
    return info


def get_pass(flag: str) -> PassInfo | None:
    """The pass registered under `flag`, or None."""
    _discover()
    return _REGISTRY.get(flag)


def all_passes() -> list[PassInfo]:
    """Every registered pass, sorted by flag."""
    _discover()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def broken_pass_modules() -> dict[str, str]:
    """Pass modules that failed to import, with the reason (shown by ``mlacc-opt --help``)."""
    _discover()
    return dict(_BROKEN)


def _discover() -> None:
    """Imports every public module of this package once, so each can call `register_pass`."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(__package__)
    for mod in pkgutil.iter_modules(package.__path__):
        if mod.name.startswith("_") or mod.name in _NOT_PASS_MODULES:
            continue
        try:
            importlib.import_module(f"{__package__}.{mod.name}")
        except Exception as err:  # noqa: BLE001 - a broken pass must not take down the others
            _BROKEN[mod.name] = f"{type(err).__name__}: {err}"
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as err:  # noqa: BLE001 - same for passes that targets add
            _BROKEN[ep.value] = f"{type(err).__name__}: {err}"


# --- the adapter to MLIR's pass manager ---


def mlir_pass_callback(info: PassInfo, options: Any) -> Callable[[ir.Operation, Any], None]:
    """The callable for ``PassManager.add``: runs the pass, turns exceptions into diagnostics."""
    run = info.load()

    def callback(op: ir.Operation, pass_: Any) -> None:
        try:
            run(op, options)
        except PassError as err:
            target = op if err.op is None else err.op
            target.location.emit_error(str(err))
            pass_.signal_pass_failure()
        except Exception as err:  # noqa: BLE001 - any bug in a pass becomes a diagnostic
            op.location.emit_error(f"pass '{info.flag}' raised {type(err).__name__}: {err}")
            pass_.signal_pass_failure()

    return callback


# --- option values: text <-> Python ---


def parse_value(text: str, kind: Any) -> Any:
    """Parses an option value of type `kind` (bool, int, float, str, Literal, tuple[T, ...])."""
    text = text.strip()
    origin = typing.get_origin(kind)
    if origin is Literal:
        value = _unquote(text)
        choices = typing.get_args(kind)
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        (item,) = [a for a in typing.get_args(kind) if a is not Ellipsis][:1]
        inner = text[1:-1] if text.startswith("{") and text.endswith("}") else text
        return tuple(parse_value(p, item) for p in split_top_level(inner, ",") if p.strip())
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if text in ("", "none", "None"):
            return None
        return parse_value(text, args[0])
    if kind is bool:
        lowered = text.lower()
        if lowered in ("", "true", "1", "on", "yes"):
            return True
        if lowered in ("false", "0", "off", "no"):
            return False
        raise ValueError("expected true or false")
    if kind is int:
        return int(text, 0)
    if kind is float:
        return float(text)
    if kind is str:
        return _unquote(text)
    raise ValueError(f"unsupported option type {kind}")


def check_option_value(opt: OptionInfo, value: Any) -> str:
    """What is wrong with `value` for `opt` ("must be positive, got 0"), or "" if nothing."""
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            problem = check_option_value(opt, item)
            if problem:
                return f"entry {i} {problem}"
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    limits = opt.limits
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be finite, got {value}"
    if limits.get("positive") and value <= 0:
        return f"must be positive, got {value}"
    if limits.get("min") is not None and value < limits["min"]:
        return f"must be >= {limits['min']}, got {value}"
    if limits.get("max") is not None and value > limits["max"]:
        return f"must be <= {limits['max']}, got {value}"
    if limits.get("power_of_two") and (value <= 0 or int(value) & (int(value) - 1) or value % 1):
        return f"must be a power of two, got {value}"
    return ""


def format_value(value: Any) -> str:
    """Pipeline text for an option value (the inverse of `parse_value`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "{" + ",".join(format_value(v) for v in value) + "}"
    if isinstance(value, str) and (not value or any(c in value for c in " ,{}()=\"'")):
        return '"' + value.replace('"', '\\"') + '"'
    return str(value)


def split_top_level(text: str, seps: str) -> list[str]:
    """Splits `text` at characters of `seps` outside quotes and (), {}, [] nesting."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch in seps and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].replace(f"\\{text[0]}", text[0])
    return text


def _type_name(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is Literal:
        return "|".join(map(str, typing.get_args(kind)))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(kind)[0])}"
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return f"{_type_name(args[0])} or none"
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(kind, str(kind))


# --- the test pass (like mlir-opt's test passes): exercises failure reporting ---


@dataclass(frozen=True)
class TestFailOnOptions:
    """Options of `test-fail-on`."""

    op: str = option("", "name of the op to fail on, e.g. mla.attention")

    def __post_init__(self) -> None:
        if not self.op:
            raise ValueError("option 'op' is required (e.g. test-fail-on{op=mla.attention})")


def _test_fail_on(module: ir.Operation, options: TestFailOnOptions) -> None:
    """Fails at the first op named ``options.op`` (pre-order); does nothing if there is none."""
    found: list[ir.Operation] = []

    def visit(op: ir.Operation) -> ir.WalkResult:
        if op.name == options.op:
            found.append(op)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    module.walk(visit, ir.WalkOrder.PRE_ORDER)
    if found:
        raise PassError(f"test-fail-on: failing on '{options.op}' as asked", op=found[0])


register_pass(
    "test-fail-on",
    "Test pass: emit an error at the first op named `op` and fail (tests failure reporting)",
    TestFailOnOptions,
    _test_fail_on,
)
