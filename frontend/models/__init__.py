"""The DeepSeek-V2/V3 reference model (plain PyTorch), its named configs and checkpoint loader."""

from __future__ import annotations

from .checkpoint import CheckpointError, LoadResult, hf_name_map, load_checkpoint
from .config import CONFIGS, ModelConfig, config_from_hf, get_config
from .deepseek import DeepSeekModel

__all__ = [
    "CONFIGS",
    "CheckpointError",
    "DeepSeekModel",
    "LoadResult",
    "ModelConfig",
    "config_from_hf",
    "get_config",
    "hf_name_map",
    "load_checkpoint",
]
