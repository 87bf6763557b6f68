"""MLA attention: absorbed (`mla.absorb_query`, `mla.latent_attention`, `mla.absorb_output`),
un-absorbed (`mla.kv_expand`, `mla.decoupled_attention`), `mla.cache_update` and
`mla.cache_gather`.

Contractions are fp32 `einsum` generics; the softmax is masked by position (``key j is
visible to query i iff k_pos[j] <= q_pos[i]``, and ``key_mask[b, j]`` when given), fp32, and a
query that sees no key gets a zero row. A paged cache (pool ``[N, bs, E]`` + ``block_table
[B, M]``) is read through a gather into its logical ``[B, M * bs, E]`` form and written slot by
slot into its blocks; block ids outside the pool are clamped on reads and skipped on writes
(native code cannot raise: the runtime's block allocator never hands them out).
"""

from __future__ import annotations

from ..emit import TT, Names, dims, einsum, empty, extract_slice, f32, filled, from_f32, generic
from . import Kernel, lowering
from .rope import rotate


def _heads(k: Kernel) -> tuple[int, int, int]:
    return int(k.attrs["num_heads"]), int(k.attrs["qk_nope_head_dim"]), int(k.attrs["v_head_dim"])


def _wkv_b_split(lines: list[str], names: Names, k: Kernel) -> tuple[str, TT, str, TT]:
    """W_UK ``[H, dn, C]`` and W_UV ``[H, dv, C]`` as slices of wkv_b ``[H*(dn+dv), C]``."""
    h, dn, dv = _heads(k)
    w, wt = k.arg("wkv_b"), k.type("wkv_b")
    c = wt.shape[1]
    w3t = wt.like((h, dn + dv, c))
    w3 = names("w3")
    lines.append(
        f"{w3} = tensor.expand_shape {w} [[0, 1], [2]] output_shape [{h}, {dn + dv}, {c}] "
        f": {wt} into {w3t}"
    )
    uk, ukt = extract_slice(lines, names, w3, w3t, [0, 0, 0], [h, dn, c])
    uv, uvt = extract_slice(lines, names, w3, w3t, [0, dn, 0], [h, dv, c])
    return uk, ukt, uv, uvt


def logical_cache(lines: list[str], names: Names, k: Kernel, field: str) -> tuple[str, TT]:
    """Operand `field` as a contiguous ``[B, T, E]`` cache (a paged pool is gathered)."""
    cache, ct = k.arg(field), k.type(field)
    if not k.has("block_table"):
        return cache, ct
    table, tt = k.arg("block_table"), k.type("block_table")
    pool, bs, e = ct.shape
    b, m = tt.shape
    out_t = ct.like((b, m * bs, e))
    body = [
        "%ib = linalg.index 0 : index",
        "%it = linalg.index 1 : index",
        "%ie = linalg.index 2 : index",
        f"%bs = arith.constant {bs} : index",
        "%blk = arith.divui %it, %bs : index",
        "%off = arith.remui %it, %bs : index",
        f"%id0 = tensor.extract {table}[%ib, %blk] : {tt}",
        f"%id1 = arith.index_cast %id0 : {tt.elem} to index",
        "%c0 = arith.constant 0 : index",
        f"%last = arith.constant {pool - 1} : index",
        "%id2 = arith.maxsi %id1, %c0 : index",
        "%id = arith.minsi %id2, %last : index",
        f"%x = tensor.extract {cache}[%id, %off, %ie] : {ct}",
    ]
    out = names("logical")
    lines.append(
        generic(
            out, 3, [], [(empty(lines, names, out_t), out_t, dims(0, 1, 2))], "ppp", body, ["%x"]
        )
    )
    return out, out_t


@lowering("mla.absorb_query")
def absorb_query(k: Kernel) -> list[str]:
    """``q_latent[b,s,h,c] = sum_d q_nope[b,s,h,d] W_UK[h,d,c]``."""
    lines: list[str] = []
    uk, ukt, _, _ = _wkv_b_split(lines, k.names, k)
    qt = k.type("q_nope")
    # c innermost: W_UK rows are read contiguously (the schedule leaves this form to LLVM)
    out, out_t = einsum(
        lines, k.names, "bshd,hdc->bshc", k.arg("q_nope"), qt, uk, ukt, qt.elem, order="bshdc"
    )
    lines.append(f"return {out} : {out_t}")
    return lines


