"""MLflow bookkeeping for sweeps: one parent run per sweep, one child run per trial.

Identity, so that a resumed sweep never duplicates a run: the parent's id is kept in the sweep
folder (and in the Optuna study), and a trial's child run is found again by its tags
(`rbench.sweep_id`, `rbench.trial_number` = the Optuna trial number), wherever the trial restarts.

The parent run is watched: `start_parent_run` leaves a helper process (see
harness/tracking/process.py) that ends the parent as KILLED, with the reason, if the driver dies
with the run still RUNNING; `start_parent_run(..., run_id=...)` (`rbench sweep SPEC --resume`)
re-opens it and watches it again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.tracking.base import KILLED, Outcome
from harness.tracking.inprocess import MlflowTracker
from harness.tracking.inprocess import end_run as _end_run
from harness.tracking.process import ProcessTracker
from harness.tracking.store import client, search_runs
from harness.tracking.tags import NAME_TAG, ROLE_TAG, SWEEP_TAG, TRIAL_TAG  # noqa: F401 - re-exported

# The helper watching each parent run opened in this process (kept referenced: its pipe closing
# is what tells it that the driver is gone).
_WATCHERS: dict[str, ProcessTracker] = {}
DRIVER_GONE = (
    "the sweep driver (pid {pid}) exited while the sweep was running: "
    "`rbench sweep SPEC --resume` continues it"
)


def start_parent_run(
    cfg, *, sweep_id: str, sweep_name: str, sweep_dir: Path, spec: dict[str, Any], run_id: str | None = None
) -> str:
    """Create the sweep's parent run (or reopen `run_id` on resume). `cfg` is the base experiment;
    its params are logged so the parent shows what every trial shares."""
    import os

    cfg = cfg.model_copy(
        update={"tracking": cfg.tracking.model_copy(update={"run_name": f"sweep:{sweep_id}"})}
    )
    tags = {SWEEP_TAG: sweep_id, NAME_TAG: sweep_name, ROLE_TAG: "sweep"}
    try:
        watcher = ProcessTracker(
            cfg,
            run_dir=sweep_dir,
            run_id=run_id,
            vanish_status=KILLED,
            vanish_reason=DRIVER_GONE.format(pid=os.getpid()),
            tags=tags,
        )
    except OSError:  # no helper can be started here: an unwatched parent run
        tracker = MlflowTracker(cfg, run_dir=sweep_dir, run_id=run_id, tags=tags)
        tracker.start()
        if run_id is None:
            tracker.log_artifacts({"sweep.yaml": spec})
        return tracker.run_id
    watcher.start()
    rid = watcher.run_id
    if run_id is None:
        watcher.log_artifacts({"sweep.yaml": spec})
    watcher.wait()
    old = _WATCHERS.pop(rid, None)
    if old is not None:
        old.close()
    _WATCHERS[rid] = watcher
    return rid


def end_run(
    uri: str,
    run_id: str,
    *,
    status: str,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Close a run: FINISHED, FAILED or KILLED (early-stopped / interrupted), with final values."""
    from mlflow.entities import Metric

    c = client(uri)
    for k, v in (tags or {}).items():
        c.set_tag(run_id, k, str(v)[:5000])
    if metrics:
        ts = int(time.time() * 1000)
        c.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()])
    _end_run(c, run_id, Outcome(status))
    watcher = _WATCHERS.pop(run_id, None)
    if watcher is not None:
        watcher.close()


def find_trial_run(uri: str, experiment: str, sweep_id: str, number: int) -> str | None:
    """The child run of trial `number` of this sweep, if one was created before (a restart)."""
    runs = sorted(
        search_runs(
            uri, experiment, f"tags.`{SWEEP_TAG}` = '{sweep_id}' and tags.`{TRIAL_TAG}` = '{number}'"
        ),
        key=lambda r: r.info.start_time,
    )
    return runs[0].info.run_id if runs else None


def trial_runs(uri: str, experiment: str, sweep_id: str) -> list:
    """All child runs of a sweep (used by the tests and reports)."""
    return list(
        search_runs(uri, experiment, f"tags.`{SWEEP_TAG}` = '{sweep_id}' and tags.`{ROLE_TAG}` = 'trial'")
    )
