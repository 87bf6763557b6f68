"""Compiled Triton kernels a `triton` artifact carries, and Triton's cache they go into.

Compile side: inside `compile_only(arch)`, Triton's own JIT compiles for an NVIDIA target in a
process without a GPU (a driver stand-in reports the target and launches nothing), so
``CompileOnly.warmup(jit, arguments)`` specializes the arguments exactly as a launch on that GPU
does and returns the `CompiledKernel`; `binary_record` turns it into a manifest entry (kernel,
the ASTSource's signature, constants and attributes) and its files (Triton's metadata JSON and
the cubin).

Run side: `seed_cache` puts each carried binary into Triton's on-disk cache under the key that
*this* process's Triton computes for the same source, options and target (the key
`triton.compile` looks up), so the JIT's first launch of a matching specialization loads the
cubin instead of compiling it. It does so only where the Triton version, the GPU target, ptxas
(``backend.hash()``), the compile options as this Triton derives them (``options.hash()``:
``TRITON_FORCE_DISABLE_FP_FUSION``, ``PTXAS_OPTIONS``, libdevice...) and Triton's
cache-invalidating settings (``DISABLE_LLVM_OPT``...) equal the compile side's: where they
differ the JIT would build another binary. A launch specialized differently at run time (say, a
pointer that is not 16-byte aligned) misses and compiles as usual.

Imports torch and triton only (never MLIR, never the compile side).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from ..errors import ArtifactError

# Where the binaries lie in an artifact's payload.
BINARY_DIR = "binaries/"
# The files of one compiled kernel that a launch needs (Triton's metadata, the binary).
_FILES = ("json", "cubin")
_SCALARS = (bool, int, float, str, type(None))
# Device index the stand-in driver reports: the JIT keeps its binder per device, and a real
# GPU's (0, 1, ...) must be neither reused for nor cleared by compile-only work.
_NO_DEVICE = -1
# Settings folded into the options (and so checked there), set by our compile worker.
_FOLDED_ENV = frozenset({"TRITON_DEFAULT_FP_FUSION"})


class _CompileOnlyDriver:
    """Stand-in for Triton's GPU driver: no device, stream 0, a fixed target; no launches."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def get_current_device(self) -> int:
        return _NO_DEVICE

    def get_current_stream(self, device: int | None = None) -> int:
        return 0

    def get_current_target(self) -> Any:
        return self.target


