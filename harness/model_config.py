"""Compatibility names: each architecture's config class now lives beside its model in models/
(nanoGPT's GPTConfig beside GPT) and models/registry.py lists them. Import from there in new code.
"""

from __future__ import annotations

from models.hrm import HRMConfig
from models.looped import LoopedConfig
from models.registry import ModelConfig
from models.transformer import TransformerConfig
from models.trm import TRMConfig

__all__ = ["HRMConfig", "LoopedConfig", "ModelConfig", "TransformerConfig", "TRMConfig"]