@lowering("mla.absorb_output")
def absorb_output(k: Kernel) -> list[str]:
    """``o[b,s,h,v] = sum_c ctx[b,s,h,c] W_UV[h,v,c]``."""
    lines: list[str] = []
    _, _, uv, uvt = _wkv_b_split(lines, k.names, k)
    ct = k.type("ctx")
    out, out_t = einsum(lines, k.names, "bshc,hvc->bshv", k.arg("ctx"), ct, uv, uvt, ct.elem)
    lines.append(f"return {out} : {out_t}")
    return lines


@lowering("mla.kv_expand")
def kv_expand(k: Kernel) -> list[str]:
    """``k_nope[b,t,h,d] = sum_c latent[b,t,c] W_UK[h,d,c]``, ``v`` likewise with W_UV."""
    lines: list[str] = []
    uk, ukt, uv, uvt = _wkv_b_split(lines, k.names, k)
    lt = k.type("latent")
    kn, knt = einsum(lines, k.names, "btc,hdc->bthd", k.arg("latent"), lt, uk, ukt, lt.elem)
    v, vt = einsum(lines, k.names, "btc,hdc->bthd", k.arg("latent"), lt, uv, uvt, lt.elem)
    lines.append(f"return {kn}, {v} : {knt}, {vt}")
    return lines


def _softmax_parts(
    lines: list[str],
    names: Names,
    scores: str,
    st: TT,
    visible: list[str],
    vis_ins: list[tuple[str, TT, str]],
    scale: float,
) -> tuple[str, str, TT]:
    """The masked softmax over the last dim of fp32 ``scores [b,s,h,t]`` times `scale`, not
    yet normalized: ``(exp(x - rowmax) [b,s,h,t], rowsum [b,s,h], rowsum type)``.

    `visible` is body text defining ``%vis`` (i1) from ``%i0..%i3`` (loop indices) and the
    block arguments ``%in1...`` of `vis_ins`. Invisible keys get 0 (an all-invisible row sums
    to 0). The caller divides the weighted sum by the row sum (`_normalized`): one division
    per output instead of one per probability, and a plain contraction in between.
    """
    ident = dims(0, 1, 2, 3)
    rows_t = st.like(st.shape[:-1])
    ninf = "0xFF800000"
    idx = [f"%i{n} = linalg.index {n} : index" for n in range(4)]
    masked = empty(lines, names, st)
    body = [
        *idx,
        *visible,
        f"%sc = arith.constant {f32(scale)} : f32",
        "%x = arith.mulf %in0, %sc : f32",
        f"%ninf = arith.constant {ninf} : f32",
        "%m = arith.select %vis, %x, %ninf : f32",
    ]
    sm = names("masked")
    lines.append(
        generic(sm, 4, [(scores, st, ident), *vis_ins], [(masked, st, ident)], "pppp", body, ["%m"])
    )
    mx0 = filled(lines, names, rows_t, ninf)
    mx = names("rowmax")
    lines.append(
        generic(
            mx,
            4,
            [(sm, st, ident)],
            [(mx0, rows_t, dims(0, 1, 2))],
            "pppr",
            ["%mm = arith.maximumf %out0, %in0 : f32"],
            ["%mm"],
        )
    )
    ex0 = empty(lines, names, st)
    body = [
        "%z = arith.constant 0.000000e+00 : f32",
        f"%ninf = arith.constant {ninf} : f32",
        "%live = arith.cmpf one, %in0, %ninf : f32",
        "%d = arith.subf %in0, %in1 : f32",
        "%e = math.exp %d : f32",
        "%r = arith.select %live, %e, %z : f32",
    ]
    ex = names("exp")
    lines.append(
        generic(
            ex,
            4,
            [(sm, st, ident), (mx, rows_t, dims(0, 1, 2))],
            [(ex0, st, ident)],
            "pppp",
            body,
            ["%r"],
        )
    )
    sum0 = filled(lines, names, rows_t, "0.000000e+00")
    sm_ = names("rowsum")
    lines.append(
        generic(
            sm_,
            4,
            [(ex, st, ident)],
            [(sum0, rows_t, dims(0, 1, 2))],
            "pppr",
            ["%a = arith.addf %out0, %in0 : f32"],
            ["%a"],
        )
    )
    return ex, sm_, rows_t


