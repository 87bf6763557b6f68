"""MTP speculative decoding (runtime/generate.py, ``speculative="mtp"``) on mlacc's
``deepseek-v3-tiny``: the draft entry points run its MTP layer, ``verify`` the main model over
``[last token, draft]``; the tokens are exactly those of plain greedy decoding, on every layout
and target; the trained model's drafts are mostly accepted, and `sim` reports the speedup.

The model is `trained_models.trained_reference_v3_mtp` (a few seconds of training on the
synthetic Markov language), so that drafts are both accepted (most of the time) and rejected:
both paths of every step run."""

from __future__ import annotations

import pytest
import torch
from trained_models import held_out, trained_reference_v3_mtp

import mlacc
from mlacc.frontend.models import DeepSeekModel, get_config
from mlacc.runtime.errors import InputError
from mlacc.runtime.generate import Runner
from mlacc.runtime.kv_cache import cache_bytes
from mlacc.runtime.sim.report import format_table

BATCH, CHUNK, CACHE = 3, 8, 48
VOCAB = 512
LENGTHS = [5, 13, 2]  # a ragged batch: two prompts shorter than a chunk, one of two chunks
BUDGETS = [20, 14, 23]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's ops are too small for intra-op threads; on loaded cores (pytest -n 2)
    they only make every op wait on a descheduled thread (see trained_models.train_briefly)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return trained_reference_v3_mtp()


def _compile(model, target: str, block_size: int | None) -> mlacc.runtime.Executable:
    example = torch.zeros(BATCH, CHUNK, dtype=torch.int64)
    art = mlacc.compile(
        model, (example,), target=target, cache_len=CACHE, cache_block_size=block_size
    )
    return art.load()


@pytest.fixture(scope="module")
def contiguous(model):
    return _compile(model, "reference", None)


@pytest.fixture(scope="module")
def paged(model):
    return _compile(model, "reference", 8)


@pytest.fixture(scope="module")
def sim(model):
    return _compile(model, "sim", None)


def _batch(lengths: list[int], seed: int = 999) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out prompts of the model's language, left-padded into ``(ids, attention_mask)``."""
    text = held_out(VOCAB, n=len(lengths), length=max(lengths), seed=seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, width - n :], mask[row, width - n :] = text[row, :n], 1
    return ids, mask


def _check_stats(stats, sequences: int) -> None:
    """Acceptance bookkeeping: one draft per sequence per verify step; a step yields the
    main model's token plus the draft when accepted (a bonus cut by a stop token or a budget
    at most once per sequence)."""
    assert stats.decode_calls == 0 and stats.verify_calls > 0 and stats.draft_calls > 0
    assert 0 <= stats.accepted <= stats.drafted == stats.sequence_steps
    cut = stats.sequence_steps + stats.accepted - stats.step_tokens
    assert 0 <= cut <= sequences
    assert stats.acceptance_rate == stats.accepted / stats.drafted
    assert stats.tokens_per_target_call == pytest.approx(
        1 + stats.acceptance_rate, abs=cut / stats.sequence_steps + 1e-12
    )


@pytest.fixture(scope="module")
def greedy(contiguous) -> torch.Tensor:
    """Plain greedy generate of the ragged batch (the tokens every speculative run must give)."""
    ids, mask = _batch(LENGTHS)
    out = contiguous.generate(ids, BUDGETS, attention_mask=mask, pad_token_id=-1)
    assert contiguous.last_generation.tokens_per_target_call == 1.0
    return out


def _cut(greedy: torch.Tensor, budgets: list[int], stop: int | None = None) -> torch.Tensor:
    """What plain greedy generate returns with other budgets or a stop token (its continuation
    of every row is `greedy`'s, cut; the output is as wide as the longest continuation)."""
    width = greedy.shape[1] - max(BUDGETS)
    rows = []
    for row, budget in enumerate(budgets):
        tokens = greedy[row, width : width + budget].tolist()
        if stop in tokens:
            tokens = tokens[: tokens.index(stop) + 1]
        rows.append(tokens)
    out = torch.full((len(budgets), width + max(map(len, rows))), -1, dtype=greedy.dtype)
    for row, tokens in enumerate(rows):
        out[row, :width] = greedy[row, :width]
        out[row, width : width + len(tokens)] = torch.tensor(tokens, dtype=greedy.dtype)
    return out


@pytest.mark.parametrize("layout", ["contiguous", "paged"])
def test_speculative_generate_is_plain_greedy_generate(layout, request, greedy) -> None:
    """A ragged left-padded batch, contiguous and paged caches: token for token the tokens of
    plain greedy decoding. The trained model's drafts are mostly accepted (measured: 0.88 of
    them, 1.88 tokens per target call; DeepSeek reports 85-90% for V3's second token)."""
    exe = request.getfixturevalue(layout)
    ids, mask = _batch(LENGTHS)
    cache = exe.new_cache()
    buffers = cache.inputs()
    out = exe.generate(
        ids, BUDGETS, attention_mask=mask, pad_token_id=-1, speculative="mtp", cache=cache
    )
    assert torch.equal(out, greedy)
    stats = exe.last_generation
    _check_stats(stats, len(LENGTHS))
    assert 0 < stats.accepted < stats.drafted  # both paths ran
    assert stats.acceptance_rate > 0.6 and stats.tokens_per_target_call > 1.6
    # the caches (the MTP layer's included) were updated in place; paged blocks all freed
    assert all(a is b for a, b in zip(cache.inputs(), buffers))
    assert len(cache.mtp) == 1 and cache.mtp[0].abs().sum() > 0
    if layout == "paged":
        assert cache.free_blocks == exe.manifest["kv_cache"]["blocks"] - 1


