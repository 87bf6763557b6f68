"""Registers and spills of an artifact's kernel launches on sm_90, compiled ahead of time.

No GPU is needed: the artifact's kernel package is imported with the Triton interpreter off
(real `JITFunction`s), each Triton step of the plan runs its wrapper on ``meta`` tensors of the
step's shapes while `JITFunction.run` only records the launch (kernel, arguments, warps,
stages), and each distinct launch is compiled with
``triton.compile(ASTSource(fn, signature, constexprs), target=GPUTarget("cuda", 90, 32))``;
``cuobjdump -res-usage`` (shipped with Triton) reads registers, stack and shared memory from
the cubin, and where there is a stack frame Triton's own ``ptxas -v`` log says how much of it
is spills. The launches are those the wrappers choose on a GPU (the interpreter's
few-large-programs heuristics are off in this import).

Whatever cannot be checked (a wrapper that needs real data, a compile error, no cuobjdump, the
time budget spent) is listed under ``skipped`` with its reason, never dropped. Compiles hit
Triton's own cache (``~/.triton/cache``) when repeated, so a second compile of the same model
costs little.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ...runtime.executors.triton_sources import load_kernel_package, sources_digest
from ...runtime.plan import Plan

ARCH = 90
# Version of a cached result's fields (3: spill bytes from Triton's ptxas -v log).
_FORMAT = 3
# Launch options of `kernel[grid](...)` that are not kernel arguments.
_OPTIONS = ("num_warps", "num_stages", "num_ctas", "maxnreg", "enable_fp_fusion")
_PTR = {
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.float32: "fp32",
    torch.float64: "fp64",
    torch.int8: "i8",
    torch.int16: "i16",
    torch.int32: "i32",
    torch.int64: "i64",
    torch.uint8: "u8",
    torch.bool: "i1",
    torch.float8_e4m3fn: "fp8e4nv",
    torch.float8_e5m2: "fp8e5",
}


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
    """One recorded launch as JSON-able data: the kernel (module, name), its signature,
    constexprs, divisibility attributes and options, specialized as the JIT specializes
    (16-aligned pointers, ints equal to 1 constant, multiples of 16 divisible)."""
    options = {k: kwargs.pop(k) for k in _OPTIONS if k in kwargs}
    options.setdefault("num_warps", 4)
    options.setdefault("num_stages", 3)
    bound = inspect.signature(jit.fn).bind(*args, **kwargs)
    bound.apply_defaults()
    constexpr = {p.name for p in jit.params if p.is_constexpr}
    signature: dict[str, str] = {}
    constants: dict[str, Any] = {}
    divisible: list[int] = []
    for i, (name, value) in enumerate(bound.arguments.items()):
        if name in constexpr or value is None:
            if not isinstance(value, (int, float, str, bool, type(None))):
                raise Skip(f"{jit.__name__}: constexpr '{name}' of type {type(value).__name__}")
            signature[name], constants[name] = "constexpr", value
        elif isinstance(value, torch.Tensor):
            if value.dtype not in _PTR:
                raise Skip(f"{jit.__name__}: pointer to {value.dtype}")
            signature[name] = "*" + _PTR[value.dtype]
            divisible.append(i)
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            if value == 1:
                signature[name], constants[name] = "constexpr", 1
                continue
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
            if value % 16 == 0:
                divisible.append(i)
        elif isinstance(value, float):
            signature[name] = "fp32"
        else:
            raise Skip(f"{jit.__name__}: argument '{name}' of type {type(value).__name__}")
    return {
        "module": jit.fn.__module__.rsplit(".", 1)[-1],
        "kernel": jit.__name__,
        "signature": signature,
        "constants": constants,
        "divisible": divisible,
        "options": options,
    }


def _key(spec: Mapping[str, Any], digest: str, arch: int) -> str:
    import triton

    text = json.dumps([spec, digest, arch, str(triton.__version__), _FORMAT], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _cuobjdump() -> Path:
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not tool.is_file():
        raise Skip(f"no cuobjdump at {tool}")
    return tool


def _resources(cubin: bytes) -> dict[str, int]:
    """``REG``, ``STACK``, ``SHARED``, ``LOCAL`` of a cubin (``cuobjdump -res-usage``)."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run(
            [str(_cuobjdump()), "-res-usage", f.name], capture_output=True, text=True, check=True
        ).stdout
    found = {k: int(v) for k, v in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text)}
    if "REG" not in found:
        raise Skip("cuobjdump printed no resource usage")
    return found


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


