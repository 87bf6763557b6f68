"""The one import point for the MLIR Python bindings (bundled with torch-mlir).

Every other module imports `ir`, `ext`, `func`, ... from here, so a change in the
bindings' API touches one file. Nothing here imports torch.
"""

from torch_mlir import execution_engine, ir, passmanager, rewrite
from torch_mlir.dialects import arith, ext, func
from torch_mlir.dialects import torch as torch_dialect

__all__ = [
    "arith",
    "execution_engine",
    "ext",
    "func",
    "ir",
    "passmanager",
    "rewrite",
    "torch_dialect",
]
