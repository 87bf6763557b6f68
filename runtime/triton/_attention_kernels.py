"""The Triton kernels behind `attention.py` (MLA decode, causal prefill, cache write, LSE combine).

Only the subset of Triton that 3.6 and 3.9 share: masked pointer arithmetic, `tl.dot`, `range`
loops, constexpr branches. Scores and softmax are fp32 in the log2 domain (``exp2`` with the
softmax scale times ``log2(e)`` folded in). ``UPCAST`` (set under the interpreter, whose bf16
`tl.dot` is wrong) turns dot operands to fp32; on a GPU they stay in the storage dtype.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._common import round_to
from .rope import load_rotated


@triton.jit
def _dot_operand(x, DTYPE: tl.constexpr, UPCAST: tl.constexpr):
    """x rounded to the storage dtype, then fp32 under the interpreter."""
    x = x.to(DTYPE)
    if UPCAST:
        x = x.to(tl.float32)
    return x


@triton.jit
def _position(x):
    """Positions as int32, int64 ones clamped (a masked key sits at int64 max: stays last)."""
    return tl.minimum(tl.maximum(x, -1), 2147483647).to(tl.int32)


@triton.jit
def latent_attention_kernel(
    q_ptr,
    qpe_ptr,
    kv_ptr,
    pos_ptr,
    cos_ptr,
    sin_ptr,
    bt_ptr,
    km_ptr,
    out_ptr,
    part_ptr,
    lse_ptr,
    S,
    H,
    C,
    DR,
    T,
    chunk,
    n_split,
    n_km,
    n_tab,
    page_size,
    sq_b,
    sq_s,
    sq_h,
    sqp_b,
    sqp_s,
    sqp_h,
    skv_b,
    skv_t,
    spos_b,
    spos_s,
    stab,
    sbt_b,
    skm_b,
    so_b,
    so_s,
    so_h,
    scale_log2,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_DR: tl.constexpr,
    LAYOUT: tl.constexpr,
    ROTATE: tl.constexpr,
    PAGED: tl.constexpr,
    HAS_KM: tl.constexpr,
    SPLIT: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """Absorbed MLA attention of BLOCK_R query rows (``r = s * H + h``) over one KV split.

    Grid ``(cdiv(S*H, BLOCK_R), B, n_split)``. Each KV tile ``[BLOCK_N, C + dr]`` is loaded
    once and serves every row of the program, as keys (scores) and as values (``p · c``).
    Without SPLIT the normalized context goes to ``out``; with it, the split's normalized
    partial and its log2-sum-exp go to ``part [B, S*H, n_split, C]`` / ``lse [B, S*H, n_split]``.
    """
    pid_r = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    split = tl.program_id(2)
    dtype = kv_ptr.dtype.element_ty

    rows = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < S * H
    s_idx = rows // H
    h_idx = rows % H
    pos = _position(tl.load(pos_ptr + b * spos_b + s_idx * spos_s, mask=rmask, other=-1))

    cols = tl.arange(0, BLOCK_C)
    cmask = cols < C
    q_row = b * sq_b + s_idx.to(tl.int64) * sq_s + h_idx.to(tl.int64) * sq_h
    q = tl.load(
        q_ptr + q_row[:, None] + cols[None, :], mask=rmask[:, None] & cmask[None, :], other=0.0
    )
    q = _dot_operand(q, dtype, UPCAST)
    qp_row = b * sqp_b + s_idx.to(tl.int64) * sqp_s + h_idx.to(tl.int64) * sqp_h
    qpe = load_rotated(
        qpe_ptr, qp_row, rmask, pos, cos_ptr, sin_ptr, stab, n_tab, DR, BLOCK_DR, LAYOUT, ROTATE
    )
    qpe = _dot_operand(qpe, dtype, UPCAST)
    dcols = tl.arange(0, BLOCK_DR)
    dmask = dcols < DR

    lo = split * chunk
    hi = tl.minimum(lo + chunk, T)
    hi = tl.minimum(hi, tl.max(pos, axis=0) + 1)

    m_i = tl.full([BLOCK_R], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_R], tl.float32)
    acc = tl.zeros([BLOCK_R, BLOCK_C], tl.float32)
    for start in range(lo, hi, BLOCK_N):
        slots = start + tl.arange(0, BLOCK_N)
        smask = slots < hi
        if PAGED:
            page = tl.load(bt_ptr + b * sbt_b + slots // page_size, mask=smask, other=0)
            kv_row = (page.to(tl.int64) * page_size + slots % page_size) * skv_t
        else:
            kv_row = b * skv_b + slots.to(tl.int64) * skv_t
        kv = tl.load(
            kv_ptr + kv_row[:, None] + cols[None, :],
            mask=smask[:, None] & cmask[None, :],
            other=0.0,
        )
        kpe = tl.load(
            kv_ptr + C + kv_row[:, None] + dcols[None, :],
            mask=smask[:, None] & dmask[None, :],
            other=0.0,
        )
        if UPCAST:
            kv = kv.to(tl.float32)
            kpe = kpe.to(tl.float32)
        sc = tl.dot(q, tl.trans(kv), input_precision="ieee")
        sc += tl.dot(qpe, tl.trans(kpe), input_precision="ieee")

        vis = smask[None, :] & (slots[None, :] <= pos[:, None])
        if HAS_KM:
            key_ok = tl.load(km_ptr + b * skm_b + slots, mask=smask & (slots < n_km), other=0)
            vis = vis & (key_ok != 0)[None, :]
        sc = tl.where(vis, sc * scale_log2, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(sc, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(sc - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(
            _dot_operand(p, dtype, UPCAST), kv, input_precision="ieee"
        )
        m_i = m_new

    seen = l_i > 0.0
    ctx = acc / tl.where(seen, l_i, 1.0)[:, None]
    if SPLIT:
        row_id = b * S * H + rows
        p_off = (row_id * n_split + split).to(tl.int64)
        tl.store(
            part_ptr + p_off[:, None] * C + cols[None, :],
            ctx,
            mask=rmask[:, None] & cmask[None, :],
        )
        lse = tl.where(seen, m_i + tl.log2(tl.where(seen, l_i, 1.0)), float("-inf"))
        tl.store(lse_ptr + p_off, lse, mask=rmask)
    else:
        o_row = b * so_b + s_idx.to(tl.int64) * so_s + h_idx.to(tl.int64) * so_h
        tl.store(
            out_ptr + o_row[:, None] + cols[None, :],
            ctx.to(out_ptr.dtype.element_ty),
            mask=rmask[:, None] & cmask[None, :],
        )


@triton.jit
def lse_combine_kernel(
    part_ptr,
    lse_ptr,
    out_ptr,
    S,
    H,
    C,
    n_split,
    so_b,
    so_s,
    so_h,
    BLOCK_SPLIT: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Merges the KV splits of one query row: ``Σ 2^(lse_i - max) part_i / Σ 2^(lse_i - max)``.

    Grid ``(S*H, B)``; a row no split saw gets zeros."""
    r = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    row_id = b * S * H + r
    sp = tl.arange(0, BLOCK_SPLIT)
    spm = sp < n_split
    lse = tl.load(lse_ptr + row_id * n_split + sp, mask=spm, other=float("-inf"))
    mx = tl.max(lse, axis=0)
    w = tl.exp2(lse - tl.where(mx == float("-inf"), 0.0, mx))
    den = tl.sum(w, axis=0)
    w = w / tl.where(den > 0.0, den, 1.0)
    o_row = b * so_b + (r // H).to(tl.int64) * so_s + (r % H).to(tl.int64) * so_h
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        cm = cols < C
        part = tl.load(
            part_ptr + (row_id * n_split + sp)[:, None] * C + cols[None, :],
            mask=spm[:, None] & cm[None, :],
            other=0.0,
        )
        ctx = tl.sum(part * w[:, None], axis=0)
        tl.store(out_ptr + o_row + cols, ctx.to(out_ptr.dtype.element_ty), mask=cm)


@triton.jit
def decoupled_attention_kernel(
    qn_ptr,
    qpe_ptr,
    kn_ptr,
    kpe_ptr,
    v_ptr,
    qpos_ptr,
    kpos_ptr,
    cos_ptr,
    sin_ptr,
    km_ptr,
    out_ptr,
    S,
    T,
    H,
    DN,
    DV,
    DR,
    n_tab,
    sqn_b,
    sqn_s,
    sqn_h,
    sqp_b,
    sqp_s,
    sqp_h,
    skn_b,
    skn_t,
    skn_h,
    skp_b,
    skp_t,
    sv_b,
    sv_t,
    sv_h,
    sqpos_b,
    skpos_b,
    stab,
    skm_b,
    so_b,
    so_s,
    so_h,
    scale_log2,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_DN: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    BLOCK_DR: tl.constexpr,
    LAYOUT: tl.constexpr,
    ROTATE: tl.constexpr,
    HAS_KM: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_SCAN: tl.constexpr,
):
    """Flash attention of BLOCK_M queries of one (batch, head) in the un-absorbed MLA form.

    Grid ``(cdiv(S, BLOCK_M), B*H)``. Scores are ``q_nope·k_nope + q_pe·k_pe`` (k_pe shared by
    the heads; both rotary parts rotated on load with tables). Keys after the last one visible to
    some query of the block (causality by position, key_mask) are not read: with ascending key
    positions that is the causal triangle.
    """
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    dtype = kn_ptr.dtype.element_ty

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < S
    qpos = _position(tl.load(qpos_ptr + b * sqpos_b + rows, mask=rmask, other=-1))
    q_max = tl.max(qpos, axis=0)

    dn = tl.arange(0, BLOCK_DN)
    dv = tl.arange(0, BLOCK_DV)
    q_row = b * sqn_b + rows.to(tl.int64) * sqn_s + h * sqn_h
    q = tl.load(
        qn_ptr + q_row[:, None] + dn[None, :],
        mask=rmask[:, None] & (dn < DN)[None, :],
        other=0.0,
    )
    q = _dot_operand(q, dtype, UPCAST)
    qp_row = b * sqp_b + rows.to(tl.int64) * sqp_s + h * sqp_h
    qpe = load_rotated(
        qpe_ptr, qp_row, rmask, qpos, cos_ptr, sin_ptr, stab, n_tab, DR, BLOCK_DR, LAYOUT, ROTATE
    )
    qpe = _dot_operand(qpe, dtype, UPCAST)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)
    # The keys past the last one any query of the block may see are skipped: a scan over the
    # key positions bounds the main loop, which then has no branch (so its loads pipeline).
    hi = tl.full([], 0, tl.int32)
    for start in range(0, T, BLOCK_SCAN):
        keys = start + tl.arange(0, BLOCK_SCAN)
        kmask = keys < T
        kpos = _position(tl.load(kpos_ptr + b * skpos_b + keys, mask=kmask, other=0))
        if HAS_KM:
            key_ok = tl.load(km_ptr + b * skm_b + keys, mask=kmask, other=0)
            kmask = kmask & (key_ok != 0)
        hi = tl.maximum(hi, tl.max(tl.where(kmask & (kpos <= q_max), keys + 1, 0), axis=0))

    for start in range(0, hi, BLOCK_N):
        keys = start + tl.arange(0, BLOCK_N)
        kmask = keys < hi
        kpos = _position(tl.load(kpos_ptr + b * skpos_b + keys, mask=kmask, other=0))
        if HAS_KM:
            key_ok = tl.load(km_ptr + b * skm_b + keys, mask=kmask, other=0)
            kmask = kmask & (key_ok != 0)
        k_row = b * skn_b + keys.to(tl.int64) * skn_t + h * skn_h
        k = tl.load(
            kn_ptr + k_row[:, None] + dn[None, :],
            mask=kmask[:, None] & (dn < DN)[None, :],
            other=0.0,
        )
        kp_row = b * skp_b + keys.to(tl.int64) * skp_t
        kpe = load_rotated(
            kpe_ptr,
            kp_row,
            kmask,
            kpos,
            cos_ptr,
            sin_ptr,
            stab,
            n_tab,
            DR,
            BLOCK_DR,
            LAYOUT,
            ROTATE,
        )
        k = _dot_operand(k, dtype, UPCAST)
        kpe = _dot_operand(kpe, dtype, UPCAST)
        sc = tl.dot(q, tl.trans(k), input_precision="ieee")
        sc += tl.dot(qpe, tl.trans(kpe), input_precision="ieee")
        vis = kmask[None, :] & (kpos[None, :] <= qpos[:, None])
        sc = tl.where(vis, sc * scale_log2, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(sc, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(sc - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v_row = b * sv_b + keys.to(tl.int64) * sv_t + h * sv_h
        v = tl.load(
            v_ptr + v_row[:, None] + dv[None, :],
            mask=kmask[:, None] & (dv < DV)[None, :],
            other=0.0,
        )
        v = _dot_operand(v, dtype, UPCAST)
        p = _dot_operand(p, dtype, UPCAST)
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        m_i = m_new

    ctx = acc / tl.where(l_i > 0.0, l_i, 1.0)[:, None]
    o_row = b * so_b + rows.to(tl.int64) * so_s + h * so_h
    tl.store(
        out_ptr + o_row[:, None] + dv[None, :],
        ctx.to(out_ptr.dtype.element_ty),
        mask=rmask[:, None] & (dv < DV)[None, :],
    )


@triton.jit
def cache_update_kernel(
    cache_ptr,
    ent_ptr,
    pos_ptr,
    cos_ptr,
    sin_ptr,
    bt_ptr,
    w_ptr,
    S,
    E,
    n_plain,
    DR,
    n_slots,
    n_tab,
    page_size,
    eps,
    sc_b,
    sc_t,
    se_b,
    se_s,
    spos_b,
    stab,
    sbt_b,
    BLOCK_S: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_DR: tl.constexpr,
    LAYOUT: tl.constexpr,
    ROTATE: tl.constexpr,
    PAGED: tl.constexpr,
    NORM: tl.constexpr = False,
    ROUND: tl.constexpr = 0,
):
    """Writes BLOCK_S entries of one sequence at their positions, RoPE on the last DR channels.

    Grid ``(cdiv(S, BLOCK_S), B)``. Channels ``[0, n_plain)`` are copied (with NORM: RMSNorm'd
    by the weight at `w_ptr` first, rounded to the entries' dtype), the rotary part (when
    ROTATE) is rotated by the position's table row. Positions outside ``[0, n_slots)`` are not
    written."""
    pid_s = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    dtype = cache_ptr.dtype.element_ty

    rows = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    pos = _position(tl.load(pos_ptr + b * spos_b + rows, mask=rows < S, other=-1))
    ok = (rows < S) & (pos >= 0) & (pos < n_slots)
    if PAGED:
        page = tl.load(bt_ptr + b * sbt_b + pos // page_size, mask=ok, other=0)
        dst = (page.to(tl.int64) * page_size + pos % page_size) * sc_t
    else:
        dst = b * sc_b + pos.to(tl.int64) * sc_t
    src = b * se_b + rows.to(tl.int64) * se_s

    cols = tl.arange(0, BLOCK_E)
    m = ok[:, None] & (cols < n_plain)[None, :]
    x = tl.load(ent_ptr + src[:, None] + cols[None, :], mask=m, other=0.0)
    if NORM:
        xf = x.to(tl.float32)
        inv = tl.math.rsqrt(tl.sum(xf * xf, 1) / n_plain + eps)
        w = tl.load(w_ptr + cols, mask=cols < n_plain, other=0.0).to(tl.float32)
        x = round_to(xf * inv[:, None] * w[None, :], ROUND).to(ent_ptr.dtype.element_ty)
    tl.store(cache_ptr + dst[:, None] + cols[None, :], x.to(dtype), mask=m)
    if ROTATE:
        pe = load_rotated(
            ent_ptr + n_plain,
            src,
            ok,
            pos,
            cos_ptr,
            sin_ptr,
            stab,
            n_tab,
            DR,
            BLOCK_DR,
            LAYOUT,
            ROTATE,
        )
        # Rounded to the entries' dtype first: the semantics rotate in the entries' dtype.
        pe = pe.to(ent_ptr.dtype.element_ty).to(dtype)
        dc = tl.arange(0, BLOCK_DR)
        pm = ok[:, None] & (dc < DR)[None, :]
        tl.store(cache_ptr + n_plain + dst[:, None] + dc[None, :], pe, mask=pm)
