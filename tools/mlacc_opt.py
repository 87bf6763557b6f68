"""`mlacc-opt`: ``mlir-opt`` for mlacc's dialects (mla, moe, fp8, mlacc) and passes.

Reads MLIR (a file or ``-`` for stdin), runs passes, prints MLIR::

    mlacc-opt model.mlir --mla-absorb-weights --canonicalize
    mlacc-opt model.mlir --pass-pipeline='builtin.module(mla-absorb-weights,cse)' -o out.mlir
    mlacc-opt invalid.mlir --split-input-file --verify-diagnostics

Problems come out as ``file:line:col: error: message`` with a non-zero exit status, never a
Python traceback (``MLACC_DEBUG=1`` adds one for internal errors). This module must not import
torch: the tool starts in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

TOOL = "mlacc-opt"
SPLIT_MARKER = "// -----"

# Tool options that take no value, by their spelling without dashes.
_FLAGS = {
    "split-input-file": "split_input_file",
    "verify-diagnostics": "verify_diagnostics",
    "mlir-print-ir-after-all": "print_ir_after_all",
    "mlir-print-op-generic": "print_generic",
    "mlir-print-debuginfo": "print_debuginfo",
    "allow-unregistered-dialect": "allow_unregistered",
}

USAGE = f"""\
OVERVIEW: {TOOL}: the MLIR optimizer driver for mlacc's dialects (mla, moe, fp8, mlacc)

USAGE: {TOOL} [FILE|-] [--PASS[=option=value,...] ...] [options]

OPTIONS:
  -o FILE                        write the output to FILE (atomically; default: stdout)
  --pass-pipeline=PIPELINE       run a textual pipeline, e.g.
                                 'builtin.module(mla-absorb-weights,func.func(cse),canonicalize)'
  --split-input-file             process chunks separated by '{SPLIT_MARKER}' independently
  --verify-diagnostics           check the diagnostics against '// expected-error {{{{...}}}}'
                                 (also expected-warning/-note/-remark, @+N, @-N, @above, @below)
  --mlir-print-ir-after-all      print the IR after each pipeline step to stderr
  --mlir-print-op-generic        print ops in the generic form
  --mlir-print-debuginfo         print locations
  --allow-unregistered-dialect   accept ops of unknown dialects
  -h, --help                     this text

