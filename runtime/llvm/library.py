"""Loading a target's shared object safely: architecture and CPU feature checks first."""

from __future__ import annotations

import ctypes
import os
import platform
import tempfile
from functools import cache

from ..errors import ArtifactError

# ELF e_machine values of the architectures the llvm target builds for.
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}

# CPU features that generated x86 code may use (a subset of /proc/cpuinfo flags).
X86_FEATURES = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "bmi2",
    "avx512f",
    "avx512dq",
    "avx512bw",
    "avx512vl",
    "avx512cd",
    "avx512_bf16",
    "avx512_vnni",
    "avx512vbmi",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
)


@cache
def host_cpu() -> dict[str, object]:
    """This machine's architecture and the code-relevant CPU features it has."""
    arch = platform.machine().lower()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {"arch": arch, "features": sorted(f for f in X86_FEATURES if f in flags)}


def check_cpu(wanted: dict[str, object]) -> None:
    """ArtifactError when this CPU cannot run code built for `wanted` (arch + features)."""
    here = host_cpu()
    if wanted.get("arch") != here["arch"]:
        raise ArtifactError(
            f"the llvm artifact was compiled for {wanted.get('arch')}; this machine is "
            f"{here['arch']}: recompile it here"
        )
    missing = sorted(set(wanted.get("features", [])) - set(here["features"]))
    if missing:
        raise ArtifactError(
            f"the llvm artifact was compiled for a CPU with {', '.join(missing)}, which this "
            "CPU lacks: recompile it here"
        )


def _check_elf(blob: bytes, arch: str) -> None:
    if len(blob) < 64 or blob[:4] != b"\x7fELF":
        raise ArtifactError("the llvm artifact's shared object is corrupt (not an ELF file)")
    if blob[4] != 2 or blob[5] != 1:
        raise ArtifactError("the llvm artifact's shared object is not 64-bit little-endian")
    machine = int.from_bytes(blob[18:20], "little")
    built_for = ELF_MACHINES.get(machine, f"ELF machine {machine}")
    if built_for != arch:
        raise ArtifactError(
            f"the llvm artifact's shared object is built for {built_for}; this machine is "
            f"{arch}: recompile it here"
        )


class NativeLibrary:
    """A shared object loaded from bytes (written to a private temporary file, then dlopen)."""

    def __init__(self, blob: bytes, cpu: dict[str, object]):
        check_cpu(cpu)
        _check_elf(blob, str(host_cpu()["arch"]))
        fd, path = tempfile.mkstemp(prefix="mlacc-llvm-", suffix=".so")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            try:
                self.lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
            except OSError as err:
                reason = str(err).split(":")[-1].strip()
                raise ArtifactError(
                    f"the llvm artifact's shared object does not load ({reason})"
                ) from None
        finally:
            os.unlink(path)

    def function(self, symbol: str) -> ctypes._CFuncPtr:
        """The native function `symbol` (void return; arguments are descriptor pointers)."""
        try:
            fn = getattr(self.lib, symbol)
        except AttributeError:
            raise ArtifactError(
                f"the llvm artifact's shared object has no function '{symbol}'"
            ) from None
        fn.restype = None
        return fn
