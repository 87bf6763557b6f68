"""The `triton` target's plan fusions on hand-written plans: what they fuse, the attributes the
fused step carries, and the uses that keep them from fusing (the end-to-end numerics are
`test_triton_target.py`'s, on real model structures)."""

from __future__ import annotations

from mlacc.backends.triton.fusion import ValueInfo, fuse_function
from mlacc.runtime.plan import Function, Step, TensorSpec, lit, lst, ref

F32, I64 = "torch.float32", "torch.int64"
END = 2**63 - 1  # what torch writes for `x[..., a:]`


def _function(steps: list[Step], outputs: list[int], inputs: list[int]) -> Function:
    return Function(
        "decode",
        inputs,
        [TensorSpec([1], F32)] * len(inputs),
        steps,
        [ref(v) for v in outputs],
        [None] * len(outputs),
    )


# --------------------------------------------------------------------------------------------
# triton.norm_cache_update: rms_norm(kv[..., :C]) ++ kv[..., C:] -> mla.cache_update

# values: 0 cache [1,32,40], 1 kv [1,4,40], 2 kv_norm weight [32], 3 positions [1,4],
# 4/5 cos/sin [32,4]; 10 latent, 11 normed, 12 k_pe, 13 entries, 14 new cache
KV_INFO = {
    0: ValueInfo((1, 32, 40), F32),
    1: ValueInfo((1, 4, 40), F32),
    2: ValueInfo((32,), F32),
    3: ValueInfo((1, 4), I64),
    4: ValueInfo((32, 4), F32),
    5: ValueInfo((32, 4), F32),
    10: ValueInfo((1, 4, 32), F32),
    11: ValueInfo((1, 4, 32), F32),
    12: ValueInfo((1, 4, 8), F32),
    13: ValueInfo((1, 4, 40), F32),
    14: ValueInfo((1, 32, 40), F32),
}


def _kv_steps(pe_start: int = 32) -> list[Step]:
    return [
        Step("torch.aten.slice.Tensor", [ref(1), lit(2), lit(0), lit(32), lit(1)], [10]),
        Step("mla.rms_norm", [ref(10), ref(2)], [11], {"eps": 1e-6}),
        Step("torch.aten.slice.Tensor", [ref(1), lit(-1), lit(pe_start), lit(END), lit(1)], [12]),
        Step("torch.aten.cat", [lst([ref(11), ref(12)]), lit(2)], [13]),
        Step(
            "mla.cache_update",
            [ref(0), ref(13), ref(3), ref(4), ref(5), lit(None)],
            [14],
            {"rope_layout": "interleaved"},
            in_place=True,
        ),
    ]


def test_kv_norm_fuses_into_the_cache_write() -> None:
    fn = _function(_kv_steps(), [14], [0, 1, 2, 3, 4, 5])
    assert fuse_function(fn, dict(KV_INFO)) == {"triton.norm_cache_update": 1}
    (step,) = fn.steps  # the slices, norm and cat are gone
    assert step.op == "triton.norm_cache_update" and step.in_place
    assert step.args == [ref(0), ref(1), ref(2), ref(3), ref(4), ref(5), lit(None)]
    assert step.results == [14]
    assert step.attrs == {"eps": 1e-6, "rope_layout": "interleaved"}


def test_kv_norm_stays_where_the_latent_is_read_or_the_split_differs() -> None:
    read = [*_kv_steps(), Step("mla.kv_expand", [ref(11), ref(2)], [15, 16])]
    fn = _function(read, [14, 15], [0, 1, 2, 3, 4, 5])
    assert not fuse_function(fn, dict(KV_INFO))
    assert [s.op for s in fn.steps] == [s.op for s in read]
    # the rotary slice does not start where the latent ends
    fn = _function(_kv_steps(pe_start=33), [14], [0, 1, 2, 3, 4, 5])
    assert not fuse_function(fn, dict(KV_INFO))


# --------------------------------------------------------------------------------------------
# triton.router_shared: moe.router -> new_full + cat of the shared experts' columns

# values: 0 x [4,16], 1 gate [8,16]; 10 weights [4,2], 11 ids [4,2], 12/13 id columns,
# 14 weight columns [4,2], 15 ids [4,4], 16 weights [4,4]
ROUTER_INFO = {
    0: ValueInfo((4, 16), F32),
    1: ValueInfo((8, 16), F32),
    10: ValueInfo((4, 2), F32),
    11: ValueInfo((4, 2), I64),
    12: ValueInfo((4, 1), I64),
    13: ValueInfo((4, 1), I64),
    14: ValueInfo((4, 2), F32),
    15: ValueInfo((4, 4), I64),
    16: ValueInfo((4, 4), F32),
}
ROUTER_ATTRS = {
    "score_func": "sigmoid",
    "top_k": 2,
    "n_groups": 1,
    "topk_group": 1,
    "group_score": "max",
    "route_scale": 1.0,
    "norm_topk_prob": True,
}


