"""Text in, text out: a local tokenizer folder around `Executable.generate`.

A tokenizer folder is what ``save_pretrained`` writes (``tokenizer.json``, and
``tokenizer_config.json`` naming the special tokens); it is read with the `tokenizers` library
alone (no network, no transformers). `generate_text` streams the text as tokens are confirmed:
a piece is what the newest tokens add to the decoded text (decoded with a few tokens before
them for context), so pieces of a multi-byte character are held back until it is complete.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .errors import InputError

if TYPE_CHECKING:
    from .artifact import Artifact
    from .executable import Executable

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
_REPLACEMENT = "\ufffd"  # what a decoder returns for an incomplete UTF-8 sequence
_CONTEXT_TOKENS = 5  # tokens decoded before a streamed piece, for spacing/merging context


@dataclass
class Tokenizer:
    """A `tokenizers.Tokenizer` and the ids of its special tokens."""

    backend: Any
    bos_id: int | None = None
    eos_id: int | None = None

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, with the beginning-of-sequence token when the folder has one."""
        ids = self.backend.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids] if self.bos_id is not None else ids

    def decode(self, ids: list[int]) -> str:
        """Text of `ids` (special tokens dropped)."""
        return self.backend.decode(ids, skip_special_tokens=True)

    @property
    def vocab_size(self) -> int:
        """Number of ids the tokenizer can produce."""
        return self.backend.get_vocab_size(with_added_tokens=True)


def load_tokenizer(folder: str | os.PathLike[str]) -> Tokenizer:
    """Reads a tokenizer folder (``tokenizer.json`` + optional ``tokenizer_config.json``)."""
    return tokenizer_from_files(tokenizer_files(folder), str(folder))


def tokenizer_files(folder: str | os.PathLike[str]) -> dict[str, bytes]:
    """The files of a tokenizer folder that `tokenizer_from_files` reads (what an artifact
    embeds): ``tokenizer.json`` and, when present, ``tokenizer_config.json``."""
    path = Path(folder)
    file = path / TOKENIZER_FILE if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{folder}: no {TOKENIZER_FILE} (save the tokenizer with save_pretrained)")
    files = {TOKENIZER_FILE: file.read_bytes()}
    config = file.parent / TOKENIZER_CONFIG
    if config.is_file():
        files[TOKENIZER_CONFIG] = config.read_bytes()
    return files


def tokenizer_from_files(files: dict[str, bytes], where: str) -> Tokenizer:
    """A tokenizer from `tokenizer_files` output; `where` names their origin in errors."""
    try:
        from tokenizers import Tokenizer as Backend
    except ImportError:
        raise InputError(
            "text generation needs the tokenizers package: pip install tokenizers"
        ) from None
    try:
        backend = Backend.from_str(files[TOKENIZER_FILE].decode())
    except Exception as err:  # noqa: BLE001 - the library raises plain Exceptions
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{where}: {TOKENIZER_FILE} is not a tokenizer: {reason}") from None
    special = _special_tokens(files.get(TOKENIZER_CONFIG), where)
    ids = {name: backend.token_to_id(token) for name, token in special.items() if token}
    return Tokenizer(backend, bos_id=ids.get("bos_token"), eos_id=ids.get("eos_token"))


def artifact_tokenizer(artifact: Artifact, where: str = "the artifact") -> Tokenizer:
    """The tokenizer an artifact carries (`mlacc compile --tokenizer`, or a checkpoint
    folder's own); InputError when it carries none."""
    if TOKENIZER_FILE not in artifact.tokenizer:
        raise InputError(
            f"{where} carries no tokenizer (compile it with --tokenizer DIR, or pass "
            "--tokenizer DIR here)"
        )
    return tokenizer_from_files(artifact.tokenizer, f"{where} (embedded tokenizer)")


def _special_tokens(config: bytes | None, where: str) -> dict[str, str | None]:
    """``bos_token``/``eos_token`` of a ``tokenizer_config.json`` (a string or an AddedToken
    dict); the beginning-of-sequence token only when ``add_bos_token`` is set."""
    if config is None:
        return {}
    try:
        raw = json.loads(config)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{where}: {TOKENIZER_CONFIG} is not valid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{where}: {TOKENIZER_CONFIG} is not a JSON object")

    def content(value: Any) -> str | None:
        return value.get("content") if isinstance(value, dict) else value

    out = {"eos_token": content(raw.get("eos_token"))}
    if raw.get("add_bos_token"):
        out["bos_token"] = content(raw.get("bos_token"))
    return out


@dataclass
class TextGeneration:
    """The result of `generate_text`: the text, its tokens and how fast they came."""

    text: str
    prompt_tokens: int
    new_tokens: list[int]
    seconds: float
    first_token_seconds: float

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per wall-clock second (prefill included)."""
        return len(self.new_tokens) / self.seconds if self.seconds > 0 else float("inf")


def generate_text(
    exe: Executable,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int,
    *,
    on_text: Callable[[str], None] | None = None,
    stop_at_eos: bool = True,
    **sampling: Any,
) -> TextGeneration:
    """Generates a continuation of `prompt`; `on_text` receives the text as it is confirmed.
    `sampling`: `temperature`, `top_k`, `top_p`, `seed` as `Executable.generate` takes them."""
    ids = tokenizer.encode(prompt)
    if not ids:
        raise InputError("the prompt encodes to no tokens")
    new: list[int] = []
    shown = ""
    # decoding the continuation alone would drop a leading space (SentencePiece-style
    # tokenizers strip it from the first token): decode it after the prompt, keep the rest
    before = tokenizer.decode(ids)

    def continuation() -> str:
        return tokenizer.decode(ids + new)[len(before) :]

    # Streaming decodes a window, not the whole text, per token (linear, not quadratic): the
    # tokens since the last confirmed text plus a few before it for context, confirmed when
    # they add text that does not end in an incomplete character.
    prefix, read = max(len(ids) - _CONTEXT_TOKENS, 0), len(ids)
    start = time.perf_counter()
    first: list[float] = []

    def on_token(_row: int, token: int) -> None:
        nonlocal shown, prefix, read
        if not first:
            first.append(time.perf_counter() - start)
        new.append(token)
        window = ids[prefix:] + new if prefix < len(ids) else new[prefix - len(ids) :]
        confirmed = tokenizer.decode(window[: read - prefix])
        text = tokenizer.decode(window)
        if len(text) <= len(confirmed) or text.endswith(_REPLACEMENT):
            return  # nothing new yet, or an incomplete character: wait for the rest
        delta = text[len(confirmed) :]
        prefix, read = read, len(ids) + len(new)
        if on_text is not None:
            on_text(delta)
        shown += delta

    stops = [tokenizer.eos_id] if stop_at_eos and tokenizer.eos_id is not None else []
    exe.generate(
        torch.tensor([ids]), max_new_tokens, stop_tokens=stops, on_token=on_token, **sampling
    )
    seconds = time.perf_counter() - start
    text = continuation()
    if on_text is not None and len(text) > len(shown):
        on_text(text[len(shown) :])
    return TextGeneration(text, len(ids), new, seconds, first[0] if first else seconds)
