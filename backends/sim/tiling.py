"""Tiling: a graph op's work, cut into scratchpad-sized tiles for one device.

Three shapes of work cover every op the `sim` target runs:

* `MatmulWork` — ``batch`` products ``[m, k] x [k, n]`` (linears, absorbed MLA projections,
  grouped expert matmuls, the router). Tiles ``tm x tn x tk``; the reduction over ``k`` stays
  on one core; ``m x n`` tiles spread over the cores. When one ``tm x k`` activation block
  serves every tile (decode), it is loaded once per core and the weights stream.
* `AttentionWork` — queries against a KV cache streamed ``tile`` tokens at a time, one
  (sequence, query block) per core; when there are fewer of those than cores, the cache of a
  sequence is split over several cores (split-KV, as FlashMLA does for decode).
* `StreamWork` — rows streamed through the vector engine (norms, RoPE, SwiGLU, quantization,
  dispatch/combine, copies).

Each tiler picks the largest tiles whose buffers fit the scratchpad and raises `TilingError`
when even the smallest does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlacc.runtime.sim.device import Device
from mlacc.runtime.sim.engine import matmul_cycles, tile_source
from mlacc.runtime.sim.schedule import ContextStream, ExpertStream, KernelSchedule, Matmul

ACC_BYTES = 4  # fp32 accumulators
MIN_TILE = 16
PIPELINE_DEPTH = 8  # streamed ops: tiles per core to aim for


class TilingError(Exception):
    """The op cannot be tiled for the device (no tile fits, a dtype the device lacks)."""


@dataclass(frozen=True)
class Routing:
    """How a grouped expert matmul's rows are routed: `tokens` tokens each pick `picks`
    experts, `top_k` of them among `routed` routed experts, the rest the `shared` experts
    (stacked after the routed ones); segments are padded to `block` rows; the expert offsets
    are step argument `offsets`."""

    tokens: int
    picks: int
    top_k: int
    routed: int
    shared: int
    block: int
    offsets: int


@dataclass(frozen=True)
class MatmulWork:
    """``batch`` independent ``[m, k] x [k, n]`` products (``b`` is the streamed weight)."""

    batch: int
    m: int
    n: int
    k: int
    a_bytes: int  # bytes per element of the activations
    b_bytes: int  # ... of the weights
    out_bytes: int
    dtype: str  # tensor-engine input dtype
    epilogue_ops: float = 0.0  # vector ops per output element
    expert_parallel: bool = False  # batch = experts, spread over chips and cores
    imbalance: float = 1.0  # busiest core's load / mean load (expert placement)
    routing: Routing | None = None  # grouped expert matmuls


@dataclass(frozen=True)
class AttentionWork:
    """``batch`` sequences of ``q_len`` queries x ``heads`` attending to ``kv_len`` cached
    tokens of ``entry_bytes`` each; scores over ``k_dim`` channels, values of ``v_dim``."""

    batch: int
    q_len: int
    heads: int
    kv_len: int
    k_dim: int
    v_dim: int
    entry_bytes: int
    elt_bytes: int
    dtype: str
    context_arg: int  # the step argument holding the query positions


@dataclass(frozen=True)
class StreamWork:
    """``rows`` rows streamed through the vector engine: bytes read/written and vector ops in
    total; a row is the smallest tile. ``link_bytes`` cross chips (dispatch/combine)."""

    rows: int
    in_bytes: float
    out_bytes: float
    ops: float
    link_bytes: float = 0.0  # one copy of every row
    link_phase: str = ""
    fanout: int = 1  # experts per row: a row goes once to each distinct chip among them
    routing: Routing | None = None  # dispatch/combine: whose experts the rows go to


def compute_dtype(device: Device, dtype: str, fp8_fallback: str = "") -> tuple[str, str]:
    """The tensor-engine dtype for `dtype` inputs on `device` and a note ("" if none)."""
    if device.core.tensor.supports(dtype):
        return dtype, ""
    if dtype == "fp8" and fp8_fallback and device.core.tensor.supports(fp8_fallback):
        return fp8_fallback, f"no FP8 on {device.name}: runs at the {fp8_fallback} rate"
    have = ", ".join(sorted(device.core.tensor.macs_per_cycle))
    hint = (
        " (compile with fp8_fallback='bf16' to run FP8 matmuls at the bf16 rate)"
        if dtype == "fp8"
        else ""
    )
    raise TilingError(
        f"device '{device.name}' has no {dtype} tensor-engine rate (it has {have}){hint}"
    )


def _fit(sizes: list[int], floors: list[int], footprint, sram: int, what: str) -> list[int]:
    """Halves sizes, first the first one above its floor, until `footprint(sizes)` fits in
    `sram` (so callers order sizes by which to give up first)."""
    sizes = list(sizes)
    while footprint(sizes) > sram:
        shrinkable = [i for i, (s, f) in enumerate(zip(sizes, floors)) if s > f]
        if not shrinkable:
            raise TilingError(
                f"the smallest {what} tile ({'x'.join(map(str, sizes))}) needs "
                f"{footprint(sizes)} bytes of scratchpad; the device has {sram}"
            )
        i = shrinkable[0]
        sizes[i] = max(floors[i], sizes[i] // 2)
    return sizes


def _pow2_upto(limit: int, floor: int) -> list[int]:
    """Powers of two from `floor` to `limit`, plus `limit` itself."""
    sizes, size = {limit}, floor
    while size < limit:
        sizes.add(size)
        size *= 2
    return sorted(sizes)


_TILES: dict[tuple, tuple[int, int, int]] = {}  # (work, device text, ...) -> tile


def _matmul_tile(w: MatmulWork, device: Device, buffers: int, m_c: int, batch_c: int):
    """The ``(tm, tn, tk)`` tile with the least estimated time on the busiest core: every
    candidate that fits the scratchpad is costed as tiles x max(tensor-engine cycles, load
    cycles) — the steady state of the double-buffered loop — plus the once-loads."""
    key = (w, device.source, buffers, m_c, batch_c)
    if key not in _TILES:
        _TILES[key] = _search_matmul_tile(w, device, buffers, m_c, batch_c)
    return _TILES[key]


def _search_matmul_tile(w: MatmulWork, device: Device, buffers: int, m_c: int, batch_c: int):
    sram = device.core.sram_bytes
    best, best_key = None, None
    for tm in _pow2_upto(min(m_c, 1024), min(m_c, MIN_TILE)):
        for tn in _pow2_upto(min(w.n, 2048), min(w.n, MIN_TILE)):
            for tk in _pow2_upto(min(w.k, 4096), min(w.k, MIN_TILE)):
                if _matmul_footprint(w, buffers, tm, tn, tk) > sram:
                    continue
                mt, nt, kt = math.ceil(m_c / tm), math.ceil(w.n / tn), math.ceil(w.k / tk)
                units = batch_c * mt * nt
                cores = min(device.cores, units)
                bw, _ = tile_source(device, cores)
                a_once = batch_c == 1 and mt == 1 and kt == 1
                load = tn * tk * w.b_bytes + (0 if a_once else tm * tk * w.a_bytes)
                per_tile = max(matmul_cycles(device, tm, tn, tk, w.dtype), load / bw)
                tiles = math.ceil(units / cores) * kt
                estimate = tiles * per_tile + (m_c * w.k * w.a_bytes / bw if a_once else 0.0)
                key = (estimate, tiles)
                if best_key is None or key < best_key:
                    best, best_key = (tm, tn, tk), key
    if best is None:
        floor = [min(m_c, MIN_TILE), min(w.n, MIN_TILE), min(w.k, MIN_TILE)]
        raise TilingError(
            f"the smallest matmul tile ({'x'.join(map(str, floor))}) needs "
            f"{_matmul_footprint(w, buffers, *floor)} bytes of scratchpad; the device has {sram}"
        )
    return best


def _matmul_footprint(w: MatmulWork, buffers: int, tm: int, tn: int, tk: int) -> int:
    return (
        buffers * (tm * tk * w.a_bytes + tn * tk * w.b_bytes)
        + tm * tn * ACC_BYTES
        + buffers * tm * tn * w.out_bytes
    )


def tile_matmul(
    w: MatmulWork, device: Device, op: str, buffers: int = 2, **extra
) -> KernelSchedule:
    """The schedule of `w` (see the module docstring)."""
    if w.expert_parallel:
        chips = min(device.chips, w.batch)
        batch_c, m_c = math.ceil(w.batch / chips), w.m
    else:
        chips = min(device.chips, w.m)
        batch_c, m_c = w.batch, math.ceil(w.m / chips)
    try:
        tm, tn, tk = _matmul_tile(w, device, buffers, m_c, batch_c)
    except TilingError as err:
        raise TilingError(f"{op}: {err}") from None
    mt, nt, kt = math.ceil(m_c / tm), math.ceil(w.n / tn), math.ceil(w.k / tk)
    units = batch_c * mt * nt
    cores = min(device.cores, units)
    per_core = math.ceil(math.ceil(units / cores) * w.imbalance)
    a_once = batch_c == 1 and mt == 1 and kt == 1
    load = tn * tk * w.b_bytes + (0 if a_once else tm * tk * w.a_bytes)
    once = m_c * w.k * w.a_bytes if a_once else 0
    a_reads = cores * once if a_once else batch_c * m_c * w.k * w.a_bytes * nt
    tile_traffic = (
        a_reads + batch_c * w.n * w.k * w.b_bytes * mt + batch_c * m_c * w.n * w.out_bytes
    )
    hbm = (
        tile_traffic
        if device.l2 is None
        else _matmul_hbm(device, w, m_c, batch_c, (tm, tn), cores, tile_traffic)
    )
    experts = None
    if w.routing is not None:
        r = w.routing
        experts = ExpertStream(
            arg=r.offsets,
            experts=r.routed + r.shared,
            tile_rows=tm,
            n_tiles=nt,
            k_tiles=kt,
            weight_bytes=float(w.n * w.k * w.b_bytes),
            row_bytes=float(w.k * w.a_bytes + w.n * w.out_bytes),
            row_flops=2.0 * w.n * w.k,
            chips=chips,
            cores=device.cores,
            imbalance=w.imbalance,
            shared=r.shared,
        )
    notes = []
    if w.imbalance != 1.0:
        notes.append(f"expert placement: busiest core has {w.imbalance:.2f}x the mean load")
    return KernelSchedule(
        op=op,
        chips=chips,
        cores=cores,
        tiles=per_core * kt,
        buffers=buffers,
        sram_bytes=_matmul_footprint(w, buffers, tm, tn, tk),
        load_bytes=load,
        store_bytes=tm * tn * w.out_bytes / kt,
        once_bytes=once,
        matmul=Matmul(tm, tn, tk, w.dtype),
        vector_ops=w.epilogue_ops * tm * tn / kt,
        flops=2.0 * w.batch * w.m * w.n * w.k,
        hbm_bytes=float(chips * hbm),
        experts=experts,
        notes=tuple(notes) + tuple(extra.pop("notes", ())),
        **extra,
    )


def _matmul_hbm(
    device: Device,
    w: MatmulWork,
    m_c: int,
    batch_c: int,
    tile: tuple[int, int],
    cores: int,
    tile_traffic: float,
) -> float:
    """HBM bytes of one chip's products when tiles stream through the L2.

    The cores take output tiles product by product, so ``ceil(cores / tiles per product)``
    products are in flight at once. Per product, the output is written once. When the smaller
    operands of the products in flight fit in half the L2, they stay resident while the other
    operands stream past them once: both are read once. Otherwise a product's cores work on a
    wave of output tiles at a time, grouped into a ``gm x gn`` block of tile rows and columns
    (the rasterization GEMM libraries use): a wave reads its ``gm`` A panels and ``gn`` B
    panels once and shares them through the L2, so A is read once per column of waves and B
    once per row of waves. Never more than the tiles move.
    """
    tm, tn = tile
    a = m_c * w.k * w.a_bytes
    b = w.n * w.k * w.b_bytes
    out = m_c * w.n * w.out_bytes
    mt, nt = math.ceil(m_c / tm), math.ceil(w.n / tn)
    in_flight = min(batch_c, math.ceil(cores / (mt * nt)))
    if min(a, b) * in_flight <= device.l2.capacity_bytes / 2:
        reads = a + b
    else:
        wave = min(max(1, cores // in_flight), mt * nt)
        gm = max(1, min(mt, round(math.sqrt(wave))))
        gn = max(1, min(nt, math.ceil(wave / gm)))
        reads = a * math.ceil(nt / gn) + b * math.ceil(mt / gm)
    return min(tile_traffic, batch_c * (reads + out))


def tile_attention(
    w: AttentionWork, device: Device, op: str, buffers: int = 2, **extra
) -> KernelSchedule:
    """The schedule of `w` (see the module docstring)."""

    def footprint(s: list[int]) -> int:
        qb, tt = s
        m = qb * w.heads
        return (
            buffers * tt * w.entry_bytes
            + m * w.k_dim * w.elt_bytes
            + m * w.v_dim * ACC_BYTES
            + m * tt * ACC_BYTES
        )

    qb, tt = _attention_tile(w, device, buffers, footprint, op)
    units = w.batch * math.ceil(w.q_len / qb)
    chips = min(device.chips, units)
    units_c = math.ceil(units / chips)
    kv_tiles = math.ceil(w.kv_len / tt)
    splits = max(1, min(device.cores // units_c, kv_tiles)) if units_c < device.cores else 1
    cores = min(device.cores, units_c * splits)
    m = qb * w.heads
    q_bytes = w.batch * w.q_len * w.heads * w.k_dim * w.elt_bytes
    out_bytes = w.batch * w.q_len * w.heads * w.v_dim * w.elt_bytes
    # Causal: query block j sees the context up to its own positions (the last block all of
    # it), so the average block streams kv_len - (q_len - qb) / 2 tokens.
    span = max(0, w.q_len - qb)
    seen = w.kv_len - span / 2
    stream = _attention_hbm(device, w, qb, cores * chips, units * seen * w.entry_bytes)
    base = KernelSchedule(
        op=op,
        chips=chips,
        cores=cores,
        tiles=1,
        buffers=buffers,
        sram_bytes=footprint([qb, tt]),
        load_bytes=0.0,
        store_bytes=0.0,
        matmul=Matmul(m, tt, w.k_dim + w.v_dim, w.dtype),
        flops=2.0 * w.batch * w.q_len * w.heads * seen * (w.k_dim + w.v_dim),
        hbm_bytes=float(stream + q_bytes + out_bytes),
        context=ContextStream(
            arg=w.context_arg,
            length=w.kv_len,
            tile=tt,
            entry_bytes=w.entry_bytes,
            splits=splits,
            units_per_core=math.ceil(units_c * splits / cores),
            unit_in=float(m * w.k_dim * w.elt_bytes),
            unit_out=float(m * w.v_dim * w.elt_bytes),
            stream_bytes=float(stream),
            rows=m,
            dims=w.k_dim + w.v_dim,
            causal_span=span,
        ),
        **extra,
    )
    return base.with_context(w.kv_len)


def _attention_tile(w: AttentionWork, device: Device, buffers: int, footprint, op: str):
    """The ``(query block, cache tokens)`` tile with the least estimated time on the busiest
    core, among those that fit the scratchpad: each costs units x cache tiles x max(matmul,
    load) cycles. More query rows per tile mean fewer passes over the cache."""
    sram = device.core.sram_bytes
    best, best_key = None, None
    for qb in _pow2_upto(min(w.q_len, 128), 1):
        for tt in _pow2_upto(min(w.kv_len, 512), min(w.kv_len, MIN_TILE)):
            if footprint([qb, tt]) > sram:
                continue
            units = w.batch * math.ceil(w.q_len / qb)
            cores = min(device.cores * device.chips, units)
            bw, _ = tile_source(device, min(device.cores, cores))
            seen = w.kv_len - max(0, w.q_len - qb) / 2
            per_tile = max(
                matmul_cycles(device, qb * w.heads, tt, w.k_dim + w.v_dim, w.dtype),
                tt * w.entry_bytes / bw,
            )
            estimate = math.ceil(units / cores) * math.ceil(seen / tt) * per_tile
            key = (estimate, -qb)
            if best_key is None or key < best_key:
                best, best_key = (qb, tt), key
    if best is None:
        smallest = [1, min(w.kv_len, MIN_TILE)]
        raise TilingError(
            f"the smallest {op} attention tile ({'x'.join(map(str, smallest))}) needs "
            f"{footprint(smallest)} bytes of scratchpad; the device has {sram}"
        )
    return best


def _attention_hbm(
    device: Device, w: AttentionWork, qb: int, cores: int, tile_traffic: float
) -> float:
    """HBM bytes of the cache stream. Without an L2 every tile comes from HBM. With one, the
    query blocks of a sequence that run at once share its cache through the L2: while the
    caches of the sequences in flight (``cores`` units, sequence by sequence) fit, each
    sequence's cache is read from HBM once; beyond, about once per L2-full."""
    if device.l2 is None:
        return tile_traffic
    blocks = math.ceil(w.q_len / qb)
    per_seq = w.kv_len * w.entry_bytes
    in_flight = math.ceil(min(cores, w.batch * blocks) / blocks) * per_seq
    refetch = max(1.0, in_flight / device.l2.capacity_bytes)
    return min(tile_traffic, w.batch * per_seq * refetch)


