"""The one place that decides CPU vs GPU settings: device, precision and collective backend."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from harness.config import EngineConfig
from harness.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    device: str  # "cpu" or "cuda"
    precision: str  # "fp32" or "bf16"
    backend: str  # torch.distributed backend: "gloo" (CPU) or "nccl" (GPU)

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32


def resolve_runtime(cfg: EngineConfig) -> Runtime:
    cuda = torch.cuda.is_available()
    device = cfg.device if cfg.device != "auto" else ("cuda" if cuda else "cpu")
    if device == "cuda" and not cuda:
        raise ConfigError("engine.device", "'cuda' requested but no CUDA device is visible")
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if device == "cuda" else "fp32")
    if cfg.threads and device == "cpu":
        torch.set_num_threads(cfg.threads)
    return Runtime(device=device, precision=precision, backend="nccl" if device == "cuda" else "gloo")


def local_device(rt: Runtime) -> torch.device:
    if rt.device == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")
