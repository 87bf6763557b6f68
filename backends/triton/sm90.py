"""An artifact's kernel launches compiled ahead of time for sm_90: registers, spills, cubins.

No GPU is needed: the artifact's kernel package is imported with the Triton interpreter off
(real `JITFunction`s), each Triton step of the plan runs its wrapper on ``meta`` tensors of the
step's shapes while `JITFunction.run` only records the launch (kernel, arguments, warps,
stages), and each distinct launch is compiled by Triton's own JIT for
``GPUTarget("cuda", 90, 32)`` (`triton_binaries.compile_only`: the JIT specializes the
arguments as on the GPU). ``cuobjdump -res-usage`` (shipped with Triton) reads registers,
stack and shared memory from the cubin, and where there is a stack frame Triton's own
``ptxas -v`` log says how much of it is spills. The cubins go into the artifact, for the run
side to place in Triton's cache (`triton_binaries.seed_cache`). The launches are those the
wrappers choose on a GPU (the interpreter's few-large-programs heuristics are off in this
import).

Whatever cannot be checked (a wrapper that needs real data, a compile error, no cuobjdump, the
time budget spent) is listed under ``skipped`` with its reason, never dropped. Compiles hit
Triton's own cache (``~/.triton/cache``) when repeated, so a second compile of the same model
costs little.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ...runtime.executors.triton_binaries import (
    CompileOnly,
    binary_record,
    compile_only,
    cubin_resources,
    meta_tensor,
    target_record,
)
from ...runtime.executors.triton_sources import load_kernel_package
from ...runtime.plan import Plan

ARCH = 90
# Version of a cached result's fields (3: spill bytes from Triton's ptxas -v log).
_FORMAT = 3
# Launch options of `kernel[grid](...)` that are not kernel arguments.
_OPTIONS = ("num_warps", "num_stages", "num_ctas", "maxnreg", "enable_fp_fusion")


class Skip(Exception):
    """A launch or step that cannot be checked; the message says why."""


@contextmanager
def _compiled_mode() -> Iterator[None]:
    """``TRITON_INTERPRET`` off while the kernel package is imported (real JIT functions)."""
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = old


@contextmanager
def _recording(package: Any, launches: list[tuple[Any, tuple, dict]]) -> Iterator[None]:
    """`JITFunction.run` records instead of launching; the kernels' device check accepts
    ``meta`` tensors. Both are restored on exit."""
    from triton.runtime.jit import JITFunction

    def record(self, *args, grid=None, warmup=False, **kwargs):
        launches.append((self, args, kwargs))

    patched = [(JITFunction, "run", JITFunction.run)]
    JITFunction.run = record
    for name in list(vars(package)):
        module = getattr(package, name)
        if getattr(module, "__name__", "").startswith(package.__name__ + ".") and hasattr(
            module, "check_device"
        ):
            patched.append((module, "check_device", module.check_device))
            module.check_device = lambda *tensors: None
    try:
        yield
    finally:
        for owner, attr, value in patched:
            setattr(owner, attr, value)


def _meta(info: Any) -> torch.Tensor:
    shape, dtype = info
    if any(d is None for d in shape):
        raise Skip("dynamic shape")
    dtype = getattr(torch, dtype.removeprefix("torch."))
    return torch.empty(tuple(shape), dtype=dtype, device="meta")


def _arg(arg: Mapping[str, Any], values: Mapping[int, Any]) -> Any:
    if "ref" in arg:
        if arg["ref"] not in values:
            raise Skip("operand of unknown shape")
        return _meta(values[arg["ref"]])
    if "list" in arg:
        return [_arg(a, values) for a in arg["list"]]
    return arg["lit"]


def step_launches(
    plan: Plan, shapes: Mapping[int, tuple], kernels: Mapping[str, Any], package: Any
) -> tuple[dict[str, list[str]], list[dict[str, str]]]:
    """Distinct launches of the plan's kernel steps (launch as sorted JSON -> the ops using
    it) and the steps that could not be replayed (op, reason)."""
    found: dict[str, list[str]] = {}
    skipped: list[dict[str, str]] = []
    for fn in plan.functions.values():
        values = dict(shapes)
        for vid, spec in zip(fn.inputs, fn.input_specs):
            values[vid] = (tuple(spec.shape), spec.dtype)
        for step in fn.steps:
            kernel = kernels.get(step.op)
            if kernel is None:
                continue
            launches: list[tuple[Any, tuple, dict]] = []
            try:
                args = [_arg(a, values) for a in step.args]
                with _recording(package, launches):
                    kernel(*args, **step.attrs)
            except Exception as err:  # noqa: BLE001 - reported per op, never silent
                reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
                skipped.append({"op": step.op, "reason": f"{type(err).__name__}: {reason}"})
                continue
            for jit, a, kw in launches:
                try:
                    launch = _launch(jit, a, kw)
                except Skip as err:
                    skipped.append({"op": step.op, "reason": str(err)})
                    continue
                ops = found.setdefault(json.dumps(launch, sort_keys=True), [])
                if step.op not in ops:
                    ops.append(step.op)
    return found, skipped


def _launch(jit: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """One recorded launch as JSON-able data: the kernel (module, name), its arguments by
    name (a tensor as its dtype, a scalar as its value) and launch options. The JIT
    specializes them when the launch is compiled (`compile_launch`)."""
    options = {k: kwargs.pop(k) for k in _OPTIONS if k in kwargs}
    bound = inspect.signature(jit.fn).bind(*args, **kwargs)
    bound.apply_defaults()
    arguments: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if isinstance(value, torch.Tensor):
            arguments[name] = {"tensor": str(value.dtype).removeprefix("torch.")}
        elif isinstance(value, (bool, int, float, str, type(None))):
            arguments[name] = {"value": value}
        else:
            raise Skip(f"{jit.__name__}: argument '{name}' of type {type(value).__name__}")
    return {
        "module": jit.fn.__module__.rsplit(".", 1)[-1],
        "kernel": jit.__name__,
        "arguments": arguments,
        "options": options,
    }


def _cache_path(kernel_hash: str) -> Path:
    root = os.environ.get("MLACC_CACHE_DIR") or Path.home() / ".cache" / "mlacc"
    return Path(root) / "sm90" / f"{kernel_hash}-{_FORMAT}.json"


def _spill_bytes(source: Any, target: Any, options: Mapping[str, Any]) -> int:
    """Bytes of spill stores + loads in the log of Triton's own ``ptxas -v`` run for this
    compile (recompiled with the log on: a stack frame alone is not a spill; libdevice's
    sin/cos range reduction keeps one)."""
    import triton
    from triton import knobs

    old = knobs.compilation.always_compile, knobs.nvidia.dump_ptxas_log
    knobs.compilation.always_compile = knobs.nvidia.dump_ptxas_log = True
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            triton.compile(source, target=target, options=dict(options))
    finally:
        knobs.compilation.always_compile, knobs.nvidia.dump_ptxas_log = old
    found = re.findall(r"(\d+) bytes spill (?:stores|loads)", log.getvalue())
    if not found:
        raise Skip("Triton's ptxas log shows no spill counts")
    return sum(int(n) for n in found)


def _usage(kernel: Any, target: Any, options: Mapping[str, Any]) -> dict[str, int]:
    """Registers, stack, local, shared and spill bytes of a compiled kernel, cached on disk by
    Triton's hash of the compile."""
    path = _cache_path(kernel.hash)
    if path.is_file():
        return json.loads(path.read_text())
    res = cubin_resources(kernel.asm["cubin"])
    if "REG" not in res:
        raise Skip("cuobjdump printed no resource usage")
    stack = res.get("STACK", 0) + res.get("LOCAL", 0)
    usage = {
        "registers": res["REG"],
        "stack_bytes": res.get("STACK", 0),
        "local_bytes": res.get("LOCAL", 0),
        "shared_bytes": res.get("SHARED", 0),
        "spill_bytes": _spill_bytes(kernel.src, target, options) if stack else 0,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(usage))
    return usage