def remote_copies(device: Device, fanout: int) -> tuple[float, float]:
    """(scale-up link, scale-out network) copies of one routed row, on average. The experts
    are spread over all chips (expert-parallel) and a row picks `fanout` of them uniformly,
    so each other chip holds one of them with chance ``p = 1 - (1 - 1/chips)^fanout``; a chip
    gets one copy however many of the row's experts it holds. Across nodes a row crosses the
    network once per other node holding one of its experts and is forwarded over that node's
    links to the rest (as DeepEP's NVLink-forwarding kernels do): ``(nodes - 1) (1 - (1 -
    1/nodes)^fanout)`` network copies and ``(chips - nodes) p`` link copies."""
    chips, nodes = device.chips, device.nodes
    if chips <= 1:
        return 0.0, 0.0
    on_chip = 1 - (1 - 1 / chips) ** fanout
    on_node = 1 - (1 - 1 / nodes) ** fanout
    return (chips - nodes) * on_chip, (nodes - 1) * on_node


def tile_stream(
    w: StreamWork, device: Device, op: str, buffers: int = 2, **extra
) -> KernelSchedule:
    """The schedule of `w` (see the module docstring)."""
    rows = max(1, w.rows)
    chips = min(device.chips, rows)
    rows_c = math.ceil(rows / chips)
    cores = min(device.cores, rows_c)
    rows_per_core = math.ceil(rows_c / cores)
    in_row, out_row, ops_row = w.in_bytes / rows, w.out_bytes / rows, w.ops / rows

    def footprint(s: list[int]) -> int:
        return math.ceil(buffers * s[0] * (in_row + out_row))

    # At least PIPELINE_DEPTH tiles per core when there are rows enough, so loads, vector work
    # and stores of consecutive tiles overlap.
    start = max(1, math.ceil(rows_per_core / PIPELINE_DEPTH))
    (tile_rows,) = _fit([start], [1], footprint, device.core.sram_bytes, f"{op} row")
    link, network = (w.link_bytes / chips * n for n in remote_copies(device, w.fanout))
    return KernelSchedule(
        op=op,
        chips=chips,
        cores=cores,
        tiles=math.ceil(rows_per_core / tile_rows),
        buffers=buffers,
        sram_bytes=footprint([tile_rows]),
        load_bytes=tile_rows * in_row,
        store_bytes=tile_rows * out_row,
        vector_ops=tile_rows * ops_row,
        link_bytes=link,
        network_bytes=network,
        link_phase=w.link_phase if link or network else "",
        hbm_bytes=float(w.in_bytes + w.out_bytes),
        **extra,
    )