A failing pass writes the IR as it was before that step to mlacc-repro-<step>.mlir in the
current directory and prints the {TOOL} command that reproduces the failure.
"""


class UsageError(Exception):
    """A command line that does not make sense."""


@dataclass
class Args:
    """The parsed command line."""

    input: str = "-"
    output: str = "-"
    pipeline: str | None = None
    pass_flags: list[tuple[str, str]] = field(default_factory=list)
    split_input_file: bool = False
    verify_diagnostics: bool = False
    print_ir_after_all: bool = False
    print_generic: bool = False
    print_debuginfo: bool = False
    allow_unregistered: bool = False
    help: bool = False


def parse_args(argv: list[str]) -> Args:
    """Parses argv like LLVM's command line: ``-flag`` and ``--flag``, ``--opt=v`` and ``--opt v``.

    Any ``--NAME[=OPTIONS]`` that is not a tool option is a pass to run, in order.
    """
    args, positional, it = Args(), [], iter(argv)
    for arg in it:
        if arg == "--":
            positional.extend(it)
            break
        if arg == "-" or not arg.startswith("-"):
            positional.append(arg)
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        if name in ("h", "help", "help-hidden"):
            args.help = True
        elif name == "o":
            args.output = value if has_value else _next_value(it, "-o")
        elif name == "pass-pipeline":
            args.pipeline = value if has_value else _next_value(it, "--pass-pipeline")
        elif name in _FLAGS:
            if has_value and value.lower() not in ("true", "1", "false", "0"):
                raise UsageError(f"option '--{name}' takes no value, got '{value}'")
            setattr(args, _FLAGS[name], value.lower() not in ("false", "0"))
        else:
            args.pass_flags.append((name, value))
    if len(positional) > 1:
        raise UsageError(f"too many input files: {' '.join(positional)} (give one, or '-')")
    if positional:
        args.input = positional[0]
    if args.pipeline is not None and args.pass_flags:
        flags = " ".join(f"--{n}" for n, _ in args.pass_flags)
        raise UsageError(f"--pass-pipeline cannot be combined with pass flags ({flags})")
    return args


def _next_value(it: Any, option: str) -> str:
    value = next(it, None)
    if value is None:
        raise UsageError(f"option '{option}' needs a value")
    return value


def main(argv: list[str] | None = None) -> int:
    """Runs mlacc-opt; returns the process exit status (0 ok, 1 error)."""
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except UsageError as err:
        _error(f"{err} (see {TOOL} --help)")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`); nothing more to say
    except Exception as err:  # noqa: BLE001 - the one place that turns bugs into one line
        if os.environ.get("MLACC_DEBUG"):
            traceback.print_exc()
        _error(f"internal error: {type(err).__name__}: {err} (MLACC_DEBUG=1 shows a traceback)")
    return 1


def _silence_stdout() -> None:
    """Points stdout at /dev/null, so the interpreter's final flush of the unwritable buffer
    adds no second message."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _error(message: str) -> None:
    print(f"{TOOL}: error: {message}", file=sys.stderr)


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    # Imported here, not at the top: a broken installation is then reported as one error line.
    from ..passes.pipeline import PipelineParseError, make_step, parse_pipeline

    if args.help:
        sys.stdout.write(help_text())
        return 0
    try:
        if args.pipeline is not None:
            steps = parse_pipeline(args.pipeline)
            if not steps:
                raise UsageError(
                    "--pass-pipeline is empty: name at least one pass, or leave it out"
                )
        else:
            steps = [_flag_step(name, value, make_step) for name, value in args.pass_flags]
    except PipelineParseError as err:
        _error(str(err))
        return 1
    text = _read_input(args.input)
    if text is None:
        return 1
    source_name = "<stdin>" if args.input == "-" else args.input
    chunks = split_chunks(text, SPLIT_MARKER) if args.split_input_file else [text]
    ok, outputs = True, []
    for chunk in chunks:
        result = _process_chunk(chunk, source_name, steps, args)
        if args.verify_diagnostics:
            failures = verify_diagnostics(chunk, source_name, result.diagnostics)
            _report(failures, text, source_name)
            ok &= not failures
        else:
            _report(result.diagnostics, text, source_name)
            for note in result.notes:
                print(f"{TOOL}: note: {note}", file=sys.stderr)
            ok &= result.output is not None
        if result.output is not None:
            outputs.append(result.output)
    return _write_output(args.output, f"{SPLIT_MARKER}\n".join(outputs), ok)


def _flag_step(name: str, value: str, make_step: Any) -> Any:
    from ..passes.pipeline import PipelineParseError

    try:
        return make_step(name, value)
    except PipelineParseError as err:
        if str(err).startswith("unknown pass"):
            raise PipelineParseError(
                f"unknown command line argument '--{name}': not a {TOOL} option, an mlacc pass "
                f"or an upstream MLIR pass (see {TOOL} --help)"
            ) from None
        raise


# Larger inputs are refused rather than read until memory runs out (think `/dev/zero`).
MAX_INPUT_BYTES = 1 << 30
_READ_CHUNK = 1 << 20


def _read_input(path: str) -> str | None:
    """The input as text, or None after one error line (unreadable, binary, not UTF-8, huge)."""
    name = "<stdin>" if path == "-" else f"'{path}'"
    try:
        if path == "-":
            data = _read_limited(sys.stdin.buffer, name)
        else:
            with open(path, "rb") as f:
                data = _read_limited(f, name)
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _error(f"{name} is not UTF-8 text (MLIR bytecode is not supported)")
    except UsageError as err:
        _error(str(err))
    except OSError as err:
        _error(f"cannot open input file {name}: {err.strerror or err}")
    return None