def spec_call(package: Any, spec: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The JIT function and arguments (``meta`` tensors, launch options) of a recorded launch."""
    import importlib

    module = importlib.import_module(f"{package.__name__}.{spec['module']}")
    arguments = {
        name: meta_tensor(a["tensor"]) if "tensor" in a else a["value"]
        for name, a in spec["arguments"].items()
    }
    return getattr(module, spec["kernel"]), {**arguments, **spec["options"]}


def compile_launch(
    package: Any, spec: Mapping[str, Any], session: CompileOnly, recorded: set[str]
) -> dict[str, Any]:
    """Compiles one launch of `package`'s kernels through Triton's JIT for the session's
    target: registers, stack/local bytes, spill bytes, shared memory, and the binary
    (manifest entry + base64 files) where it can be recorded and is not among `recorded`
    (Triton hashes of kernels recorded before; this one's is added)."""
    kernel = session.warmup(*spec_call(package, spec))
    usage = _usage(kernel, session.target, spec["options"])
    binary: dict[str, Any] | None = None
    if kernel.hash not in recorded:
        recorded.add(kernel.hash)
        try:
            entry, files = binary_record(kernel)
            binary = {
                "entry": entry,
                "files": {ext: base64.b64encode(data).decode() for ext, data in files.items()},
            }
        except ValueError as err:
            binary = {"skipped": str(err)}
    return {
        "hash": kernel.hash,
        "kernel": spec["kernel"],
        "num_warps": kernel.metadata.num_warps,
        "num_stages": kernel.metadata.num_stages,
        "blocks": {
            name: a["value"]
            for name, a in spec["arguments"].items()
            if name.startswith(("BLOCK", "ROWS")) and isinstance(a.get("value"), int)
        },
        **usage,
        "spills": usage["spill_bytes"] > 0,
        "binary": binary,
    }


def default_on() -> bool:
    """The default of the target option ``sm90_check``: on unless ``MLACC_SM90_CHECK=0``
    (the test suite's setting, but for the tests of the check itself)."""
    return os.environ.get("MLACC_SM90_CHECK", "1") != "0"


def _language_interpreted() -> bool:
    """Whether this process imported `triton.language` under the interpreter (its own jit
    helpers, `tl.sum` & co., are then interpreted functions and cannot be compiled here)."""
    import triton.language as tl
    from triton.runtime.jit import JITFunction

    return not isinstance(getattr(tl.standard, "sum", None), JITFunction)


def _compile_all(
    sources: Mapping[str, bytes], specs: list[dict[str, Any]], arch: int, budget_s: float
) -> list[dict[str, Any]]:
    """One result per spec: the compile's resources and binary, or ``{"skipped": reason}``."""
    if not _language_interpreted():
        with _compiled_mode():
            package = load_kernel_package(sources)
        recorded: set[str] = set()
        with compile_only(arch) as session:
            return [_guarded(package, spec, session, recorded) for spec in specs]
    # Triton was imported under the interpreter here: compile in a fresh process without it.
    job = {
        "arch": arch,
        "specs": specs,
        "sources": {k: v.decode() for k, v in sources.items()},
    }
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", __name__],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            env=env,
            timeout=budget_s,
            check=False,
        )
        out, why = proc.stdout, f"compile process failed: {proc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        why = f"time budget {budget_s:g} s spent"
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return results + [{"skipped": why}] * (len(specs) - len(results))


def _guarded(
    package: Any, spec: Mapping[str, Any], session: CompileOnly, recorded: set[str]
) -> dict[str, Any]:
    try:
        return compile_launch(package, spec, session, recorded)
    except Exception as err:  # noqa: BLE001 - a compile failure is reported, not raised
        first = (str(err).strip().splitlines() or [""])[-1][:300]
        return {"skipped": f"{type(err).__name__}: {first}"}


def check(
    plan: Plan,
    shapes: Mapping[int, tuple],
    sources: Mapping[str, bytes],
    *,
    budget_s: float,
    arch: int = ARCH,
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, bytes]]:
    """Compiles every distinct launch of the plan's Triton steps for ``sm_<arch>``.

    Returns the ``sm90`` manifest entry (registers and spills per compiled kernel; what could
    not be checked under ``skipped`` with why), the ``binaries`` manifest entry (None when no
    kernel compiled) and the binaries' payload files. Usage is cached on disk by Triton's hash
    of each compile (``$MLACC_CACHE_DIR``, default ``~/.cache/mlacc``); Triton's own cache
    keeps the binaries."""
    import triton
    from triton.backends.compiler import GPUTarget

    report: dict[str, Any] = {
        "arch": f"sm_{arch}",
        "triton": str(triton.__version__),
        "launches": [],
        "skipped": [],
    }
    start = time.monotonic()
    try:
        with _compiled_mode():
            package = load_kernel_package(sources)
        found, report["skipped"] = step_launches(plan, shapes, package.kernel_table(), package)
    except Exception as err:  # noqa: BLE001 - the whole check skipped, reported
        report["skipped"].append({"op": "*", "reason": f"{type(err).__name__}: {err}"})
        return report, None, {}
    specs = [json.loads(k) for k in found]
    by_hash: dict[str, dict[str, Any]] = {}
    results = _compile_all(sources, specs, arch, budget_s)
    for spec, ops, result in zip(specs, found.values(), results):
        if "skipped" in result:
            report["skipped"].append(
                {"kernel": spec["kernel"], "ops": ops, "reason": result["skipped"]}
            )
            continue
        kept = by_hash.setdefault(result["hash"], result)
        kept.setdefault("ops", [])
        kept["ops"] += [op for op in ops if op not in kept["ops"]]
    entries, files, unrecorded = [], {}, []
    for result in by_hash.values():
        binary = result.pop("binary")  # the first result of a kernel carries it
        del result["hash"]
        report["launches"].append(result)
        if "skipped" in binary:
            unrecorded.append({"kernel": result["kernel"], "reason": binary["skipped"]})
            continue
        entries.append(binary["entry"])
        for ext, name in binary["entry"]["files"].items():
            files[name] = base64.b64decode(binary["files"][ext])
    report["seconds"] = round(time.monotonic() - start, 2)
    if not entries:
        return report, None, {}
    record = {**target_record(GPUTarget("cuda", arch, 32)), "kernels": entries}
    if unrecorded:
        record["not_recorded"] = unrecorded
    return report, record, files


def summary(report: Mapping[str, Any], binaries: Mapping[str, Any] | None = None) -> str:
    """One line for the compile summary."""
    launches = report.get("launches", [])
    spilled = [f"{r['kernel']} ({r['spill_bytes']} B)" for r in launches if r["spills"]]
    regs = max((r["registers"] for r in launches), default=0)
    line = (
        f"{report['arch']}: {len(launches)} kernel configs compiled, max {regs} registers, "
        f"spills: {', '.join(spilled) or 'none'}"
    )
    if binaries:
        line += f"; {len(binaries['kernels'])} cubins carried (Triton {binaries['triton']})"
    if report.get("skipped"):
        line += f"; {len(report['skipped'])} not checked (mlacc inspect --section sm90)"
    return line


def main() -> None:
    """Compile worker: a JSON job on stdin (arch, specs, sources), a JSON line per spec out."""
    job = json.load(sys.stdin)
    sources = {k: v.encode() for k, v in job["sources"].items()}
    package = load_kernel_package(sources)
    recorded: set[str] = set()
    with compile_only(int(job["arch"])) as session:
        for spec in job["specs"]:
            print(json.dumps(_guarded(package, spec, session, recorded)), flush=True)


if __name__ == "__main__":
    main()
