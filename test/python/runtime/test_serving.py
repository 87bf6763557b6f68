"""The serving contract (docs/execution-contract.md) on the `reference` target: any batch up to
the compiled maximum, any prompt up to the cache (chunked prefill), ragged batches, padding
masks, a runtime-owned cache updated in place, contiguous and paged layouts, sampling."""

from __future__ import annotations

import pytest
import torch
from hf_models import hf_v2, hf_v3, tokens

import mlacc
from mlacc.model_input import builtin_model
from mlacc.runtime.errors import InputError
from mlacc.runtime.generate import Runner
from mlacc.runtime.kv_cache import KVCache, cache_bytes

BATCH, CHUNK, CACHE = 3, 8, 40


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return builtin_model("deepseek-v3-tiny")


def _compile(model: torch.nn.Module, block_size: int | None) -> mlacc.runtime.Executable:
    example = torch.zeros(BATCH, CHUNK, dtype=torch.int64)
    art = mlacc.compile(
        model, (example,), target="reference", cache_len=CACHE, cache_block_size=block_size
    )
    return art.load()


@pytest.fixture(scope="module")
def contiguous(model):
    return _compile(model, None)


@pytest.fixture(scope="module")
def paged(model):
    return _compile(model, 8)


def _greedy(model: torch.nn.Module, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """Eager greedy continuation of one prompt (full recompute every step)."""
    ids = prompt[None]
    with torch.no_grad():
        for _ in range(steps):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids[0, len(prompt) :]


def _prompts(lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 500, (n,), generator=gen) for n in lengths]


