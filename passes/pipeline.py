"""Textual pass pipelines: parse ``builtin.module(a,b{k=v},canonicalize,cse)`` and run them.

A pipeline is a list of steps, the top-level elements of the text (``builtin.module(...)`` may
wrap them, or not: ``a,b{k=v},cse`` means the same). A step naming a registered mlacc pass gets
typed options (`registry.PassInfo.make_options`); any other step, nested anchors such as
``func.func(cse,canonicalize)`` included, is handed to MLIR's pass manager as text, so every
upstream pass the bundled MLIR knows stays available by name.

`run_pipeline` runs the steps one at a time. After each, the IR can be printed (to stderr or
one numbered file per step in a directory: `print_ir_after_all`). When a step fails it writes
the IR as it stood before that step to ``mlacc-repro-<step>.mlir`` and raises `PipelineError`
with the failing op's ``file:line:col``, the message and the one ``mlacc-opt`` command that
reproduces the failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dialects._mlir import ir, passmanager
from ..dialects.parsing import Diagnostic, first_line, python_failure
from ..fileio import write_atomic
from .registry import OptionError, PassInfo, get_pass, mlir_pass_callback, split_top_level

TOOL = "mlacc-opt"
_ANCHORS = ("builtin.module", "any")


class PipelineParseError(ValueError):
    """A pipeline text that does not parse: syntax, unknown pass, bad option name or value."""


# --- diagnostics ---


class PipelineError(Exception):
    """A pipeline step failed.

    Attributes:
        step: the failing step's pipeline text, e.g. ``test-fail-on{op=mla.attention}``.
        location: ``file:line:col`` of the op the error is about (the source name if unknown).
        message: the error message, one line.
        diagnostics: everything MLIR reported (errors with their notes).
        repro_path: the file holding the IR as it was before the step (None if not written).
        repro_command: the ``mlacc-opt`` command that reproduces the failure from that file.
    """

    def __init__(
        self,
        step: str,
        diagnostics: list[Diagnostic],
        source_name: str,
        repro_path: Path | None,
        repro_command: str,
        repro_problem: str = "",
    ) -> None:
        errors = [d for d in diagnostics if d.severity == "error"]
        first = errors[0] if errors else None
        self.step = step
        self.diagnostics = diagnostics
        self.location = (first.location if first else "") or source_name
        self.message = (
            first_line(first.message) if first else f"step '{step}' failed without a diagnostic"
        )
        self.repro_path = repro_path
        self.repro_command = repro_command
        self.notes = []
        if repro_path is not None:
            self.notes.append(f"the IR before step '{step}' is in {repro_path}")
            self.notes.append(f"reproduce with: {repro_command}")
        elif repro_problem:
            self.notes.append(f"could not write the reproducer: {repro_problem}")
        super().__init__(
            "\n".join(
                [f"{self.location}: error: {self.message}"] + [f"note: {n}" for n in self.notes]
            )
        )


# --- pipeline text ---


@dataclass(frozen=True)
class Step:
    """One top-level pipeline element.

    Attributes:
        name: the pass flag (mlacc or upstream) or the anchor op name (``func.func``).
        text: the element as pipeline text, options included.
        info: the registered mlacc pass, None for an upstream element.
        options: the typed options of an mlacc pass.
    """

    name: str
    text: str
    info: PassInfo | None = None
    options: Any = field(default=None, compare=False)

    @property
    def file_stem(self) -> str:
        """The step name made safe for file names."""
        return re.sub(r"[^A-Za-z0-9._-]", "_", self.name)

    def pass_manager(self, anchor: str) -> passmanager.PassManager:
        """A pass manager running just this step on an op named `anchor`."""
        if self.info is None:
            return passmanager.PassManager.parse(f"{anchor}({self.text})")
        pm = passmanager.PassManager(anchor)
        pm.add(
            mlir_pass_callback(self.info, self.options),
            name=self.info.name,
            argument=self.info.flag,
            description=self.info.summary,
        )
        return pm


def make_step(name: str, options_text: str = "", nested: str | None = None) -> Step:
    """A step for pass `name` with options text ``k=v k2=v2`` (spaces or commas between).

    Raises:
        PipelineParseError: unknown pass, or bad option name or value.
    """
    info = get_pass(name)
    if info is not None:
        if nested is not None:
            raise PipelineParseError(f"'{name}' is a pass, not an op to nest a pipeline under")
        raw = []
        for item in split_top_level(options_text, " \t\n,"):
            if item.strip():
                key, _, value = item.strip().partition("=")
                raw.append((key.strip(), value))
        try:
            options = info.make_options(raw)
        except OptionError as err:
            raise PipelineParseError(str(err)) from None
        opts = info.format_options(options)
        return Step(name, f"{name}{{{opts}}}" if opts else name, info, options)
    text = name + (f"{{{options_text}}}" if options_text else "")
    text += f"({nested})" if nested is not None else ""
    if nested is not None:
        _check_nesting(name, nested)
    _check_upstream(name, text)
    return Step(name, text)


def parse_pipeline(text: str) -> list[Step]:
    """Parses ``builtin.module(a,b{k=v},cse)`` or the bare list ``a,b{k=v},cse`` into steps.

    Raises:
        PipelineParseError: naming the unknown pass, bad option or syntax problem.
    """
    elements = split_top_level(text.strip(), ",")
    if elements == [""]:
        return []
    parsed = [_split_element(e) for e in elements]
    if len(parsed) == 1 and parsed[0][0] in _ANCHORS and parsed[0][2] is not None:
        return parse_pipeline(parsed[0][2])
    return [make_step(name, opts, nested) for name, opts, nested in parsed]


def format_pipeline(steps: list[Step]) -> str:
    """The steps as one anchored pipeline text, ``builtin.module(a,b)``."""
    return f"builtin.module({','.join(s.text for s in steps)})"


def _split_element(element: str) -> tuple[str, str, str | None]:
    """``name{opts}(nested)`` -> (name, opts, nested or None)."""
    el = element.strip()
    m = re.match(r"[A-Za-z_][\w.\-]*", el)
    if not m:
        raise PipelineParseError(f"expected a pass name in pipeline element '{el}'")
    name, rest, opts, nested = m.group(0), el[m.end() :].lstrip(), "", None
    if rest.startswith("{"):
        end = _matching(rest, "{", "}", el)
        opts, rest = rest[1:end], rest[end + 1 :].lstrip()
    if rest.startswith("("):
        end = _matching(rest, "(", ")", el)
        nested, rest = rest[1:end], rest[end + 1 :].lstrip()
    if rest:
        raise PipelineParseError(f"unexpected '{rest}' after '{name}' in pipeline element '{el}'")
    return name, opts.strip(), nested


def _matching(text: str, open_: str, close: str, element: str) -> int:
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == open_) - (ch == close)
        if depth == 0:
            return i
    raise PipelineParseError(f"unbalanced '{open_}' in pipeline element '{element}'")


# Ops that can never sit inside an op of the key's kind, so a pipeline nested that way would
# silently run on nothing.
_CANNOT_CONTAIN = {"func.func": ("builtin.module", "func.func")}


def _check_nesting(anchor: str, nested: str) -> None:
    """Rejects nested pipelines anchored on ops that cannot occur inside `anchor`."""
    for element in split_top_level(nested, ","):
        if not element.strip():
            continue
        name, _, inner = _split_element(element)
        if inner is None:
            continue
        if name in _CANNOT_CONTAIN.get(anchor, ()):
            raise PipelineParseError(
                f"'{name}(...)' nested in '{anchor}(...)' would run on nothing: "
                f"a '{anchor}' never contains a '{name}'"
            )
        _check_nesting(name, inner)


def _check_upstream(name: str, text: str) -> None:
    """Validates an upstream element with MLIR's own pipeline parser."""
    with ir.Context(), _captured_native_stderr() as captured:
        try:
            passmanager.PassManager.parse(f"builtin.module({text})")
            return
        except ValueError as err:
            detail = str(err)
    native = captured()
    m = re.search(r"error: '([^']*)' does not refer to a registered pass", detail)
    if m:
        unknown = m.group(1)
        if get_pass(unknown) is not None:
            raise PipelineParseError(
                f"mlacc pass '{unknown}' runs on the module; use it at the top level of the "
                f"pipeline, not nested in '{name}(...)'"
            )
        raise PipelineParseError(
            f"unknown pass '{unknown}' ({TOOL} --help lists mlacc's passes; "
            "upstream MLIR passes are accepted by name)"
        )
    # LLVM's option parser prints the reason to stderr; the exception only says "failed to add".
    reason = first_line(native) or first_line(detail)
    reason = reason.removeprefix(":").strip().removeprefix("<Pass-Options-Parser>:").strip()
    raise PipelineParseError(f"pass '{name}': {reason or 'invalid options'}")


