"""A sweep's identity on disk: `sweep.json` in the sweep folder, and its Optuna storage.

sweep.json   sweep id (<name>-<8 hex>, also the Optuna study name), Optuna storage URL, MLflow
             parent run id, spec fingerprint, trial count, the driver's pid and host
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "sweep.json"
TUNE_NAME = "tune"  # Tune experiment folder inside the sweep folder


def read_state(sweep_dir: Path) -> dict[str, Any] | None:
    p = Path(sweep_dir) / STATE_FILE
    return json.loads(p.read_text()) if p.is_file() else None


def write_state(sweep_dir: Path, state: dict[str, Any]) -> None:
    tmp = Path(sweep_dir) / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, Path(sweep_dir) / STATE_FILE)


def open_storage(url: str):
    """An Optuna RDB storage. SQLite gets a busy timeout: trials finish concurrently."""
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
