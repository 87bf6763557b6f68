"""The error types users see. Each carries one line that names the cause.

They live on the run side so both halves of mlacc (and plug-ins) can raise and catch them
without importing the compiler.
"""

from __future__ import annotations


class MlaccError(Exception):
    """Base of every error mlacc reports to users as one `error:` line."""


class ArtifactError(MlaccError):
    """A `.mlacc` file is truncated, corrupt, of an unknown format version, or inconsistent."""


class InputError(MlaccError):
    """Inputs given at run time do not match the compiled signature (count, shape, dtype)."""


class TargetError(MlaccError):
    """A target is unknown, not installed, or failed to load."""


class UnsupportedOpError(MlaccError):
    """A target was given an op it cannot compile."""


class CompileError(MlaccError):
    """Compilation failed (a pass, a lowering, a missing weight)."""
