"""The `reference` target: graph-level IR executed through the ops' reference semantics."""

from .compiler import ReferenceBackend

__all__ = ["ReferenceBackend"]