def _normalized(
    lines: list[str], names: Names, acc: str, acc_t: TT, rowsum: str, rows_t: TT, elem: str
) -> tuple[str, TT]:
    """``acc [b,s,h,d] / rowsum [b,s,h]`` (0 where the row saw no key), cast to `elem`."""
    out_t = acc_t.like(elem=elem)
    body = [
        "%z = arith.constant 0.000000e+00 : f32",
        "%pos = arith.cmpf ogt, %in1, %z : f32",
        "%q = arith.divf %in0, %in1 : f32",
        "%r = arith.select %pos, %q, %z : f32",
    ]
    y = from_f32(body, names, "%r", elem)
    out = names("ctx")
    lines.append(
        generic(
            out,
            4,
            [(acc, acc_t, dims(0, 1, 2, 3)), (rowsum, rows_t, dims(0, 1, 2))],
            [(empty(lines, names, out_t), out_t, dims(0, 1, 2, 3))],
            "pppp",
            body,
            [y],
        )
    )
    return out, out_t


def _key_mask_visible(k: Kernel, first_in: int) -> tuple[list[str], list[tuple[str, TT, str]]]:
    """Body lines and-ing ``key_mask[b, t]`` into ``%vis0`` -> ``%vis`` (if the op has one)."""
    if not k.has("key_mask"):
        return ["%vis = arith.andi %vis0, %vis0 : i1"], []
    mt = k.type("key_mask")
    line = f"%vis = arith.andi %vis0, %in{first_in} : i1"
    return [line], [(k.arg("key_mask"), mt, dims(0, 3))]


@lowering("mla.latent_attention")
def latent_attention(k: Kernel) -> list[str]:
    """Absorbed attention over the latent cache ``[B, T, C + dr]``, slots ``t <= pos[b,s]``."""
    names = k.names
    lines: list[str] = []
    q, qt = k.arg("q_latent"), k.type("q_latent")
    qpe, qpet = k.arg("q_pe"), k.type("q_pe")
    cache, ct = logical_cache(lines, names, k, "kv_cache")
    pos, pt = k.arg("positions"), k.type("positions")
    b, t_len, e = ct.shape
    c = int(k.attrs["kv_lora_rank"])
    if k.has("rope_cos"):
        tables = (k.arg("rope_cos"), k.arg("rope_sin"), k.type("rope_cos"))
        qpe = rotate(lines, names, qpe, qpet, pos, pt, k.attrs["rope_layout"], tables=tables)
    lat, latt = extract_slice(lines, names, cache, ct, [0, 0, 0], [b, t_len, c])
    kpe, kpet = extract_slice(lines, names, cache, ct, [0, 0, c], [b, t_len, e - c])
    s1, st = einsum(lines, names, "bshc,btc->bsht", q, qt, lat, latt)
    s2, _ = einsum(lines, names, "bshr,btr->bsht", qpe, qpet, kpe, kpet)
    summed = empty(lines, names, st)
    ident = dims(0, 1, 2, 3)
    total = names("scores")
    lines.append(
        generic(
            total,
            4,
            [(s1, st, ident), (s2, st, ident)],
            [(summed, st, ident)],
            "pppp",
            ["%a = arith.addf %in0, %in1 : f32"],
            ["%a"],
        )
    )
    mask_lines, mask_ins = _key_mask_visible(k, 2)
    visible = [
        f"%tpos = arith.index_cast %i3 : index to {pt.elem}",
        f"%vis0 = arith.cmpi sle, %tpos, %in1 : {pt.elem}",
        *mask_lines,
    ]
    ex, rowsum, rows_t = _softmax_parts(
        lines,
        names,
        total,
        st,
        visible,
        [(pos, pt, dims(0, 1)), *mask_ins],
        float(k.attrs["softmax_scale"]),
    )
    acc, acct = einsum(lines, names, "bsht,btc->bshc", ex, st, lat, latt)
    ctx, ctxt = _normalized(lines, names, acc, acct, rowsum, rows_t, qt.elem)
    lines.append(f"return {ctx} : {ctxt}")
    return lines


