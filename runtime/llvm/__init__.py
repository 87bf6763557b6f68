"""Run side of the `llvm` target: load the artifact's shared object, call it with memrefs.

Nothing here imports MLIR or the compile side: the artifact carries the native code
(``payload/model.so``) and its calling convention (``payload/llvm.json``).
"""

from .library import NativeLibrary, host_cpu
from .memref import descriptor

__all__ = ["NativeLibrary", "descriptor", "host_cpu"]