def _left_padded(prompts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.zeros(len(prompts), width, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :], mask[row, width - len(p) :] = p, 1
    return ids, mask


def test_every_prompt_length_up_to_the_cache(model, contiguous) -> None:
    """One artifact (8-token prefill chunks) continues prompts of 1..cache_len-1 tokens exactly
    like eager greedy decoding; long prompts prefill in chunks, never token by token."""
    for n in range(1, CACHE):
        (prompt,) = _prompts([n], seed=n)
        out = contiguous.generate(prompt[None], 1)
        assert out[0, n] == _greedy(model, prompt, 1)[0], f"prompt of {n} tokens"
        stats = contiguous.last_generation
        assert stats.prefill_calls == -(-n // CHUNK) and stats.decode_calls == 0


@pytest.mark.parametrize("layout", ["contiguous", "paged"])
def test_ragged_batches_generate_what_each_prompt_generates_alone(model, layout, request) -> None:
    exe = request.getfixturevalue(layout)
    prompts = _prompts([5, 13, 2])
    alone = [_greedy(model, p, 6) for p in prompts]
    for batch in range(1, BATCH + 1):
        ids, mask = _left_padded(prompts[:batch])
        out = exe.generate(ids, 6, attention_mask=mask)
        for row in range(batch):
            assert torch.equal(out[row, ids.shape[1] :], alone[row]), (batch, row)


def test_paged_and_contiguous_caches_agree(contiguous, paged) -> None:
    prompts = _prompts([17, 3, 9], seed=3)
    ids, mask = _left_padded(prompts)
    assert torch.equal(
        contiguous.generate(ids, 10, attention_mask=mask),
        paged.generate(ids, 10, attention_mask=mask),
    )
    # the logits of a chunked prefill + decode steps agree too (same math, other addressing)
    runs = []
    for exe in (contiguous, paged):
        runner = Runner(exe, exe.new_cache())
        first = runner.prefill(prompts)
        runs.append(torch.cat([first, runner.decode([1, 2, 3])]))
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-6, atol=1e-6)


def test_decode_updates_the_runtime_cache_in_place(contiguous) -> None:
    """Fails if a step copies the cache: the buffers handed in come back, written."""
    cache = contiguous.new_cache()
    buffers = list(cache.layers)
    runner = Runner(contiguous, cache)
    runner.prefill(_prompts([4]))
    runner.decode([7])
    assert all(a is b for a, b in zip(cache.layers, buffers))
    assert all(bool(layer[0, :5].abs().sum(-1).gt(0).all()) for layer in buffers)
    # the switch that makes executors copy (for benchmarks) shows the test can fail
    contiguous.in_place_cache = False
    try:
        runner.decode([8])
        assert not any(a is b for a, b in zip(cache.layers, buffers))
    finally:
        contiguous.in_place_cache = True


def test_paged_blocks_grow_with_the_sequence_and_are_freed_when_it_ends(paged) -> None:
    cache = paged.new_cache()
    spec = paged.manifest["kv_cache"]
    assert cache.free_blocks == spec["blocks"] - 1  # block 0 is scratch
    runner = Runner(paged, cache)
    runner.prefill(_prompts([10, 3]))
    assert cache.free_blocks == spec["blocks"] - 1 - 2 - 1  # 10 tokens: 2 blocks; 3: 1
    assert cache.block_table[2].eq(0).all()  # the unused row points at scratch
    for _ in range(6):
        runner.decode([1, 1])
    assert cache.free_blocks == spec["blocks"] - 1 - 2 - 2  # 16 tokens, then 9 tokens
    cache.release(0)
    assert cache.free_blocks == spec["blocks"] - 1 - 2 and cache.block_table[0].eq(0).all()
    paged.generate(torch.tensor([[5, 6, 7]]), 4, cache=cache)
    assert cache.free_blocks == spec["blocks"] - 1


@pytest.mark.parametrize("layout", ["contiguous", "paged"])
def test_reported_cache_bytes_match_the_allocation(layout, request) -> None:
    exe = request.getfixturevalue(layout)
    cache = exe.new_cache()
    allocated = sum(t.numel() * t.element_size() for t in cache.inputs())
    spec = exe.manifest["kv_cache"]
    assert cache.nbytes == allocated == cache_bytes(spec)
    assert exe.manifest["memory"]["cache_bytes"] == allocated


def test_forward_serves_smaller_batches_and_shorter_sequences(model, contiguous) -> None:
    ids = torch.randint(0, 500, (2, 5))
    torch.testing.assert_close(contiguous(ids), model(ids), rtol=1e-4, atol=1e-5)


def test_sampling_controls(contiguous) -> None:
    ids = torch.tensor([[3, 4, 5], [6, 7, 8]])
    greedy = contiguous.generate(ids, 5)
    assert torch.equal(contiguous.generate(ids, 5, temperature=0.7, top_k=1, seed=1), greedy)
    assert torch.equal(contiguous.generate(ids, 5, temperature=0.7, top_p=1e-6, seed=1), greedy)
    a = contiguous.generate(ids, 5, temperature=1.5, top_p=0.9, seed=11)
    b = contiguous.generate(ids, 5, temperature=1.5, top_p=0.9, seed=11)
    assert torch.equal(a, b)
    # stop tokens end a row (kept, then padding); per-row budgets
    stop = int(greedy[0, 4])
    out = contiguous.generate(ids, 5, stop_tokens=[stop], pad_token_id=-1)
    assert out[0, 4] == stop and out[0, 5:].eq(-1).all()
    out = contiguous.generate(ids, [2, 5], pad_token_id=-1)
    assert torch.equal(out[0, 3:5], greedy[0, 3:5]) and out[0, 5:].eq(-1).all()
    assert torch.equal(out[1], greedy[1])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda e: e.generate(torch.zeros(1, CACHE, dtype=torch.int64), 1),
            "exceed the compiled KV",
        ),
        (lambda e: e.generate(torch.zeros(BATCH + 1, 4, dtype=torch.int64), 1), "maximum batch 3"),
        (
            lambda e: e.generate(
                torch.ones(2, 4, dtype=torch.int64), 1, attention_mask=torch.ones(2, 3)
            ),
            "shaped like ids",
        ),
        (
            lambda e: e.generate(
                torch.ones(1, 4, dtype=torch.int64), 1, attention_mask=torch.ones(1, 4)
            ),
            "bool or integer",
        ),
        (
            lambda e: e.generate(
                torch.ones(1, 4, dtype=torch.int64), 1, attention_mask=torch.tensor([[1, 0, 1, 1]])
            ),
            "between real tokens",
        ),
        (
            lambda e: e.generate(
                torch.ones(1, 4, dtype=torch.int64), 1, attention_mask=torch.tensor([[2, 1, 1, 1]])
            ),
            "only 0 and 1",
        ),
        (lambda e: e.generate(torch.ones(1, 4), 1), "integer token ids"),
        (lambda e: e.generate(torch.ones(1, 0, dtype=torch.int64), 1), "at least one token"),
        (lambda e: e.generate(torch.ones(1, CACHE, dtype=torch.int64), 0), "prompts of 1 to 39"),
        (lambda e: e.generate(torch.ones(1, 4, dtype=torch.int64), 2.0), "max_new_tokens"),
        (
            lambda e: e.generate(torch.ones(1, 4, dtype=torch.int64), 2, stop_tokens=5),
            "stop_tokens",
        ),
        (
            lambda e: e.generate(
                torch.ones(1, 4, dtype=torch.int64), 1, top_p=0.0, temperature=1.0
            ),
            "top_p",
        ),
        (lambda e: e(torch.zeros(1, CHUNK + 1, dtype=torch.int64)), "compiled for"),
        (lambda e: e(torch.zeros(BATCH + 1, 2, dtype=torch.int64)), "maximum batch"),
    ],
)
def test_bad_requests_are_one_clear_error(contiguous, call, message) -> None:
    with pytest.raises(InputError, match=message):
        call(contiguous)


