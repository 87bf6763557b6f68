"""The `rope` dictionary attribute shared by rotary-embedding and attention ops.

Keys (all required): ``layout`` ("interleaved": pairs (2i, 2i+1) as in DeepSeek's public code;
"rotate_half": pairs (i, i + d/2) as in Hugging Face), ``theta`` (base), ``factor`` (YaRN
context-extension factor; 1.0 disables YaRN), ``original_seq_len``, ``beta_fast``,
``beta_slow`` (YaRN ramp bounds, in rotations), ``cos_sin_scale`` (multiplier on cos/sin;
Hugging Face's YaRN ``attention_factor``), ``truncate`` (round the YaRN correction range to whole
dims, as DeepSeek's code does).
"""

from __future__ import annotations

from typing import Any

from ..base import VerificationError

ROPE_LAYOUTS = ("interleaved", "rotate_half")

ROPE_KEYS: dict[str, type | tuple[type, ...]] = {
    "layout": str,
    "theta": (float, int),
    "factor": (float, int),
    "original_seq_len": int,
    "beta_fast": (float, int),
    "beta_slow": (float, int),
    "cos_sin_scale": (float, int),
    "truncate": bool,
}


def rope_params(
    *,
    layout: str = "interleaved",
    theta: float = 10000.0,
    factor: float = 1.0,
    original_seq_len: int = 4096,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    cos_sin_scale: float = 1.0,
    truncate: bool = True,
) -> dict[str, Any]:
    """A complete `rope` attribute value (Python dict) with DeepSeek-V3's defaults."""
    return {
        "layout": layout,
        "theta": float(theta),
        "factor": float(factor),
        "original_seq_len": int(original_seq_len),
        "beta_fast": float(beta_fast),
        "beta_slow": float(beta_slow),
        "cos_sin_scale": float(cos_sin_scale),
        "truncate": bool(truncate),
    }


def check_rope(rope: Any, rotary_dim: int | None) -> None:
    """Verifies a `rope` attribute value: every key present with the right kind, sane values."""
    if not isinstance(rope, dict):
        raise VerificationError(f"attribute 'rope' must be a dictionary, got {rope!r}")
    missing = [k for k in ROPE_KEYS if k not in rope]
    if missing:
        raise VerificationError(f"attribute 'rope' is missing key(s) {', '.join(missing)}")
    unknown = sorted(set(rope) - set(ROPE_KEYS))
    if unknown:
        raise VerificationError(f"attribute 'rope' has unknown key(s) {', '.join(unknown)}")
    for key, kind in ROPE_KEYS.items():
        value = rope[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise VerificationError(f"rope key '{key}' has the wrong kind of value: {value!r}")
    if rope["layout"] not in ROPE_LAYOUTS:
        raise VerificationError(
            f"rope layout must be one of {', '.join(ROPE_LAYOUTS)}, got '{rope['layout']}'"
        )
    if rope["theta"] <= 0 or rope["factor"] < 1.0 or rope["original_seq_len"] <= 0:
        raise VerificationError("rope needs theta > 0, factor >= 1 and original_seq_len > 0")
    if rotary_dim is not None and rotary_dim % 2:
        raise VerificationError(f"rotary dimension must be even, got {rotary_dim}")