def compile_launch(package: Any, spec: Mapping[str, Any], arch: int = ARCH) -> dict[str, Any]:
    """Compiles one launch of `package`'s kernels for ``sm_<arch>``: registers, stack/local
    bytes, spill bytes, shared memory."""
    import importlib

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    module = importlib.import_module(f"{package.__name__}.{spec['module']}")
    jit = getattr(module, spec["kernel"])
    attrs = {(i,): [["tt.divisibility", 16]] for i in spec["divisible"]}
    source = ASTSource(jit, dict(spec["signature"]), dict(spec["constants"]), attrs)
    target = GPUTarget("cuda", arch, 32)
    compiled = triton.compile(source, target=target, options=spec["options"])
    res = _resources(compiled.asm["cubin"])
    stack = res.get("STACK", 0) + res.get("LOCAL", 0)
    spill = _spill_bytes(source, target, spec["options"]) if stack else 0
    return {
        "kernel": spec["kernel"],
        "num_warps": spec["options"]["num_warps"],
        "num_stages": spec["options"]["num_stages"],
        "blocks": {
            k: v
            for k, v in spec["constants"].items()
            if k.startswith(("BLOCK", "ROWS")) and isinstance(v, int)
        },
        "registers": res["REG"],
        "stack_bytes": res.get("STACK", 0),
        "local_bytes": res.get("LOCAL", 0),
        "shared_bytes": res.get("SHARED", 0),
        "spill_bytes": spill,
        "spills": spill > 0,
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
    """One result per spec: the compile's resources, or ``{"skipped": reason}``."""
    if not _language_interpreted():
        with _compiled_mode():
            package = load_kernel_package(sources)
        return [_guarded(package, spec, arch) for spec in specs]
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


def _guarded(package: Any, spec: Mapping[str, Any], arch: int) -> dict[str, Any]:
    try:
        return compile_launch(package, spec, arch)
    except Exception as err:  # noqa: BLE001 - a compile failure is reported, not raised
        first = (str(err).strip().splitlines() or [""])[-1][:300]
        return {"skipped": f"{type(err).__name__}: {first}"}


def _cache_dir() -> Path:
    root = os.environ.get("MLACC_CACHE_DIR") or Path.home() / ".cache" / "mlacc"
    return Path(root) / "sm90"


def check(
    plan: Plan,
    shapes: Mapping[int, tuple],
    sources: Mapping[str, bytes],
    *,
    budget_s: float,
    arch: int = ARCH,
) -> dict[str, Any]:
    """The ``sm90`` manifest entry: per distinct launch of the plan's Triton steps, registers
    and spills for ``sm_<arch>``; what could not be checked under ``skipped`` with why.
    Results are cached on disk (``$MLACC_CACHE_DIR``, default ``~/.cache/mlacc``) by launch,
    kernel sources, arch and Triton version."""
    import triton

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
        return report
    digest = sources_digest(sources)
    specs = [json.loads(k) for k in found]
    keys = [_key(spec, digest, arch) for spec in specs]
    cache = _cache_dir()
    results: dict[str, dict[str, Any]] = {}
    for key in keys:
        path = cache / f"{key}.json"
        if path.is_file():
            results[key] = json.loads(path.read_text())
    todo = [i for i, key in enumerate(keys) if key not in results]
    if todo:
        done = _compile_all(sources, [specs[i] for i in todo], arch, budget_s)
        for i, result in zip(todo, done):
            results[keys[i]] = result
            if "skipped" not in result or not result["skipped"].startswith("time budget"):
                cache.mkdir(parents=True, exist_ok=True)
                (cache / f"{keys[i]}.json").write_text(json.dumps(result))
    for spec, key, ops in zip(specs, keys, found.values()):
        result = results[key]
        if "skipped" in result:
            report["skipped"].append(
                {"kernel": spec["kernel"], "ops": ops, "reason": result["skipped"]}
            )
        else:
            report["launches"].append({**result, "ops": ops})
    report["seconds"] = round(time.monotonic() - start, 2)
    return report


def summary(report: Mapping[str, Any]) -> str:
    """One line for the compile summary."""
    launches = report.get("launches", [])
    spilled = [f"{r['kernel']} ({r['spill_bytes']} B)" for r in launches if r["spills"]]
    regs = max((r["registers"] for r in launches), default=0)
    line = (
        f"{report['arch']}: {len(launches)} kernel configs compiled, max {regs} registers, "
        f"spills: {', '.join(spilled) or 'none'}"
    )
    if report.get("skipped"):
        line += f"; {len(report['skipped'])} not checked (mlacc inspect --section sm90)"
    return line


def main() -> None:
    """Compile worker: a JSON job on stdin (arch, specs, sources), a JSON line per spec out."""
    job = json.load(sys.stdin)
    sources = {k: v.encode() for k, v in job["sources"].items()}
    package = load_kernel_package(sources)
    for spec in job["specs"]:
        print(json.dumps(_guarded(package, spec, int(job["arch"]))), flush=True)


if __name__ == "__main__":
    main()