@contextlib.contextmanager
def _captured_native_stderr() -> Iterator[Callable[[], str]]:
    """Captures what native code writes to fd 2 (LLVM's option parser prints there)."""
    text: list[str] = []
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        yield lambda: ""
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield lambda: "".join(text)
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text.append(tmp.read().decode(errors="replace"))


# --- running ---

IRSink = Callable[[int, Step, ir.Operation], None]


def run_pipeline(
    module: Any,
    pipeline: str | list[Step],
    *,
    print_ir_after_all: str | os.PathLike | bool | IRSink | None = None,
    repro_dir: str | os.PathLike | None = None,
    source_name: str = "<input>",
    reproducer: bool = True,
) -> None:
    """Runs `pipeline` on `module` (an `ir.Module` or a `builtin.module` op) in place.

    Args:
        module: the module to transform.
        pipeline: pipeline text (see `parse_pipeline`) or parsed steps.
        print_ir_after_all: after each step, print the module: True -> stderr; a path -> one
            file per step in that directory (``01-<step>.mlir``, ...); a callable
            ``(index, step, module_op)`` -> whatever it does; None/False -> nothing.
        repro_dir: where a failing step's reproducer goes (default: the current directory).
        source_name: names the input in messages whose location is unknown.
        reproducer: write the reproducer file when a step fails (``mlacc-opt
            --verify-diagnostics`` turns it off: there, failures are expected).

    Raises:
        PipelineParseError: the pipeline text does not parse.
        PipelineError: a step failed (location, message, reproducer file and command).
    """
    steps = parse_pipeline(pipeline) if isinstance(pipeline, str) else list(pipeline)
    sink = _ir_sink(print_ir_after_all)
    op = module.operation
    for index, step in enumerate(steps, 1):
        before = op.clone() if reproducer else None
        try:
            with op.context:
                step.pass_manager(op.name).run(op)
        except Exception as err:  # noqa: BLE001 - MLIRError, or an op verifier that raised
            if isinstance(err, ir.MLIRError):
                diags = [Diagnostic.from_mlir(d) for d in err.error_diagnostics]
            else:
                diags = [python_failure(err)]
            if before is None:
                raise PipelineError(step.text, diags, source_name, None, "") from None
            raise _failure(step, before, diags, repro_dir, source_name) from None
        finally:
            del before
        if sink is not None:
            sink(index, step, op)


