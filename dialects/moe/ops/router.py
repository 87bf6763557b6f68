"""`moe.router`."""

from ..._mlir import ext, ir
from ...base import (
    AnyTensor,
    Flag,
    build,
    expect,
    expect_bool,
    expect_float,
    expect_matrix,
    expect_rank,
    expect_vector,
    positive,
)
from ...types import TensorInfo
from ..dialect import MoeOp

SCORE_FUNCS = ("sigmoid", "softmax")
GROUP_SCORES = ("top2_sum", "max")


class RouterOp(MoeOp, name="router"):
    """DeepSeekMoE gate: picks ``top_k`` routed experts per token and their weights.

    ``scores = score_func(x · weight^T)`` (fp32; ``weight`` is ``[E, D]``). Selection uses
    ``scores + bias`` when the correction ``bias`` (V3's aux-loss-free balancing) is given.
    With ``n_groups > 1`` experts form equal groups, ranked by ``group_score`` (V3: sum of the
    group's top-2, V2: max); only the best ``topk_group`` groups stay eligible. The weights are
    the selected unbiased scores, divided by their sum when ``norm_topk_prob``, times
    ``route_scale`` (with 1e-20 added to the sum, as Hugging Face does). Results: ``weights``
    ``[N, top_k]`` fp32 and ``indices`` ``[N, top_k]`` i64, in descending order of selection
    score.
    """

    x: ext.Operand[AnyTensor]
    weight: ext.Operand[AnyTensor]
    score_func: ir.StringAttr
    top_k: ir.IntegerAttr
    n_groups: ir.IntegerAttr
    topk_group: ir.IntegerAttr
    group_score: ir.StringAttr
    route_scale: ir.FloatAttr
    norm_topk_prob: Flag
    weights: ext.Result[AnyTensor]
    indices: ext.Result[AnyTensor]
    bias: ext.Operand[AnyTensor] | None = None

    @staticmethod
    def infer(
        *,
        x: TensorInfo,
        weight: TensorInfo,
        score_func: str,
        top_k: int,
        n_groups: int,
        topk_group: int,
        group_score: str,
        route_scale: float,
        norm_topk_prob: bool,
        bias: TensorInfo | None = None,
    ) -> list[TensorInfo]:
        expect(
            score_func in SCORE_FUNCS,
            f"attribute 'score_func' must be sigmoid or softmax, got '{score_func}'",
        )
        expect(
            group_score in GROUP_SCORES,
            f"attribute 'group_score' must be top2_sum or max, got '{group_score}'",
        )
        expect_bool(norm_topk_prob, "norm_topk_prob")
        positive(top_k, "top_k")
        positive(n_groups, "n_groups")
        positive(topk_group, "topk_group")
        expect(route_scale > 0, f"attribute 'route_scale' must be positive, got {route_scale}")
        expect_float(x, "x")
        expect_rank(x, "x", 2)
        n, d = x.shape
        expect_matrix(weight, "weight", None, d)
        experts = weight.shape[0]
        if bias is not None:
            expect_vector(bias, "bias", experts)
        expect(
            topk_group <= n_groups, f"topk_group ({topk_group}) must be <= n_groups ({n_groups})"
        )
        if experts is not None:
            expect(
                experts % n_groups == 0, f"{experts} experts do not split into {n_groups} groups"
            )
            expect(
                top_k <= experts, f"top_k ({top_k}) must be <= the number of experts ({experts})"
            )
            eligible = experts // n_groups * topk_group
            expect(
                top_k <= eligible,
                f"top_k ({top_k}) exceeds the {eligible} experts in the "
                f"{topk_group} selected group(s)",
            )
            if group_score == "top2_sum" and n_groups > 1:
                expect(
                    experts // n_groups >= 2, "group_score top2_sum needs >= 2 experts per group"
                )
        return [TensorInfo((n, top_k), "float32"), TensorInfo((n, top_k), "int64")]


def router(
    x: ir.Value,
    weight: ir.Value,
    *,
    bias: ir.Value | None = None,
    score_func: str = "sigmoid",
    top_k: int,
    n_groups: int = 1,
    topk_group: int = 1,
    group_score: str = "top2_sum",
    route_scale: float = 1.0,
    norm_topk_prob: bool = True,
    loc: ir.Location | None = None,
) -> tuple[ir.Value, ir.Value]:
    """Builds `moe.router`; returns (weights, indices)."""
    op = build(
        RouterOp,
        x=x,
        weight=weight,
        bias=bias,
        score_func=score_func,
        top_k=top_k,
        n_groups=n_groups,
        topk_group=topk_group,
        group_score=group_score,
        route_scale=route_scale,
        norm_topk_prob=norm_topk_prob,
        loc=loc,
    )
    return op.weights, op.indices
