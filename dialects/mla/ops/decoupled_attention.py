"""`mla.decoupled_attention`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, build, expect, expect_dim, expect_dtype, expect_float, expect_rank
from ...types import INT_DTYPES, TensorInfo
from ..dialect import MlaOp
from ..rope import check_rope_tables


class DecoupledAttentionOp(MlaOp, name="decoupled_attention"):
    """Causal multi-head attention with a decoupled, head-shared rotary key (un-absorbed MLA core).

    ``score[b,h,i,j] = (q_nope[b,i,h]·k_nope[b,j,h] + q_pe[b,i,h]·k_pe[b,j]) * softmax_scale``,
    masked to keys with ``k_positions[b,j] <= q_positions[b,i]``, softmax over ``j`` in fp32,
    ``out[b,i,h] = Σ_j p · v[b,j,h]``. Shapes: q_nope ``[B,S,H,dn]``, q_pe ``[B,S,H,dr]``,
    k_nope ``[B,T,H,dn]``, k_pe ``[B,T,dr]``, v ``[B,T,H,dv]``, out ``[B,S,H,dv]``.

    Fused rotary embedding (`--mla-fuse-rope`): with ``rope_cos``/``rope_sin`` (fp32
    ``[P, dr/2]`` tables from `mla.rope_tables`) and ``rope_layout`` ("interleaved" or
    "rotate_half"), ``q_pe`` and ``k_pe`` are both un-rotated and the op rotates them as it
    loads them, by the tables' rows ``q_positions[b,i]`` and ``k_positions[b,j]``;
    ``rope_layout = "none"`` (the default) takes no tables.
    """

    q_nope: ext.Operand[AnyTensor]
    q_pe: ext.Operand[AnyTensor]
    k_nope: ext.Operand[AnyTensor]
    k_pe: ext.Operand[AnyTensor]
    v: ext.Operand[AnyTensor]
    q_positions: ext.Operand[AnyTensor]
    k_positions: ext.Operand[AnyTensor]
    softmax_scale: ir.FloatAttr
    out: ext.Result[AnyTensor]
    rope_cos: ext.Operand[AnyTensor] | None = None
    rope_sin: ext.Operand[AnyTensor] | None = None
    rope_layout: ir.StringAttr = ext.attribute(default_factory=lambda: ir.StringAttr.get("none"))

    @staticmethod
    def infer(
        *,
        q_nope: TensorInfo,
        q_pe: TensorInfo,
        k_nope: TensorInfo,
        k_pe: TensorInfo,
        v: TensorInfo,
        q_positions: TensorInfo,
        k_positions: TensorInfo,
        softmax_scale: float,
        rope_cos: TensorInfo | None = None,
        rope_sin: TensorInfo | None = None,
        rope_layout: str = "none",
    ) -> list[TensorInfo]:
        expect(
            softmax_scale > 0, f"attribute 'softmax_scale' must be positive, got {softmax_scale}"
        )
        for name, t, rank in (
            ("q_nope", q_nope, 4),
            ("q_pe", q_pe, 4),
            ("k_nope", k_nope, 4),
            ("k_pe", k_pe, 3),
            ("v", v, 4),
        ):
            expect_float(t, name)
            expect_rank(t, name, rank)
        b, s, h, dn = q_nope.shape
        t_len = k_nope.shape[1]
        expect_dim(q_pe.shape[0], b, "q_pe batch size")
        expect_dim(q_pe.shape[1], s, "q_pe sequence length")
        expect_dim(q_pe.shape[2], h, "q_pe heads")
        dr = q_pe.shape[3]
        expect_dim(k_nope.shape[0], b, "k_nope batch size")
        expect_dim(k_nope.shape[2], h, "k_nope heads")
        expect_dim(k_nope.shape[3], dn, "k_nope head dim")
        expect_dim(k_pe.shape[0], b, "k_pe batch size")
        expect_dim(k_pe.shape[1], t_len, "k_pe length")
        expect_dim(k_pe.shape[2], dr, "k_pe rope dim")
        expect_dim(v.shape[0], b, "v batch size")
        expect_dim(v.shape[1], t_len, "v length")
        expect_dim(v.shape[2], h, "v heads")
        for name, pos, length in (
            ("q_positions", q_positions, s),
            ("k_positions", k_positions, t_len),
        ):
            expect_rank(pos, name, 2)
            expect_dtype(pos, name, INT_DTYPES)
            expect_dim(pos.shape[0], b, f"{name} batch size")
            expect_dim(pos.shape[1], length, f"{name} length")
        check_rope_tables(rope_cos, rope_sin, rope_layout, dr)
        return [TensorInfo((b, s, h, v.shape[3]), q_nope.dtype)]


def decoupled_attention(
    q_nope: ir.Value,
    q_pe: ir.Value,
    k_nope: ir.Value,
    k_pe: ir.Value,
    v: ir.Value,
    q_positions: ir.Value,
    k_positions: ir.Value,
    *,
    softmax_scale: float,
    rope_cos: ir.Value | None = None,
    rope_sin: ir.Value | None = None,
    rope_layout: str = "none",
    loc: ir.Location | None = None,
) -> ir.Value:
    """Builds `mla.decoupled_attention`."""
    return build(
        DecoupledAttentionOp,
        q_nope=q_nope,
        q_pe=q_pe,
        k_nope=k_nope,
        k_pe=k_pe,
        v=v,
        q_positions=q_positions,
        k_positions=k_positions,
        softmax_scale=softmax_scale,
        rope_cos=rope_cos,
        rope_sin=rope_sin,
        rope_layout=rope_layout,
        loc=loc,
    ).result
