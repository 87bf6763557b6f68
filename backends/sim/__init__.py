"""The `sim` target: a parameterized accelerator, simulated.

Compile side: `--accel-lower` tiles every graph op for a device description (`devices/`,
or a user's TOML file) into ``accel.kernel`` schedules; the plan carries each schedule as its
step's cost. Run side (`mlacc.runtime.executors.sim`): the reference semantics compute the
numbers, the timing model (`mlacc.runtime.sim.engine`) says what they cost. Built on the
public plug-in API only: `Backend`, `PlanBuilder`, and the `mlacc.passes` / `mlacc.dialects`
entry points.
"""

from typing import Any

__all__ = ["SimBackend"]


def __getattr__(name: str) -> Any:
    # The backend imports torch (plans, semantics); `mlacc-opt` imports `lowering` without it.
    if name == "SimBackend":
        from .backend import SimBackend

        return SimBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