def _failure(
    step: Step, before: ir.Operation, diags: list[Diagnostic], repro_dir: Any, source_name: str
) -> PipelineError:
    directory = Path.cwd() if repro_dir is None else Path(repro_dir)
    path = directory / f"mlacc-repro-{step.file_stem}.mlir"
    shown = _display_path(path)
    single = format_pipeline([step])
    command = f"{TOOL} {shlex.quote(shown)} --pass-pipeline={shlex.quote(single)}"
    header = (
        f"// The IR of {source_name} before pipeline step '{step.text}' failed.\n"
        f"// RUN: {TOOL} %s --pass-pipeline={shlex.quote(single)}\n"
    )
    try:
        write_atomic(path, header + before.get_asm(enable_debug_info=True))
    except OSError as err:
        return PipelineError(step.text, diags, source_name, None, command, str(err))
    return PipelineError(step.text, diags, source_name, Path(shown), command)


def _display_path(path: Path) -> str:
    """`path` relative to the current directory when inside it, else absolute."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _ir_sink(target: Any) -> IRSink | None:
    if target is None or target is False:
        return None
    if target is True:
        return stderr_ir_sink()
    if callable(target):
        return target
    return directory_ir_sink(Path(target))


def stderr_ir_sink(**asm_options: Any) -> IRSink:
    """Prints ``// -----// IR Dump After <step> //----- //`` and the module to stderr."""

    def sink(index: int, step: Step, op: ir.Operation) -> None:
        sys.stderr.write(f"// -----// IR Dump After {step.text} //----- //\n")
        sys.stderr.write(op.get_asm(**asm_options) + "\n")
        sys.stderr.flush()

    return sink


def directory_ir_sink(directory: Path, **asm_options: Any) -> IRSink:
    """Writes the module after step `index` to ``directory/<index:02>-<step>.mlir``."""
    directory.mkdir(parents=True, exist_ok=True)

    def sink(index: int, step: Step, op: ir.Operation) -> None:
        text = f"// IR after step {index}: {step.text}\n" + op.get_asm(**asm_options)
        write_atomic(directory / f"{index:02d}-{step.file_stem}.mlir", text)

    return sink