@lowering("mla.decoupled_attention")
def decoupled_attention(k: Kernel) -> list[str]:
    """Per-head keys/values with a head-shared rotary key; ``k_pos[t] <= q_pos[s]``."""
    names = k.names
    lines: list[str] = []
    qn, qnt = k.arg("q_nope"), k.type("q_nope")
    qpe, qpet = k.arg("q_pe"), k.type("q_pe")
    kn, knt = k.arg("k_nope"), k.type("k_nope")
    kpe, kpet = k.arg("k_pe"), k.type("k_pe")
    v, vt = k.arg("v"), k.type("v")
    qp, qpt = k.arg("q_positions"), k.type("q_positions")
    kp, kpt = k.arg("k_positions"), k.type("k_positions")
    if k.has("rope_cos"):
        tables = (k.arg("rope_cos"), k.arg("rope_sin"), k.type("rope_cos"))
        layout = k.attrs["rope_layout"]
        qpe = rotate(lines, names, qpe, qpet, qp, qpt, layout, tables=tables)
        kpe = rotate(lines, names, kpe, kpet, kp, kpt, layout, tables=tables)
    s1, st = einsum(lines, names, "bshd,bthd->bsht", qn, qnt, kn, knt)
    s2, _ = einsum(lines, names, "bshr,btr->bsht", qpe, qpet, kpe, kpet)
    summed = empty(lines, names, st)
    ident = dims(0, 1, 2, 3)
    total = names("scores")
    lines.append(
        generic(
            total,
            4,
            [(s1, st, ident), (s2, st, ident)],
            [(summed, st, ident)],
            "pppp",
            ["%a = arith.addf %in0, %in1 : f32"],
            ["%a"],
        )
    )
    mask_lines, mask_ins = _key_mask_visible(k, 3)
    visible = [f"%vis0 = arith.cmpi sle, %in2, %in1 : {qpt.elem}", *mask_lines]
    if kpt.elem != qpt.elem:
        visible = [
            f"%kp64 = arith.extsi %in2 : {kpt.elem} to {qpt.elem}",
            f"%vis0 = arith.cmpi sle, %kp64, %in1 : {qpt.elem}",
            *mask_lines,
        ]
    ex, rowsum, rows_t = _softmax_parts(
        lines,
        names,
        total,
        st,
        visible,
        [(qp, qpt, dims(0, 1)), (kp, kpt, dims(0, 3)), *mask_ins],
        float(k.attrs["softmax_scale"]),
    )
    # d innermost: rows of V are read contiguously (the schedule leaves this form to LLVM)
    acc, acct = einsum(lines, names, "bsht,bthd->bshd", ex, st, v, vt, order="bshtd")
    out, out_t = _normalized(lines, names, acc, acct, rowsum, rows_t, qnt.elem)
    lines.append(f"return {out} : {out_t}")
    return lines


