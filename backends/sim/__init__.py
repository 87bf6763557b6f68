"""The `sim` target: a parameterized accelerator, simulated.

Compile side: `--accel-lower` tiles every graph op for a device description (`devices/`,
or a user's TOML file) into ``accel.kernel`` schedules; the plan carries each schedule as its
step's cost. Run side (`mlacc.runtime.executors.sim`): the reference semantics compute the
numbers, the timing model (`mlacc.runtime.sim.engine`) says what they cost. Built on the
public plug-in API only: `Backend`, `PlanBuilder`, and the `mlacc.passes` / `mlacc.dialects`
entry points.
"""

from .backend import SimBackend

__all__ = ["SimBackend"]
