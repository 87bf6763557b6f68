"""MLIR memref descriptors built over torch tensors, for ``_mlir_ciface_*`` calls.

A ranked memref of rank ``r`` is passed as a pointer to
``{void *allocated, void *aligned, int64 offset, int64 sizes[r], int64 strides[r]}``.
The descriptor points at the tensor's own storage: nothing is copied.
"""

from __future__ import annotations

import ctypes
from functools import cache

import torch


@cache
def descriptor_type(rank: int) -> type[ctypes.Structure]:
    """The ctypes struct of a rank-`rank` memref descriptor."""
    fields = [
        ("allocated", ctypes.c_void_p),
        ("aligned", ctypes.c_void_p),
        ("offset", ctypes.c_int64),
    ]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
    return type(f"MemRef{rank}D", (ctypes.Structure,), {"_fields_": fields})


def descriptor(t: torch.Tensor) -> ctypes.Structure:
    """A descriptor of contiguous tensor `t` (its storage, no copy)."""
    rank = t.dim()
    desc = descriptor_type(rank)()
    ptr = t.data_ptr()
    desc.allocated = ptr
    desc.aligned = ptr
    desc.offset = 0
    if rank:
        desc.sizes[:] = list(t.shape)
        desc.strides[:] = list(t.stride())
    return desc
