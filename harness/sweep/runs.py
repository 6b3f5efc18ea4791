"""The MLflow side of a sweep: one parent run per sweep, one child run per trial, closed with the
trial's outcome. The only module of harness/sweep that calls into tracking (harness.tracking,
harness.tracking_sweep), so the tracking layer can move without touching the rest."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.config import ExperimentConfig
from harness.outcome import TrialOutcome

FAMILY_TAG = "rbench.family"
MATCH_RATIO_TAG = "rbench.match_ratio"


def tracking_uri(cfg: ExperimentConfig) -> str | None:
    """The sweep's MLflow URI (None: tracking disabled); the experiment is created here, before
    trials race to do it in SQLite."""
    from harness.tracking import artifact_root, ensure_experiment, resolve_uri

    if not cfg.tracking.enabled:
        return None
    uri = resolve_uri(cfg)
    ensure_experiment(uri, cfg.tracking.experiment, artifact_root(cfg))
    return uri


def start_parent(cfg: ExperimentConfig, *, sweep_id: str, sweep_name: str, sweep_dir: Path,
                 spec: dict[str, Any], run_id: str | None) -> str:
    from harness.tracking_sweep import start_parent_run

    return start_parent_run(cfg, sweep_id=sweep_id, sweep_name=sweep_name, sweep_dir=sweep_dir,
                            spec=spec, run_id=run_id)


def end_parent(uri: str, run_id: str, *, interrupted: bool, summary: dict | None = None) -> None:
    from harness.tracking_sweep import end_run

    if interrupted:   # leave it resumable; mark why it is not running
        end_run(uri, run_id, status="KILLED", tags={
            "rbench.stop_reason": "driver interrupted: rbench sweep SPEC --resume continues"})
        return
    end_run(uri, run_id, status="FINISHED",
            metrics={f"trials_{k}": v for k, v in summary["counts"].items()},
            tags={"rbench.best": json.dumps(summary["best"])[:5000]})


def open_trial_run(cfg: ExperimentConfig, *, run_dir: Path, uri: str, experiment: str,
                   parent_run_id: str | None, sweep_id: str, sweep_name: str, number: int,
                   family: str, tune_trial_id: str, optuna_trial_id: int | None,
                   match_ratio: float | None):
    """The trial's child run: created, or reopened when the trial reruns (resumed driver, or
    Tune retrying a dead trial). Returns the started Tracker."""
    from harness.tracking import Tracker
    from harness.tracking_sweep import (
        NAME_TAG,
        ROLE_TAG,
        SWEEP_TAG,
        TRIAL_TAG,
        find_trial_run,
    )

    tags = {SWEEP_TAG: sweep_id, NAME_TAG: sweep_name, TRIAL_TAG: str(number), ROLE_TAG: "trial",
            FAMILY_TAG: family, "rbench.tune_trial_id": tune_trial_id,
            "rbench.optuna_trial_id": str(optuna_trial_id)}
    if match_ratio is not None:
        tags[MATCH_RATIO_TAG] = f"{match_ratio:.6f}"
    existing = find_trial_run(uri, experiment, sweep_id, number)
    tracker = Tracker(cfg, run_dir=run_dir, parent_run_id=parent_run_id, tags=tags,
                      run_id=existing)
    tracker.start()
    if existing:   # a rerun: same run, note the Tune trial now running it
        tracker.set_tags({"rbench.tune_trial_id": tune_trial_id, "rbench.rerun": "true"})
    if match_ratio is not None:
        tracker.log_metrics(0, {"match_ratio": match_ratio}, prefix="")
    return tracker


def close_trial_run(tracker, outcome: TrialOutcome) -> None:
    if tracker is None:
        return
    if outcome.ok:
        tracker.finish(outcome)
    else:
        tracker.fail(str(outcome.failure_reason))


def close_stopped_run(uri: str | None, experiment: str, sweep_id: str, number: int, *,
                      status: str, reason: str) -> None:
    """Close the run of a trial Tune stopped or lost (the trial itself could not)."""
    from harness.tracking import client
    from harness.tracking_sweep import end_run, find_trial_run

    if uri is None:
        return
    rid = find_trial_run(uri, experiment, sweep_id, number)
    if rid is not None and client(uri).get_run(rid).info.status == "RUNNING":
        end_run(uri, rid, status=status, tags={"rbench.stop_reason": reason})


def trial_runs(uri: str, experiment: str, sweep_id: str) -> list:
    from harness.tracking_sweep import trial_runs as _runs

    return _runs(uri, experiment, sweep_id)
