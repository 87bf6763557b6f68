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


# --- fused rotary embedding (`--mla-fuse-rope`): consumers that take cos/sin tables ---

# Values of the `rope_layout` attribute of ops that can rotate as they load or store: "none"
# (no tables; the operand is used as it is) or the layout of the pairs the tables rotate.
FUSED_ROPE_LAYOUTS = ("none", *ROPE_LAYOUTS)


def check_rope_tables(cos: Any, sin: Any, rope_layout: str, rotary_dim: int | None) -> int | None:
    """Verifies optional ``rope_cos``/``rope_sin`` operands against ``rope_layout``.

    Both tables or neither; given iff ``rope_layout`` is not "none"; each fp32
    ``[max_positions, rotary_dim / 2]`` with the same shape. Returns ``max_positions``
    (None when absent or dynamic).
    """
    if rope_layout not in FUSED_ROPE_LAYOUTS:
        raise VerificationError(
            f"attribute 'rope_layout' must be one of {', '.join(FUSED_ROPE_LAYOUTS)}, "
            f"got '{rope_layout}'"
        )
    if (cos is None) != (sin is None):
        raise VerificationError("'rope_cos' and 'rope_sin' must be given together")
    if cos is None:
        if rope_layout != "none":
            raise VerificationError(
                f"rope_layout '{rope_layout}' needs the 'rope_cos' and 'rope_sin' tables"
            )
        return None
    if rope_layout == "none":
        raise VerificationError("'rope_cos'/'rope_sin' need rope_layout interleaved or rotate_half")
    if rotary_dim is not None and rotary_dim % 2:
        raise VerificationError(f"rotary dimension must be even, got {rotary_dim}")
    half = None if rotary_dim is None else rotary_dim // 2
    for name, t in (("rope_cos", cos), ("rope_sin", sin)):
        if t.rank != 2 or t.dtype != "float32":
            raise VerificationError(f"{name} must be a 2-D float32 table, got {t}")
        if t.shape[1] is not None and half is not None and t.shape[1] != half:
            raise VerificationError(
                f"{name} has {t.shape[1]} columns, expected {half} (rotary dim / 2)"
            )
    if cos.shape != sin.shape:
        raise VerificationError(f"rope_cos {cos} and rope_sin {sin} differ in shape")
    return cos.shape[0]