def _read_limited(stream: Any, name: str) -> bytes:
    """Reads `stream` to its end in chunks, refusing NUL bytes and more than MAX_INPUT_BYTES."""
    chunks, size = [], 0
    while chunk := stream.read(_READ_CHUNK):
        if b"\0" in chunk:
            raise UsageError(f"{name} is not MLIR text: it contains NUL bytes")
        size += len(chunk)
        if size > MAX_INPUT_BYTES:
            raise UsageError(f"{name} is larger than {MAX_INPUT_BYTES >> 30} GiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _write_output(path: str, text: str, ok: bool) -> int:
    from ..fileio import write_atomic

    if path == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as err:
            _error(f"cannot write the output to stdout: {err.strerror or err}")
            _silence_stdout()
            return 1
        return 0 if ok else 1
    if not ok:
        return 1  # nothing written: no partial output file
    try:
        write_atomic(path, text)
    except OSError as err:
        _error(f"cannot write output file '{path}': {err.strerror or err}")
        return 1
    return 0


# --- one chunk: parse, run the pipeline, print ---


@dataclass
class ChunkResult:
    """What processing one chunk produced."""

    output: str | None  # the printed module; None when the chunk failed
    diagnostics: list[Any]  # pipeline.Diagnostic, in the order they were emitted
    notes: list[str]  # reproducer notes of a failed pipeline step


def split_chunks(text: str, marker: str) -> list[str]:
    """Splits at lines that are `marker`; each chunk is padded with newlines so that its line
    numbers are the ones of the whole file."""
    chunks, current, start = [], [], 0
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == marker:
            chunks.append("\n" * start + "\n".join(current))
            current, start = [], i + 1
        else:
            current.append(line)
    chunks.append("\n" * start + "\n".join(current))
    return chunks


def _process_chunk(text: str, source_name: str, steps: list[Any], args: Args) -> ChunkResult:
    from ..dialects import make_context
    from ..dialects.parsing import Diagnostic, SourceError, parse_module
    from ..passes.pipeline import PipelineError, run_pipeline, stderr_ir_sink

    asm = {"print_generic_op_form": args.print_generic, "enable_debug_info": args.print_debuginfo}
    ctx = make_context()
    ctx.allow_unregistered_dialects = args.allow_unregistered
    ctx.enable_multithreading(False)  # diagnostics in a deterministic order
    seen: list[Any] = []

    def on_diagnostic(diag: Any) -> bool:
        seen.append(Diagnostic.from_mlir(diag))
        return True

    handler = ctx.attach_diagnostic_handler(on_diagnostic)
    try:
        with ctx:
            module = parse_module(text, source_name, ctx)
            run_pipeline(
                module,
                steps,
                print_ir_after_all=stderr_ir_sink(**asm) if args.print_ir_after_all else None,
                source_name=source_name,
                reproducer=not args.verify_diagnostics,
            )
            return ChunkResult(module.operation.get_asm(**asm), seen, [])
    except SourceError as err:
        return ChunkResult(None, seen + err.diagnostics, [])
    except PipelineError as err:
        return ChunkResult(None, seen + err.diagnostics, err.notes)
    finally:
        handler.detach()


def _report(diagnostics: list[Any], text: str, source_name: str) -> None:
    """Prints diagnostics like mlir-opt: location, severity, message, source line and caret."""
    lines = text.split("\n")
    for diag in diagnostics:
        print(diag.format(source_name), file=sys.stderr)
        pos = diag.position
        if pos and pos[0] == source_name and 1 <= pos[1] <= len(lines):
            print(lines[pos[1] - 1], file=sys.stderr)
            print(" " * max(pos[2] - 1, 0) + "^", file=sys.stderr)
        _report(list(diag.notes), text, source_name)


# --- --verify-diagnostics ---

_EXPECTED = re.compile(
    r"expected-(error|warning|note|remark)(-re)? *"
    r"(@([+-]\d+|above|below|unknown))? *\{\{(.*)\}\}\s*$"
)
_DIRECTIVE = re.compile(r"expected-(error|warning|note|remark)\b")


@dataclass
class Expected:
    """One ``// expected-<kind> {{message}}`` directive."""

    kind: str
    text: str
    line: int | None  # the line the diagnostic must be at; None for @unknown
    where: str  # file:line:col of the directive itself
    regex: re.Pattern | None = None
    matched: bool = False

    def matches(self, message: str) -> bool:
        if self.regex is not None:
            return self.regex.search(message) is not None
        return self.text in message


def expected_diagnostics(text: str, source_name: str) -> tuple[list[Expected], list[Any]]:
    """The directives in `text` and diagnostics for malformed ones (MLIR's syntax and rules)."""
    from ..dialects.parsing import Diagnostic

    found, problems = [], []
    below: list[Expected] = []
    last_plain = None  # last line without a directive
    for number, line in enumerate(text.split("\n"), 1):
        m = _EXPECTED.search(line)
        if m is None:
            d = _DIRECTIVE.search(line)
            if d is not None:
                where = f"{source_name}:{number}:{d.start() + 1}"
                msg = f"malformed {d.group(0)} directive: expected '{d.group(0)} {{{{message}}}}'"
                problems.append(Diagnostic("error", msg, where))
                continue
            for e in below:
                e.line = number
            below, last_plain = [], number
            continue
        kind, is_re, designator, text_ = m.group(1), m.group(2), m.group(4), m.group(5)
        where = f"{source_name}:{number}:{m.start() + 1}"
        try:
            regex = _mlir_regex(text_) if is_re else None
        except re.error as err:
            msg = f"invalid regex in expected-{kind}-re directive: {err}"
            problems.append(Diagnostic("error", msg, where))
            continue
        e = Expected(kind, text_, number, where, regex)
        if designator is None:
            pass
        elif designator == "above":
            e.line = last_plain
        elif designator == "below":
            below.append(e)
        elif designator == "unknown":
            e.line = None
        else:
            e.line = number + int(designator)
        found.append(e)
    return found, problems


def _mlir_regex(text: str) -> re.Pattern:
    """expected-*-re text: literal, except ``{{regex}}`` parts."""
    parts = re.split(r"\{\{(.*?)\}\}", text)
    return re.compile("".join(p if i % 2 else re.escape(p) for i, p in enumerate(parts)))


def verify_diagnostics(chunk: str, source_name: str, produced: list[Any]) -> list[Any]:
    """Checks produced diagnostics (and their notes) against the chunk's directives.

    Returns the failures as error diagnostics: an expected diagnostic that was not produced, a
    produced one that was not expected (or of another kind than expected there).
    """
    from ..dialects.parsing import Diagnostic

    expected, failures = expected_diagnostics(chunk, source_name)
    flat: list[Any] = []
    for d in produced:
        flat.append(d)
        # MLIR's "see current operation" note: mlir-opt does not attach it in this mode.
        flat.extend(n for n in d.notes if not n.message.startswith("see current operation"))
    for diag in flat:
        pos = diag.position
        line = pos[1] if pos and pos[0] == source_name else None
        candidates = [e for e in expected if e.line == line and (line is not None or not pos)]
        exact = [e for e in candidates if e.kind == diag.severity and e.matches(diag.message)]
        if exact:
            exact[0].matched = True
            continue
        near = [e for e in candidates if e.matches(diag.message)]
        if near:
            msg = f"'{diag.severity}' diagnostic emitted when expecting a '{near[0].kind}'"
        else:
            msg = f"unexpected {diag.severity}: {diag.message}"
        failures.append(Diagnostic("error", msg, diag.location))
    for e in expected:
        if not e.matched:
            failures.append(
                Diagnostic("error", f'expected {e.kind} "{e.text}" was not produced', e.where)
            )
    return failures


# --- --help ---


def help_text() -> str:
    """Usage, then every registered pass with its summary and options."""
    from ..passes.registry import all_passes, broken_pass_modules

    out = [USAGE, "\nPASSES (as --FLAG[=opt=value,...], or by name in --pass-pipeline):\n"]
    for info in all_passes():
        out.append(f"  --{info.flag:<28} {info.summary}\n")
        for opt in info.option_infos():
            notes = [f"default: {opt.default}"] if opt.default != "" else []
            notes += [opt.limits_text] if opt.limits_text else []
            default = f" ({'; '.join(notes)})" if notes else ""
            out.append(f"      {opt.name}=<{opt.type_name}>".ljust(33) + f"{opt.help}{default}\n")
    out.append(
        "\n  Upstream MLIR passes (canonicalize, cse, symbol-dce, inline, ...) and nested\n"
        "  pipelines such as 'func.func(cse)' are accepted by name too.\n"
    )
    for module, why in broken_pass_modules().items():
        out.append(f"\n  note: pass module '{module}' failed to import: {why}\n")
    return "".join(out)


if __name__ == "__main__":
    sys.exit(main())
