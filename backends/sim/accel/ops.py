"""The `accel` dialect: graph ops tiled for a parameterized accelerator.

Each graph op that runs on the device is followed by one ``accel.kernel`` naming one of its
results: the kernel is how that op runs. Its region holds the schedule ops, per tile of the
loop each core runs::

    %q, %s = "fp8.quantize"(%x) {...} : ...
    "accel.kernel"(%q) ({
      "accel.dma"() {direction = "in", bytes = 262144 : i64} : () -> ()
      "accel.vector"() {ops = 524288 : i64} : () -> ()
      "accel.dma"() {direction = "out", bytes = 135168 : i64} : () -> ()
    }) {op = "fp8.quantize", chips = 1 : i64, cores = 56 : i64, tiles = 7 : i64, ...}

The kernel's attributes say how many chips and cores run it, how many tiles the busiest
core's loop has, how many scratchpad buffers each streamed operand gets (2: double
buffering) and how much scratchpad one core holds. Schedule ops are per tile; their order is
the pipeline's: DMA in, tensor engine, vector engine, DMA out (``once``: loaded before the
loop; ``accel.link``: chip-to-chip traffic before or after it).
"""

from mlacc.dialects._mlir import ext, ir
from mlacc.dialects.base import AnyTensor

_DMA_DIRECTIONS = ("in", "out", "once")
_LINK_PHASES = ("dispatch", "combine")
_SCHEDULE_OPS = ("accel.dma", "accel.matmul", "accel.vector", "accel.link")


class ACCEL(ext.Dialect, name="accel"):
    """Kernels of a tiled accelerator program: DMA, tensor-engine and vector work per tile."""


def _fail(op: ir.OpView, message: str) -> bool:
    op.location.emit_error(f"'{op.OPERATION_NAME}' op {message}")
    return False


def _ints(op: ir.OpView, *names: str, minimum: int = 1) -> str | None:
    for name in names:
        if name not in op.attributes:
            return None  # IRDL reports the missing attribute
        value = ir.IntegerAttr(op.attributes[name]).value
        if value < minimum:
            return f"attribute '{name}' must be >= {minimum}, got {value}"
    return None


class KernelOp(ACCEL.Operation, name="kernel", traits=[ir.NoTerminatorTrait]):
    """How the graph op defining ``of`` runs: its per-tile schedule on the accelerator.

    Attributes: ``op`` (the graph op's name), ``chips``, ``cores`` (per chip), ``tiles`` (loop
    iterations on the busiest core), ``buffers`` (per streamed operand), ``sram_bytes`` (one
    core's scratchpad footprint), ``flops`` and ``hbm_bytes`` (the whole kernel).
    """

    op: ir.StringAttr
    chips: ir.IntegerAttr
    cores: ir.IntegerAttr
    tiles: ir.IntegerAttr
    buffers: ir.IntegerAttr
    sram_bytes: ir.IntegerAttr
    flops: ir.FloatAttr
    hbm_bytes: ir.FloatAttr
    of: ext.Operand[AnyTensor]
    body: ir.Region

    def verify_invariants(self) -> bool:
        problem = _ints(self, "chips", "cores", "tiles", "buffers")
        problem = problem or _ints(self, "sram_bytes", minimum=0)
        if problem:
            return _fail(self, problem)
        blocks = list(self.regions[0].blocks) if len(self.regions) == 1 else []
        if len(blocks) != 1:
            return _fail(self, "must have one region with one block")
        for inner in blocks[0].operations:
            if inner.operation.name not in _SCHEDULE_OPS:
                return _fail(
                    self, f"body may hold only schedule ops, found '{inner.operation.name}'"
                )
        owner = self.operands[0].owner
        name = ir.StringAttr(self.attributes["op"]).value
        defining = (
            owner.name if isinstance(owner, ir.Operation) else getattr(owner, "operation", None)
        )
        defining = (
            defining
            if isinstance(defining, str)
            else (defining.name if defining is not None else "a block argument")
        )
        if defining != name:
            return _fail(
                self, f"attribute 'op' is '{name}' but its operand is defined by '{defining}'"
            )
        return True


class DmaOp(ACCEL.Operation, name="dma"):
    """A DMA transfer per tile: ``in`` (HBM to scratchpad), ``out`` (back), or ``once`` (in,
    before the loop: operands every tile reuses). ``bytes`` per core."""

    direction: ir.StringAttr
    bytes: ir.IntegerAttr

    def verify_invariants(self) -> bool:
        if "direction" in self.attributes:
            d = ir.StringAttr(self.attributes["direction"]).value
            if d not in _DMA_DIRECTIONS:
                return _fail(
                    self, f"attribute 'direction' must be one of {_DMA_DIRECTIONS}, got '{d}'"
                )
        problem = _ints(self, "bytes", minimum=0)
        return _fail(self, problem) if problem else True


class MatmulOp(ACCEL.Operation, name="matmul"):
    """Tensor-engine work per tile: ``count`` products ``[m, k] x [k, n]`` in ``dtype``."""

    m: ir.IntegerAttr
    n: ir.IntegerAttr
    k: ir.IntegerAttr
    count: ir.IntegerAttr
    dtype: ir.StringAttr

    def verify_invariants(self) -> bool:
        problem = _ints(self, "m", "n", "k", "count")
        return _fail(self, problem) if problem else True


class VectorOp(ACCEL.Operation, name="vector"):
    """Vector-engine work per tile: ``ops`` elementwise operations."""

    ops: ir.IntegerAttr

    def verify_invariants(self) -> bool:
        problem = _ints(self, "ops", minimum=0)
        return _fail(self, problem) if problem else True


class LinkOp(ACCEL.Operation, name="link"):
    """Chip-to-chip traffic of the kernel, per chip: ``bytes`` over the links within its node
    and ``network`` bytes to other nodes, before the loop (``dispatch``) or after it
    (``combine``)."""

    bytes: ir.IntegerAttr
    phase: ir.StringAttr
    network: ir.IntegerAttr

    def verify_invariants(self) -> bool:
        if "phase" in self.attributes:
            p = ir.StringAttr(self.attributes["phase"]).value
            if p not in _LINK_PHASES:
                return _fail(self, f"attribute 'phase' must be one of {_LINK_PHASES}, got '{p}'")
        problem = _ints(self, "bytes", "network", minimum=0)
        return _fail(self, problem) if problem else True
