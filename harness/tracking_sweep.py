"""MLflow bookkeeping for sweeps: one parent run per sweep, one child run per trial.

Identity, so that a resumed sweep never duplicates a run: the parent's id is kept in the sweep
folder (and in the Optuna study), and a trial's child run is found again by its tags
(`rbench.sweep_id`, `rbench.trial_number` = the Optuna trial number), wherever the trial restarts.
Everything goes through `harness.tracking` (explicit tracking URI, `MlflowClient`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.config import ExperimentConfig
from harness.tracking import Tracker, client

SWEEP_TAG, TRIAL_TAG, ROLE_TAG = "rbench.sweep_id", "rbench.trial_number", "rbench.role"
NAME_TAG = "rbench.sweep_name"     # the spec's name (the id adds a suffix unique to this sweep)


def start_parent_run(cfg: ExperimentConfig, *, sweep_id: str, sweep_name: str, sweep_dir: Path,
                     spec: dict[str, Any], run_id: str | None = None) -> str:
    """Create the sweep's parent run (or reopen `run_id` on resume). `cfg` is the base experiment;
    its params are logged so the parent shows what every trial shares."""
    cfg = cfg.model_copy(update={"tracking": cfg.tracking.model_copy(
        update={"run_name": f"sweep:{sweep_id}"})})
    tracker = Tracker(cfg, run_dir=sweep_dir, run_id=run_id,
                      tags={SWEEP_TAG: sweep_id, NAME_TAG: sweep_name, ROLE_TAG: "sweep"})
    rid = tracker.start()
    if run_id is None:
        client(tracker.uri).log_dict(rid, spec, "sweep.yaml")
    return rid


def end_run(uri: str, run_id: str, *, status: str, metrics: dict[str, float] | None = None,
            tags: dict[str, str] | None = None) -> None:
    """Close a run: FINISHED, FAILED or KILLED (early-stopped / interrupted), with final values."""
    from mlflow.entities import Metric

    c = client(uri)
    for k, v in (tags or {}).items():
        c.set_tag(run_id, k, str(v)[:5000])
    if metrics:
        ts = int(time.time() * 1000)
        c.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()])
    c.set_terminated(run_id, status=status)


def find_trial_run(uri: str, experiment: str, sweep_id: str, number: int) -> str | None:
    """The child run of trial `number` of this sweep, if one was created before (a restart)."""
    exp = client(uri).get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client(uri).search_runs(
        [exp.experiment_id], filter_string=f"tags.`{SWEEP_TAG}` = '{sweep_id}' and "
                                f"tags.`{TRIAL_TAG}` = '{number}'", max_results=10)
    runs = sorted(runs, key=lambda r: r.info.start_time)
    return runs[0].info.run_id if runs else None


def trial_runs(uri: str, experiment: str, sweep_id: str) -> list:
    """All child runs of a sweep (used by the tests and reports)."""
    exp = client(uri).get_experiment_by_name(experiment)
    if exp is None:
        return []
    out, token = [], None
    while True:
        page = client(uri).search_runs(
            [exp.experiment_id], filter_string=f"tags.`{SWEEP_TAG}` = '{sweep_id}' and "
                                    f"tags.`{ROLE_TAG}` = 'trial'",
            max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out