class CompileOnly:
    """Compiles JIT launches for one target through the JIT itself (see `compile_only`)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self._warmed: dict[int, Any] = {}

    def warmup(self, jit: Any, arguments: Mapping[str, Any]) -> Any:
        """The `CompiledKernel` a launch of `jit` with `arguments` (kernel parameters by name,
        launch options such as ``num_warps`` among them) runs on the target; tensors may be
        ``meta`` tensors (their address reads as 0: 16-byte aligned)."""
        self._warmed[id(jit)] = jit
        return jit.warmup(grid=(1,), **arguments)

    def forget(self) -> None:
        """Drops what the JIT functions cached for the stand-in device."""
        for jit in self._warmed.values():
            jit.device_caches.pop(_NO_DEVICE, None)
        self._warmed.clear()


@contextmanager
def compile_only(arch: int = 90) -> Iterator[CompileOnly]:
    """Within the block, Triton's JIT compiles for ``sm_<arch>`` with no GPU present. The
    driver swap is process-wide: no thread may launch kernels meanwhile."""
    from triton.backends.compiler import GPUTarget
    from triton.runtime.driver import driver

    target = GPUTarget("cuda", arch, 32)
    previous = getattr(driver, "_active", None)  # None: not created yet (no GPU needed)
    driver.set_active(_CompileOnlyDriver(target))
    session = CompileOnly(target)
    try:
        yield session
    finally:
        session.forget()
        driver.set_active(previous)


def meta_tensor(dtype: str) -> torch.Tensor:
    """An empty ``meta`` tensor of `dtype` (``"bfloat16"``, ...): what the JIT needs of a
    pointer argument when it only compiles."""
    return torch.empty(0, dtype=getattr(torch, dtype), device="meta")


def cubin_resources(cubin: bytes) -> dict[str, int]:
    """``REG``, ``STACK``, ``SHARED``, ``LOCAL`` of a cubin (``cuobjdump -res-usage``, as
    shipped with Triton); an empty dict where cuobjdump prints none."""
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not tool.is_file():
        raise FileNotFoundError(f"no cuobjdump at {tool}")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run(
            [str(tool), "-res-usage", f.name], capture_output=True, text=True, check=True
        ).stdout
    return {k: int(v) for k, v in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text)}


def target_record(target: Any) -> dict[str, Any]:
    """What a binary was compiled for: Triton version, GPU target, ptxas (backend hash)."""
    import triton
    from triton.compiler import make_backend

    return {
        "triton": str(triton.__version__),
        "target": {"backend": target.backend, "arch": target.arch, "warp_size": target.warp_size},
        "backend": make_backend(target).hash(),
    }


def binary_record(kernel: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A compiled kernel as its manifest entry and files (by extension); ValueError where a
    constant of its source cannot be written as JSON or the entry does not reproduce the
    compile's cache key (then `seed_cache` could not either)."""
    from triton.compiler import make_backend

    src = kernel.src
    for value in src.constants.values():
        if not isinstance(value, _SCALARS):
            raise ValueError(f"constexpr of type {type(value).__name__} is not recorded")
    files = {
        name.rsplit(".", 1)[-1]: Path(path).read_bytes()
        for name, path in kernel.metadata_group.items()
        if name.rsplit(".", 1)[-1] in _FILES
    }
    if set(files) != set(_FILES):
        raise ValueError(f"compiled kernel has no {', '.join(sorted(set(_FILES) - set(files)))}")
    entry = {
        "module": src.fn.fn.__module__.rsplit(".", 1)[-1],
        "kernel": src.fn.__name__,
        "signature": dict(src.signature),
        "constants": [[list(k), v] for k, v in src.constants.items()],
        "attrs": [[list(k), v] for k, v in src.attrs.items()],
        "files": {ext: f"{BINARY_DIR}{kernel.hash[:24]}.{ext}" for ext in _FILES},
        "sha256": {ext: hashlib.sha256(data).hexdigest() for ext, data in files.items()},
    }
    metadata = json.loads(files["json"])
    backend = make_backend(kernel.metadata.target)
    options = _options(backend, metadata)
    if _cache_hash(src.fn, entry, backend, options, _env(metadata)) != kernel.hash:
        raise ValueError("its recorded source and options do not reproduce Triton's cache key")
    entry["options_hash"] = options.hash()
    return entry, files


def checked_binaries(
    payload: Mapping[str, bytes], record: Any
) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
    """The artifact's binaries with their files; ArtifactError (one line) when the record is
    malformed, a file is missing or differs from the sha256 the manifest records."""
    if record is None:
        return []
    kernels = record.get("kernels") if isinstance(record, dict) else None
    if not isinstance(kernels, list):
        raise ArtifactError("triton artifact's binaries record is malformed (no list 'kernels')")
    out = []
    for i, entry in enumerate(kernels):
        why = _malformed(entry)
        if why:
            raise ArtifactError(f"triton artifact's binary entry {i} is malformed: {why}")
        files = {}
        for ext, name in entry["files"].items():
            data = payload.get(name)
            if data is None:
                raise ArtifactError(f"triton artifact lists binary '{name}' but does not carry it")
            if hashlib.sha256(data).hexdigest() != entry["sha256"].get(ext):
                raise ArtifactError(
                    f"triton artifact's binary '{name}' does not match its recorded sha256: "
                    "the payload was changed after compile"
                )
            files[ext] = data
        out.append((entry, files))
    return out


def _malformed(entry: Any) -> str | None:
    """What is wrong with a manifest entry of a binary, or None."""
    if not isinstance(entry, dict):
        return "not an object"
    for key, kind in (("module", str), ("kernel", str), ("signature", dict), ("options_hash", str)):
        if not isinstance(entry.get(key), kind):
            return f"'{key}' is not a {kind.__name__}"
    for key in ("constants", "attrs"):
        pairs = entry.get(key)
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], list) for p in pairs
        ):
            return f"'{key}' is not a list of [path, value] pairs"
    files, sha = entry.get("files"), entry.get("sha256")
    if not isinstance(files, dict) or sorted(files) != sorted(_FILES):
        return f"'files' does not name exactly a {' and a '.join(_FILES)} file"
    if not all(isinstance(n, str) and n.startswith(BINARY_DIR) for n in files.values()):
        return f"a file lies outside '{BINARY_DIR}'"
    if not isinstance(sha, dict) or not all(isinstance(sha.get(ext), str) for ext in _FILES):
        return "'sha256' does not give each file's digest"
    return None


