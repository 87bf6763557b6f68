"""`generate_text` streaming: pieces add up to the text, multi-byte characters are held back
until complete, and the decoding work per token does not grow with the text."""

from __future__ import annotations

from typing import Any

import torch

from mlacc.runtime.text import Tokenizer, generate_text


class _Bytes:
    """A byte-level tokenizer backend (token = byte) that counts the tokens it decodes."""

    def __init__(self) -> None:
        self.decoded = 0

    def encode(self, text: str, add_special_tokens: bool = False) -> Any:
        return type("Encoding", (), {"ids": list(text.encode())})

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        self.decoded += len(ids)
        return bytes(ids).decode(errors="replace")


class _Replay:
    """An executable whose `generate` emits fixed tokens through `on_token`."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens = tokens

    def generate(self, prompt: torch.Tensor, max_new_tokens: int, **kw: Any) -> torch.Tensor:
        for token in self.tokens[:max_new_tokens]:
            kw["on_token"](0, token)
        return torch.cat([prompt, torch.tensor([self.tokens[:max_new_tokens]])], dim=1)


def test_pieces_add_up_and_hold_back_incomplete_characters() -> None:
    text = "MLA caches 576 values — ≈71x fewer; ok"
    tokenizer = Tokenizer(_Bytes())
    pieces: list[str] = []
    out = generate_text(
        _Replay(list(text.encode())), tokenizer, "say:", 10**6, on_text=pieces.append
    )
    assert out.text == text and "".join(pieces) == text
    assert "\ufffd" not in "".join(pieces)
    assert "—" in pieces and "≈" in pieces  # 3-byte characters arrive whole


def test_decoding_work_per_token_is_bounded() -> None:
    backend = _Bytes()
    n = 2000
    generate_text(_Replay([ord("a")] * n), Tokenizer(backend), "x" * 50, n)
    # windows of a few tokens per step, plus one full decode of prompt and text at each end;
    # decoding the whole text per token would be ~n^2 / 2 = 2,000,000
    assert backend.decoded < 20 * n
