"""A sweep's identity on disk: `sweep.json` in the sweep folder, and its Optuna storage.

sweep.json   sweep id (<name>-<8 hex>, also the Optuna study name), Optuna storage URL (its
             password masked: harness/credentials.py), MLflow parent run id, spec fingerprint,
             trial count, the driver's pid and host

Heartbeats (a server database only, e.g. PostgreSQL; not SQLite, where parallel writers already
contend): every trial's process records an Optuna heartbeat every HEARTBEAT_S (trial.py); a
RUNNING trial whose heartbeat is older than GRACE_S is failed by the driver's next suggestion
(`optuna.storages.fail_stale_trials`) and Optuna's RetryHeartbeatStaleTrialCallback queues a copy
(same parameters, seed and family; system attr `failed_trial`), at most MAX_RETRY times.
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


HEARTBEAT_S = 10  # a trial's process records a heartbeat this often
GRACE_S = 60  # ... and is failed (then retried) when none came for this long
MAX_RETRY = 2


def heartbeats(url: str) -> bool:
    """Whether trials in this storage heartbeat: any RDB but SQLite."""
    return not url.startswith("sqlite")


def open_storage(
    url: str, *, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S, max_retry: int = MAX_RETRY
):
    """An Optuna RDB storage; `url` may be masked (the password comes from the environment).
    SQLite gets a busy timeout (trials finish concurrently); a server database gets heartbeats
    and the retry of stale trials."""
    import optuna

    from harness.credentials import unmask

    if not heartbeats(url):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    import warnings

    with warnings.catch_warnings():  # heartbeats and the retry callback are "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            unmask(url),
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=heartbeat_s,
            grace_period=grace_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry),
        )