def _new_full(like: int, columns: int, fill: float, out: int) -> Step:
    args = [ref(like), lst([lit(4), lit(columns)]), lit(fill)] + [lit(None)] * 4
    return Step("torch.aten.new_full", args, [out])


def _router_steps(second_id: int = 9) -> list[Step]:
    return [
        Step("moe.router", [ref(0), ref(1), lit(None)], [10, 11], dict(ROUTER_ATTRS)),
        _new_full(11, 1, 8, 12),
        _new_full(11, 1, second_id, 13),
        Step("torch.aten.cat", [lst([ref(11), ref(12), ref(13)]), lit(1)], [15]),
        _new_full(10, 2, 1.0, 14),
        Step("torch.aten.cat", [lst([ref(10), ref(14)]), lit(-1)], [16]),
    ]


def test_shared_expert_columns_fuse_into_the_router() -> None:
    fn = _function(_router_steps(), [15, 16], [0, 1])
    assert fuse_function(fn, dict(ROUTER_INFO)) == {"triton.router_shared": 1}
    (step,) = fn.steps
    assert step.op == "triton.router_shared" and step.results == [16, 15]
    assert step.attrs == {
        **ROUTER_ATTRS,
        "shared_count": 2,
        "shared_first": 8,
        "shared_weight": 1.0,
    }


def test_router_stays_where_its_result_is_read_or_the_ids_are_not_consecutive() -> None:
    read = [*_router_steps(), Step("torch.aten.sum", [ref(11)], [17])]
    fn = _function(read, [15, 16, 17], [0, 1])
    assert not fuse_function(fn, dict(ROUTER_INFO))
    assert len(fn.steps) == len(read)
    fn = _function(_router_steps(second_id=10), [15, 16], [0, 1])
    assert not fuse_function(fn, dict(ROUTER_INFO))
    # a column another step reads
    read = [*_router_steps(), Step("torch.aten.sum", [ref(14)], [17])]
    fn = _function(read, [15, 16, 17], [0, 1])
    assert not fuse_function(fn, dict(ROUTER_INFO))


# --------------------------------------------------------------------------------------------
# triton.rms_norm_cat: cat on the last dim of rms_norm results (MTP)

# values: 0/1 embedding / hidden [1,4,16], 2/3 weights [16]; 10/11 norms, 12 cat [1,4,32]
NORM_INFO = {
    0: ValueInfo((1, 4, 16), F32),
    1: ValueInfo((1, 4, 16), F32),
    2: ValueInfo((16,), F32),
    3: ValueInfo((16,), F32),
    10: ValueInfo((1, 4, 16), F32),
    11: ValueInfo((1, 4, 16), F32),
    12: ValueInfo((1, 4, 32), F32),
}


def _norm_cat_steps(dim: int = -1) -> list[Step]:
    return [
        Step("mla.rms_norm", [ref(0), ref(2)], [10], {"eps": 1e-6}),
        Step("mla.rms_norm", [ref(1), ref(3)], [11], {"eps": 1e-5}),
        Step("torch.aten.cat", [lst([ref(10), ref(11)]), lit(dim)], [12]),
    ]


def test_norms_write_into_their_cat() -> None:
    fn = _function(_norm_cat_steps(), [12], [0, 1, 2, 3])
    assert fuse_function(fn, dict(NORM_INFO)) == {"triton.rms_norm_cat": 1}
    (step,) = fn.steps
    assert step.op == "triton.rms_norm_cat" and step.results == [12]
    assert step.args == [lst([ref(0), ref(1)]), lst([ref(2), ref(3)])]
    assert step.attrs == {"eps": [1e-6, 1e-5]}


def test_norms_stay_where_read_twice_or_joined_on_another_dim() -> None:
    read = [*_norm_cat_steps(), Step("torch.aten.sum", [ref(10)], [13])]
    fn = _function(read, [12, 13], [0, 1, 2, 3])
    assert not fuse_function(fn, dict(NORM_INFO))
    info = {**NORM_INFO, 12: ValueInfo((1, 8, 16), F32)}
    fn = _function(_norm_cat_steps(dim=1), [12], [0, 1, 2, 3])
    assert not fuse_function(fn, info)
