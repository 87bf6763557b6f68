"""Capture errors: one line naming the module path (or op and source line) and the reason."""

from __future__ import annotations

from ..runtime.errors import MlaccError


class CaptureError(MlaccError):
    """A model the frontend cannot capture, or an op it cannot raise."""
