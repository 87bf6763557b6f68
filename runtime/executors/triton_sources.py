"""The Triton kernel sources an artifact carries, imported as a private package.

A `triton` artifact's payload holds the kernel package it was compiled with
(``payload/kernels/*.py``: a copy of `mlacc.runtime.triton`, ``__init__.py`` included) and the
manifest records their sha256 (`sources_digest`). `load_kernel_package` checks the digest and
imports those files (never the installed kernels) as the package
``mlacc.runtime._triton_kernels_<digest>_<mode>``: a sibling of `mlacc.runtime.triton`, so the
kernels' relative imports (``from ._common import ...``, ``from ..semantics import ...``)
resolve as they do in the installed package. The files are written to a private temporary
folder for the process's lifetime (Triton reads a kernel's source from its file when it
compiles or interprets it). ``TRITON_INTERPRET`` is read when a package is imported (as
`triton.jit` reads it); interpreted and compiled packages are cached apart.

Imports neither MLIR nor the compile side.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ArtifactError, TargetError

# Where the kernel sources lie in an artifact's payload.
KERNEL_DIR = "kernels/"
_PARENT = __name__.rsplit(".", 2)[0]  # mlacc.runtime
_packages: dict[tuple[str, bool], ModuleType] = {}


def sources_digest(sources: Mapping[str, bytes]) -> str:
    """sha256 over the kernel sources (file names and contents, in name order)."""
    h = hashlib.sha256()
    for name, data in sorted(sources.items()):
        h.update(name.encode() + b"\0" + data + b"\0")
    return h.hexdigest()


def payload_sources(payload: Mapping[str, bytes]) -> dict[str, bytes]:
    """The kernel files of an artifact's payload, by file name."""
    return {
        name[len(KERNEL_DIR) :]: data
        for name, data in payload.items()
        if name.startswith(KERNEL_DIR) and name.endswith(".py")
    }


def checked_sources(payload: Mapping[str, bytes], manifest: Mapping[str, Any]) -> dict[str, bytes]:
    """The payload's kernel sources; ArtifactError (one line) when they are absent, malformed
    or differ from the sha256 the manifest records."""
    sources = payload_sources(payload)
    if "__init__.py" not in sources:
        raise ArtifactError(
            "triton artifact carries no kernel package (payload/kernels/__init__.py); "
            "recompile it with this mlacc"
        )
    for name in sources:
        if "/" in name or not name[:-3].isidentifier():
            raise ArtifactError(f"triton artifact has a malformed kernel file name '{name}'")
    want = manifest.get("backend", {}).get("triton", {}).get("kernel_sources_sha256")
    have = sources_digest(sources)
    if want != have:
        raise ArtifactError(
            f"triton artifact's kernel sources do not match their recorded sha256 "
            f"({str(want)[:12]}..., found {have[:12]}...): the payload was changed after compile"
        )
    return sources


def interpreting() -> bool:
    """Whether ``TRITON_INTERPRET`` asks for the Triton interpreter, read as `triton.jit`
    reads it (``1``/``true``/``on``/``yes``, any case)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


def load_kernel_package(sources: Mapping[str, bytes]) -> ModuleType:
    """Imports `sources` (file name -> bytes, with ``__init__.py``) as a private package and
    returns it; the same sources in the same launch mode are imported once per process."""
    digest = sources_digest(sources)
    mode = interpreting()
    key = (digest, mode)
    if key not in _packages:
        name = f"{_PARENT}._triton_kernels_{digest[:16]}_{'interp' if mode else 'jit'}"
        folder = Path(tempfile.mkdtemp(prefix="mlacc-triton-kernels-"))
        atexit.register(shutil.rmtree, folder, True)
        for file, data in sources.items():
            (folder / file).write_bytes(data)
        spec = importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        try:
            spec.loader.exec_module(package)
            package.kernel_table()  # imports the kernel modules now (errors at load)
        except Exception as err:  # noqa: BLE001 - any import failure is one error line
            for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[mod]
            first = (str(err).splitlines() or [""])[0]
            raise TargetError(
                "the artifact's Triton kernels fail to import with this Triton/torch "
                f"({type(err).__name__}: {first})"
            ) from None
        _packages[key] = package
    return _packages[key]