@lowering("mla.cache_update")
def cache_update(k: Kernel) -> list[str]:
    """``cache[b, pos[b,i]] = entries[b,i]`` (k_pe rotated first with tables), in a loop nest
    of ``tensor.insert_slice`` that bufferizes in place; out-of-range positions are skipped.
    Paged: slot ``p`` of row ``b`` is ``pool[block_table[b, p / bs], p % bs]``."""
    names = k.names
    lines: list[str] = []
    cache, ct = k.arg("cache"), k.type("cache")
    ent, et = k.arg("entries"), k.type("entries")
    pos, pt = k.arg("positions"), k.type("positions")
    e = ct.shape[2]
    b, s = et.shape[:2]
    if k.has("rope_cos"):
        tt = k.type("rope_cos")
        dr = 2 * tt.shape[1]
        pe, pet = extract_slice(lines, names, ent, et, [0, 0, e - dr], [b, s, dr])
        tables = (k.arg("rope_cos"), k.arg("rope_sin"), tt)
        rot = rotate(lines, names, pe, pet, pos, pt, k.attrs["rope_layout"], tables=tables)
        new = names("ent")
        lines.append(
            f"{new} = tensor.insert_slice {rot} into {ent}[0, 0, {e - dr}] "
            f"[{b}, {s}, {dr}] [1, 1, 1] : {pet} into {et}"
        )
        ent = new
    row_t = TT((1, 1, e), ct.elem)
    slot = _slot(k, ct) if k.has("block_table") else _contiguous_slot(ct)
    lines += [
        "%c0 = arith.constant 0 : index",
        "%c1 = arith.constant 1 : index",
        f"%cb = arith.constant {b} : index",
        f"%cs = arith.constant {s} : index",
        f"%res = scf.for %b = %c0 to %cb step %c1 iter_args(%acc0 = {cache}) -> ({ct}) {{",
        f"  %inner = scf.for %i = %c0 to %cs step %c1 iter_args(%acc1 = %acc0) -> ({ct}) {{",
        f"    %p0 = tensor.extract {pos}[%b, %i] : {pt}",
        f"    %p = arith.index_cast %p0 : {pt.elem} to index",
        *[f"    {line}" for line in slot],
        f"    %next = scf.if %ok -> ({ct}) {{",
        f"      %row = tensor.extract_slice {ent}[%b, %i, 0] [1, 1, {e}] [1, 1, 1] "
        f": {et} to {row_t}",
        f"      %upd = tensor.insert_slice %row into %acc1[%dst0, %dst1, 0] [1, 1, {e}] "
        f"[1, 1, 1] : {row_t} into {ct}",
        f"      scf.yield %upd : {ct}",
        "    } else {",
        f"      scf.yield %acc1 : {ct}",
        "    }",
        f"    scf.yield %next : {ct}",
        "  }",
        f"  scf.yield %inner : {ct}",
        "}",
        f"return %res : {ct}",
    ]
    return lines


def _in_range(value: str, bound: int, ok: str) -> list[str]:
    """Body lines setting i1 `ok` to ``0 <= value < bound`` (index values)."""
    return [
        f"{ok}_ge = arith.cmpi sge, {value}, %c0 : index",
        f"{ok}_bound = arith.constant {bound} : index",
        f"{ok}_lt = arith.cmpi slt, {value}, {ok}_bound : index",
        f"{ok} = arith.andi {ok}_ge, {ok}_lt : i1",
    ]


def _contiguous_slot(ct: TT) -> list[str]:
    """Destination ``(%dst0, %dst1) = (%b, %p)`` of logical slot ``%p``, valid iff ``%ok``."""
    return [
        *_in_range("%p", ct.shape[1], "%ok"),
        "%dst0 = arith.addi %b, %c0 : index",
        "%dst1 = arith.addi %p, %c0 : index",
    ]


def _slot(k: Kernel, ct: TT) -> list[str]:
    """Destination ``(%dst0, %dst1) = (block_table[%b, %p / bs], %p % bs)`` of slot ``%p`` in
    a paged pool, valid iff ``%ok`` (slot inside the table, block id inside the pool)."""
    table, tt = k.arg("block_table"), k.type("block_table")
    pool, bs = ct.shape[:2]
    m = tt.shape[1]
    return [
        *_in_range("%p", m * bs, "%okp"),
        f"%bs = arith.constant {bs} : index",
        f"%mlast = arith.constant {m - 1} : index",
        "%blk0 = arith.divui %p, %bs : index",
        "%blk1 = arith.maxsi %blk0, %c0 : index",
        "%blk = arith.minsi %blk1, %mlast : index",
        "%dst1 = arith.remui %p, %bs : index",
        f"%id0 = tensor.extract {table}[%b, %blk] : {tt}",
        f"%dst0 = arith.index_cast %id0 : {tt.elem} to index",
        *_in_range("%dst0", pool, "%okb"),
        "%ok = arith.andi %okp, %okb : i1",
    ]


@lowering("mla.cache_gather")
def cache_gather(k: Kernel) -> list[str]:
    """``out[b, j] = pool[block_table[b, j / bs], j % bs]``: a paged cache made contiguous."""
    lines: list[str] = []
    out, out_t = logical_cache(lines, k.names, k, "cache")
    lines.append(f"return {out} : {out_t}")
    return lines