@pytest.fixture(scope="module", params=["v3", "v2"])
def hf_masked(request):
    model = (hf_v3 if request.param == "v3" else hf_v2)()
    ids = tokens(3, 10)
    mask = torch.ones(3, 10, dtype=torch.int64)
    art = mlacc.compile(model, (ids,), {"attention_mask": mask}, target="reference", cache_len=32)
    return model, art.load()


def test_hf_forward_honors_left_and_right_padding(hf_masked) -> None:
    model, exe = hf_masked
    ids = tokens(3, 10, seed=4)
    mask = torch.ones(3, 10, dtype=torch.int64)
    mask[0, :3] = 0  # left padding
    mask[1, 7:] = 0  # right padding
    for call_ids, call_mask in ((ids, mask), (ids[:2, :6], mask[:2, :6])):
        got = exe(call_ids, attention_mask=call_mask).logits
        with torch.no_grad():
            want = model(call_ids, attention_mask=call_mask).logits
        real = call_mask.bool()
        torch.testing.assert_close(got[real], want[real], rtol=1e-4, atol=1e-4)


def test_hf_ragged_generate_matches_hf_generate(hf_masked) -> None:
    model, exe = hf_masked
    ids = tokens(3, 10, seed=5)
    left = torch.ones(3, 10, dtype=torch.int64)
    left[0, :3], left[1, :6] = 0, 0
    with torch.no_grad():
        want = model.generate(
            ids, attention_mask=left, max_new_tokens=6, do_sample=False, pad_token_id=0
        )
    assert torch.equal(exe.generate(ids, 6, attention_mask=left), want)
    # the same prompts right-padded generate the same tokens
    right_ids, right = torch.zeros_like(ids), torch.zeros_like(left)
    for row in range(3):
        real = ids[row][left[row].bool()]
        right_ids[row, : len(real)], right[row, : len(real)] = real, 1
    assert torch.equal(exe.generate(right_ids, 6, attention_mask=right)[:, 10:], want[:, 10:])


def test_kv_cache_rejects_a_sequence_longer_than_the_cache(contiguous) -> None:
    cache = KVCache(contiguous.manifest["kv_cache"])
    with pytest.raises(InputError, match="more than the compiled cache length"):
        cache.reserve(0, CACHE + 1)


