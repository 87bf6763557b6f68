"""The `mla` ops, one per module."""

from .absorb_output import AbsorbOutputOp, absorb_output
from .absorb_query import AbsorbQueryOp, absorb_query
from .attention import AttentionOp, attention
from .cache_gather import CacheGatherOp, cache_gather
from .cache_update import CacheUpdateOp, cache_update
from .decoupled_attention import DecoupledAttentionOp, decoupled_attention
from .kv_expand import KvExpandOp, kv_expand
from .latent_attention import LatentAttentionOp, latent_attention
from .rms_norm import RmsNormOp, rms_norm
from .rope_tables import RopeTablesOp, rope_tables
from .rotary_embedding import RotaryEmbeddingOp, rotary_embedding

__all__ = [
    "AbsorbOutputOp",
    "AbsorbQueryOp",
    "AttentionOp",
    "CacheGatherOp",
    "CacheUpdateOp",
    "DecoupledAttentionOp",
    "KvExpandOp",
    "LatentAttentionOp",
    "RmsNormOp",
    "RopeTablesOp",
    "RotaryEmbeddingOp",
    "absorb_output",
    "absorb_query",
    "attention",
    "cache_gather",
    "cache_update",
    "decoupled_attention",
    "kv_expand",
    "latent_attention",
    "rms_norm",
    "rope_tables",
    "rotary_embedding",
]
