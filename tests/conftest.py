"""Session-wide test settings: a quiet, local, reproducible environment.

Every test writes under its own temporary run folder; nothing goes to the repository tree.
"""

from __future__ import annotations

import os

import pytest

# Set before anything imports ray/mlflow/deepspeed.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("RAY_ADDRESS", None)


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def runs_dir(tmp_path):
    """A fresh run folder (what `runs_dir` points at in a config)."""
    d = tmp_path / "runs"
    d.mkdir()
    return d
