"""MLIR text in and out: parsing like mlir-opt, diagnostics detached from the context, and
printing with the model's source locations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ._mlir import ir
from .locations import format_location


@dataclass(frozen=True)
class Diagnostic:
    """One MLIR diagnostic, detached from the context.

    Attributes:
        severity: "error", "warning", "note" or "remark".
        message: the text.
        location: ``file:line:col``, or "" when the location has no file position.
        notes: attached notes.
    """

    severity: str
    message: str
    location: str = ""
    notes: tuple[Diagnostic, ...] = ()

    @classmethod
    def from_mlir(cls, diag: Any) -> Diagnostic:
        """Converts an `ir.DiagnosticInfo` / `ir.Diagnostic`."""
        return cls(
            severity=str(diag.severity).rsplit(".", 1)[-1].lower(),
            message=diag.message,
            location=format_location(diag.location),
            notes=tuple(cls.from_mlir(n) for n in diag.notes),
        )

    @property
    def position(self) -> tuple[str, int, int] | None:
        """``(file, line, col)``, or None when the location has none."""
        if not self.location:
            return None
        file, line, col = self.location.rsplit(":", 2)
        return file, int(line), int(col)

    def format(self, fallback: str = "") -> str:
        """``file:line:col: error: message`` (``fallback`` stands in for an unknown location)."""
        where = self.location or fallback
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.severity}: {self.message}"


def first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else ""


class SourceError(Exception):
    """MLIR text that does not parse or verify; `diagnostics` say where and why."""

    def __init__(self, diagnostics: list[Diagnostic], source_name: str) -> None:
        self.diagnostics = diagnostics
        self.source_name = source_name
        super().__init__("\n".join(d.format(source_name) for d in diagnostics))


def parse_module(text: str, source_name: str = "-", context: ir.Context | None = None) -> ir.Module:
    """Parses MLIR text into an `ir.Module` the way mlir-opt does: several top-level ops get an
    implicit module, and line numbers stay those of the input.

    Raises:
        SourceError: the text does not parse or verify; diagnostics name `source_name`.
    """
    with context or ir.Context.current:
        return as_module(_parse(text, source_name))


# Some malformed inputs make MLIR's parser fail without emitting a diagnostic (seen by the
# fuzzer: text glued to a trailing `loc(#alias)`); the user still gets one error line.
_SILENT_FAILURE = Diagnostic("error", "invalid MLIR: the parser stopped without saying where")


# MLIR's parser recurses once per nesting level of attributes, types and regions; a few
# thousand levels overflow the stack and kill the process. Real modules nest a few dozen deep.
MAX_NESTING = 256
_NESTING_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|->|[\[({<]|[\])}>]')


def nesting_problem(text: str, source_name: str) -> Diagnostic | None:
    """An error where `text` nests brackets deeper than `MAX_NESTING`, checked before MLIR
    parses it (strings and comments do not count); None if it does not."""
    depth = 0
    for m in _NESTING_TOKENS.finditer(text):
        token = m.group()
        if token in "[({<":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, m.start()) + 1
                col = m.start() - text.rfind("\n", 0, m.start())
                message = f"nesting deeper than {MAX_NESTING} levels (brackets, types, regions)"
                return Diagnostic("error", message, f"{source_name}:{line}:{col}")
        elif token in "])}>":
            depth = max(depth - 1, 0)
    return None


def _parse(text: str, source_name: str) -> Any:
    too_deep = nesting_problem(text, source_name)
    if too_deep is not None:
        raise SourceError([too_deep], source_name)
    try:
        return ir.Operation.parse(text, source_name=source_name)
    except ir.MLIRError as err:
        diags = [Diagnostic.from_mlir(d) for d in err.error_diagnostics]
        if not any("source must contain a single top-level operation" in d.message for d in diags):
            raise SourceError(diags or [_SILENT_FAILURE], source_name) from None
        return _parse_wrapped(text, source_name)
    except Exception as err:
        raise SourceError([python_failure(err)], source_name) from err


def _parse_wrapped(text: str, source_name: str) -> Any:
    """Parses `text` inside ``module { ... }``, keeping line numbers (and columns but one line)."""
    lines = text.split("\n")
    first = next((i for i, ln in enumerate(lines) if _starts_op(ln)), len(lines))
    shifted = 0
    if first > 0 and not lines[first - 1].lstrip().startswith(("#", "!")):
        lines[first - 1] = "module {" + (" " if lines[first - 1].strip() else "") + lines[first - 1]
    elif first < len(lines):
        lines[first] = "module { " + lines[first]
        shifted = len("module { ")
    else:
        lines.append("module {")
    meta = next((i for i, ln in enumerate(lines) if ln.startswith("{-#")), None)
    if meta is None:
        lines.append("}")
    else:
        lines.insert(meta, "}")
    try:
        return ir.Operation.parse("\n".join(lines), source_name=source_name)
    except ir.MLIRError as err:
        diags = [
            _unshift(Diagnostic.from_mlir(d), first + 1, shifted) for d in err.error_diagnostics
        ]
        raise SourceError(diags or [_SILENT_FAILURE], source_name) from None
    except Exception as err:  # an op verifier that raised; see python_failure
        raise SourceError([python_failure(err)], source_name) from err


def python_failure(err: Exception) -> Diagnostic:
    """A Python exception that escaped MLIR (an op's `verify_invariants` that raised).

    MLIR gives no location then; the message says what raised.
    """
    return Diagnostic(
        "error",
        f"an op verifier raised {type(err).__name__}: {err} (is an op missing operands, results "
        "or attributes?)",
    )


def _starts_op(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith(("//", "#", "!", "{-#")) and not s.startswith("}")


def _unshift(diag: Diagnostic, line: int, shift: int) -> Diagnostic:
    pos = diag.position
    if not shift or pos is None or pos[1] != line or pos[2] <= shift:
        return diag
    return Diagnostic(
        diag.severity, diag.message, f"{pos[0]}:{pos[1]}:{pos[2] - shift}", diag.notes
    )


def as_module(op: Any) -> ir.Module:
    """An `ir.Module` holding what `op` (a parsed module or a lone top-level op) holds."""
    op = op.operation
    module = ir.Module.create(loc=op.location)
    if op.name != "builtin.module":
        ir.InsertionPoint(module.body).insert(op)
        return module
    for name in op.attributes:
        module.operation.attributes[name] = op.attributes[name]
    ip = ir.InsertionPoint(module.body)
    for child in list(op.regions[0].blocks[0].operations):
        ip.insert(child.operation.detach_from_parent())
    return module


def module_text(module: ir.Module | ir.Operation, *, debug_info: bool = True) -> str:
    """MLIR text of `module`; with `debug_info`, op locations (the model's source lines) are
    printed too, so they survive a round trip through a file."""
    op = module.operation if isinstance(module, ir.Module) else module
    return op.get_asm(enable_debug_info=debug_info)