def test_stop_tokens_and_budgets(contiguous, greedy) -> None:
    ids, mask = _batch(LENGTHS)
    width = ids.shape[1]
    # a stop token from the middle of row 0's continuation ends every row where it comes
    stop = int(greedy[0, width + 6])
    out = contiguous.generate(
        ids, BUDGETS, attention_mask=mask, stop_tokens=[stop], pad_token_id=-1, speculative="mtp"
    )
    assert torch.equal(out, _cut(greedy, BUDGETS, stop))
    # budgets 0..5 (a bonus token past its budget is cut), one sequence alone
    for budgets in ([0, 3, 5], [1, 2, 4]):
        out = contiguous.generate(
            ids, budgets, attention_mask=mask, pad_token_id=-1, speculative="mtp"
        )
        assert torch.equal(out, _cut(greedy, budgets)), budgets
    out = contiguous.generate(ids[1:2], 9, attention_mask=mask[1:2], speculative="mtp")
    assert torch.equal(out, _cut(greedy, [0, 9])[1:2].clamp(min=0))


def test_sim_reports_the_simulated_speedup(sim, greedy) -> None:
    ids, mask = _batch(LENGTHS)
    budgets = [8, 8, 8]
    out = sim.generate(ids, budgets, attention_mask=mask, pad_token_id=-1, speculative="mtp")
    assert torch.equal(out, _cut(greedy, budgets))
    stats = sim.last_generation
    _check_stats(stats, len(LENGTHS))
    assert stats.simulated_speedup > 1.0
    assert stats.simulated_seconds_per_token < stats.simulated_plain_seconds / stats.plain_steps
    report = sim.report()
    assert report.speculation["speedup"] == stats.simulated_speedup
    assert "x speedup" in format_table(report)
    # the plain decode steps it is compared with are timed like the decode calls of a plain
    # run at the same context (with the routing of the latest call)
    runner = Runner(sim, sim.new_cache())
    runner.prefill([ids[1, -LENGTHS[1] :]])
    runner.decode([7])
    decode = sim.report().calls[-1]
    assert decode.entry == "decode"
    assert sim.executor.estimate_cycles("decode", LENGTHS[1] + 1) == decode.cycles


def test_speculative_needs_an_mtp_model_and_greedy_decoding(contiguous) -> None:
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(InputError, match="greedily"):
        contiguous.generate(ids, 4, temperature=0.7, speculative="mtp")
    with pytest.raises(InputError, match="speculative must be"):
        contiguous.generate(ids, 4, speculative="medusa")
    plain = DeepSeekModel(get_config("deepseek-v3-tiny").replace(n_layers=1, n_mtp_layers=0))
    exe = mlacc.compile(
        plain, (torch.zeros(1, 4, dtype=torch.int64),), target="reference", cache_len=16
    ).load()
    assert set(exe.entry_points) == {"forward", "prefill", "decode"}
    assert "mtp" not in exe.manifest["kv_cache"]
    with pytest.raises(InputError, match="multi-token-prediction layer"):
        exe.generate(ids, 4, speculative="mtp")


def test_verify_and_draft_compute_the_eager_model(model, contiguous) -> None:
    """`verify` is the main model over two tokens (logits and final hidden states); the MTP
    entry points compute `forward_mtp` over (t_{i+1}, h_i) pairs, through their own cache."""
    tokens = held_out(VOCAB, n=BATCH, length=12, seed=5)
    with torch.no_grad():
        hidden = model.hidden_states(tokens)
        want = model.head(hidden)
        drafts = model.forward_mtp(tokens[:, 1:], hidden[:, :-1])
    runner = Runner(contiguous, contiguous.new_cache())
    runner.prefill(list(tokens[:, :10]), keep_hidden=True)
    torch.testing.assert_close(torch.stack(runner.prompt_hidden), hidden[:, :10])
    logits, states = runner.verify([(int(a), int(b)) for a, b in tokens[:, 10:12]])
    torch.testing.assert_close(logits, want[:, 10:12], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(states, hidden[:, 10:12], rtol=1e-4, atol=1e-4)
    got = runner.draft_prefill([(0, tokens[b, 1:11], hidden[b, :10]) for b in range(BATCH)])
    torch.testing.assert_close(got, drafts[:, 9], rtol=1e-4, atol=1e-4)
    got = runner.draft([(10, tokens[b, 11:12], hidden[b, 10:11]) for b in range(BATCH)])
    torch.testing.assert_close(got, drafts[:, 10], rtol=1e-4, atol=1e-4)


def test_mtp_cache_is_allocated_and_reported(contiguous, paged) -> None:
    for exe in (contiguous, paged):
        spec = exe.manifest["kv_cache"]
        assert spec["mtp"] == {"hidden": True, "dim": 64, "layers": 1, "width": 2}
        cache = exe.new_cache()
        assert len(cache.layers) == 3 and len(cache.mtp) == 1
        assert cache.nbytes == cache_bytes(spec) == exe.manifest["memory"]["cache_bytes"]
        assert exe.manifest["memory"]["mtp_layers"] == 1
        draft = exe.entry_points["draft"]
        assert [i["name"] for i in draft["inputs"]][:3] == ["tokens", "hidden", "positions"]
        assert draft["outputs"][0]["shape"] == [BATCH, 2, VOCAB]
        assert exe.entry_points["prefill"]["outputs"][1]["shape"] == [BATCH, CHUNK, 64]