def _edited_plan_loads(exe: mlacc.runtime.Executable, edit) -> None:
    """Loads the artifact of `exe` with its decode plan changed by `edit(function_json)`."""
    import json

    from mlacc.runtime.artifact import Artifact

    art = exe.artifact
    plan = json.loads(art.payload["plan.json"])
    edit(plan["functions"]["decode"])
    payload = {**art.payload, "plan.json": json.dumps(plan).encode()}
    Artifact(manifest=art.manifest, mlir=art.mlir, weights=art.weights, payload=payload).load()


def _in_place_step(fn: dict) -> dict:
    return next(s for s in fn["steps"] if s.get("in_place"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda fn: fn.update(donated={}), "not a donated input"),
        (lambda fn: fn["donated"].update({"0": 0}), "no in-place step updates"),
        (lambda fn: fn.update(donated={"2": 1, "3": 1}), "same output"),
        (lambda fn: _in_place_step(fn).update(in_place="no"), "non-boolean in_place"),
        (lambda fn: fn["steps"][0].update(in_place=True), "in place"),
    ],
)
def test_plans_that_would_write_into_callers_tensors_are_rejected(contiguous, edit, message):
    from mlacc.runtime.errors import ArtifactError

    with pytest.raises(ArtifactError, match=message):
        _edited_plan_loads(contiguous, edit)


def test_block_ids_outside_the_pool_are_an_error(paged) -> None:
    from mlacc.runtime.errors import MlaccError

    cache = paged.new_cache()
    table = cache.block_table.clone()
    table[1, 0] = -1  # would wrap to the pool's last block
    tokens = torch.zeros(BATCH, 1, dtype=torch.int64)
    with pytest.raises(MlaccError, match="block_table holds block ids in \\[-1"):
        paged.run("decode", tokens, tokens.clone(), table, *cache.layers)


def test_forward_pads_positions_given_positionally(model) -> None:
    """Padding follows each input's role, whatever its name: positions passed positionally
    continue past the row's last one (else a real query would see the padding)."""
    ids = torch.randint(0, 500, (2, 8))
    pos = torch.arange(8).expand(2, 8).contiguous()
    exe = mlacc.compile(model, (ids, pos), target="reference", cache_len=16).load()
    assert exe.entry_points["forward"]["roles"] == ["tokens", "positions"]
    with torch.no_grad():
        want = model(ids[:, :5], pos[:, :5] + 3)
    torch.testing.assert_close(exe(ids[:, :5], pos[:, :5] + 3), want, rtol=1e-4, atol=1e-5)


def test_one_buffer_passed_as_two_donated_caches_is_an_error(contiguous) -> None:
    cache = contiguous.new_cache()
    shared = [cache.layers[0]] * len(cache.layers)
    tokens = torch.zeros(BATCH, 1, dtype=torch.int64)
    with pytest.raises(InputError, match="share memory"):
        contiguous.run("decode", tokens, tokens.clone(), *shared)


def test_rows_that_generate_nothing_give_their_blocks_back(paged) -> None:
    cache = paged.new_cache()
    free = cache.free_blocks
    paged.generate(torch.tensor([[1, 2, 3], [4, 5, 6]]), [0, 2], cache=cache)
    assert cache.free_blocks == free and cache.lengths[:2] == [0, 0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("layers"), "'layers'"),
        (lambda s: s.update(blocks=1), "cannot hold one sequence"),
        (lambda s: s.update(layout="ring"), "unknown layout"),
        (lambda s: s.update(shape=[1, 2, 3]), "has shape"),
    ],
)
def test_damaged_cache_specs_are_artifact_errors(paged, change, message) -> None:
    import copy

    from mlacc.runtime.errors import ArtifactError
    from mlacc.runtime.validate import check_cache_spec

    spec = copy.deepcopy(paged.manifest["kv_cache"])
    check_cache_spec(spec)
    change(spec)
    with pytest.raises(ArtifactError, match=message):
        check_cache_spec(spec)