def gpu_name(target: Any) -> str:
    """A recorded target (``{"backend", "arch", "warp_size"}``) in words."""
    if not isinstance(target, dict):
        return "an unrecorded GPU"
    return f"{target.get('backend')} sm_{target.get('arch')} (warp {target.get('warp_size')})"


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _options(backend: Any, metadata: Mapping[str, Any]) -> Any:
    """The compile's options as this Triton derives them from a kernel's metadata (its
    ``extern_libs`` paths are the compile machine's: this Triton's own libraries stand in,
    and ``options.hash()`` hashes them by content)."""
    return backend.parse_options(
        {k: _tuples(v) for k, v in metadata.items() if k != "extern_libs" and not k.isupper()}
    )


def _env(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Triton's cache-invalidating settings of a compile (upper-case metadata keys)."""
    return {k: v for k, v in metadata.items() if k.isupper()}


def _cache_hash(
    jit: Any, entry: Mapping[str, Any], backend: Any, options: Any, env: Mapping[str, str]
) -> str:
    """The hash under which `triton.compile` caches `entry`'s kernel (`get_cache_key`)."""
    from triton.compiler import ASTSource
    from triton.runtime.cache import get_cache_key

    src = ASTSource(
        jit,
        entry["signature"],
        {tuple(k): v for k, v in entry["constants"]},
        {tuple(k): v for k, v in entry["attrs"]},
    )
    key = get_cache_key(src, backend, options, env_vars=dict(env))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def seed_cache(
    package: ModuleType,
    record: Mapping[str, Any] | None,
    binaries: list[tuple[dict[str, Any], dict[str, bytes]]],
    target: Any,
) -> str:
    """Puts `binaries` (of `package`'s kernels) into Triton's cache for `target` where this
    Triton would build the same binary; says what it did."""
    if not binaries or not record:
        return "none carried"
    import importlib

    from triton._C.libtriton import get_cache_invalidating_env_vars
    from triton.compiler import make_backend
    from triton.runtime.cache import get_cache_manager

    here = target_record(target)
    if here["triton"] != record.get("triton"):
        return f"not used: compiled with Triton {record.get('triton')}, this is {here['triton']}"
    if here["target"] != record.get("target"):
        was, this = gpu_name(record.get("target")), gpu_name(here["target"])
        return f"not used: compiled for {was}, this is {this}"
    if here["backend"] != record.get("backend"):
        return "not used: compiled with another ptxas than this Triton's"
    backend = make_backend(target)
    env = dict(get_cache_invalidating_env_vars())
    seeded = present = 0
    refused: list[str] = []
    for entry, files in binaries:
        metadata = json.loads(files["json"])
        options = _options(backend, metadata)
        differ = sorted(
            k
            for k in (set(env) | set(_env(metadata))) - _FOLDED_ENV
            if env.get(k) != metadata.get(k)
        )
        if differ:
            refused.append(f"Triton settings differ from the compile's ({', '.join(differ)})")
            continue
        if options.hash() != entry["options_hash"]:
            refused.append("compile options differ from the compile's (Triton/ptxas settings)")
            continue
        module = importlib.import_module(f"{package.__name__}.{entry['module']}")
        digest = _cache_hash(getattr(module, entry["kernel"]), entry, backend, options, env)
        cache = get_cache_manager(digest)
        name = entry["kernel"][:150]  # as `triton.compile` names a kernel's files
        if cache.get_group(f"{name}.json") is not None:
            present += 1
            continue
        metadata["hash"] = digest
        paths = {
            f"{name}.json": cache.put(json.dumps(metadata), f"{name}.json", binary=False),
            f"{name}.cubin": cache.put(files["cubin"], f"{name}.cubin", binary=True),
        }
        cache.put_group(f"{name}.json", paths)
        seeded += 1
    status = (
        f"{seeded + present} of {len(binaries)} sm_{target.arch} binaries in Triton's cache "
        f"({seeded} placed, {present} already there)"
    )
    if refused:
        status += f"; {len(refused)} not used: {refused[0]}"
    return status
