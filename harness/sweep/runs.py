"""The MLflow side of a sweep: one parent run per sweep, one child run per trial, closed with the
trial's outcome. The only module of harness/sweep that calls into tracking (harness.tracking,
harness.tracking.sweep)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.config import ExperimentConfig
from harness.outcome import TrialOutcome
from harness.tracking import tags as T
from harness.tracking.tags import FAMILY_TAG, MATCH_RATIO_TAG  # noqa: F401  (re-exported)


def tracking_uri(cfg: ExperimentConfig) -> str | None:
    """The sweep's MLflow URI (None: tracking disabled); the experiment is created here, before
    trials race to do it in SQLite."""
    from harness.tracking import artifact_root, ensure_experiment, resolve_uri

    if not cfg.tracking.enabled:
        return None
    uri = resolve_uri(cfg)
    ensure_experiment(uri, cfg.tracking.experiment, artifact_root(cfg))
    return uri


def start_parent(
    cfg: ExperimentConfig,
    *,
    sweep_id: str,
    sweep_name: str,
    sweep_dir: Path,
    spec: dict[str, Any],
    run_id: str | None,
) -> str:
    from harness.tracking.sweep import start_parent_run

    return start_parent_run(
        cfg, sweep_id=sweep_id, sweep_name=sweep_name, sweep_dir=sweep_dir, spec=spec, run_id=run_id
    )


def end_parent(uri: str, run_id: str, *, interrupted: bool, summary: dict | None = None) -> None:
    from harness.tracking.sweep import end_run

    if interrupted:  # leave it resumable; mark why it is not running
        end_run(
            uri,
            run_id,
            status="KILLED",
            tags={T.STOP_TAG: "driver interrupted: rbench sweep SPEC --resume continues"},
        )
        return
    end_run(
        uri,
        run_id,
        status="FINISHED",
        metrics={f"trials_{k}": v for k, v in summary["counts"].items()},
        tags={T.BEST_TAG: json.dumps(summary["best"])[:5000]},
    )


def open_trial_run(
    cfg: ExperimentConfig,
    *,
    run_dir: Path,
    uri: str,
    experiment: str,
    parent_run_id: str | None,
    sweep_id: str,
    sweep_name: str,
    number: int,
    family: str,
    tune_trial_id: str,
    optuna_trial_id: int | None,
    match_ratio: float | None,
):
    """The trial's child run: created, or reopened when the trial reruns (resumed driver, or
    Tune retrying a dead trial). Returns the started Tracker; close it with `close_trial_run`.

    MLflow in this process, not a helper: trial actors are reused, so MLflow is imported once per
    actor, while a helper process pays its ~5 CPU s import and store opening again for every trial
    (`python -m harness.bench.ray_overhead`, same machine, one after the other: start-up median
    3.4 s -> 0.1 s, 390 -> 631 serial trials/hour). A trial whose actor dies is ended by Tune's
    callbacks (`trial.close_runs_callback`) or reopened by its retry."""
    from harness.tracking import open_tracker
    from harness.tracking.sweep import find_trial_run

    tags = {
        T.SWEEP_TAG: sweep_id,
        T.NAME_TAG: sweep_name,
        T.TRIAL_TAG: str(number),
        T.ROLE_TAG: "trial",
        FAMILY_TAG: family,
        T.TUNE_TRIAL_TAG: tune_trial_id,
        T.OPTUNA_TRIAL_TAG: str(optuna_trial_id),
    }
    if match_ratio is not None:
        tags[MATCH_RATIO_TAG] = f"{match_ratio:.6f}"
    existing = find_trial_run(uri, experiment, sweep_id, number)
    tracker = open_tracker(
        cfg, run_dir=run_dir, parent_run_id=parent_run_id, tags=tags, run_id=existing, helper=False
    )
    tracker.start()
    if existing:  # a rerun: same run, note the Tune trial now running it
        tracker.set_tags({T.TUNE_TRIAL_TAG: tune_trial_id, T.RERUN_TAG: "true"})
    if match_ratio is not None:
        tracker.log_metrics(0, {"match_ratio": match_ratio}, prefix="")
    return tracker


def session_tracker(tracker):
    """The tracker a 1-worker trial's training logs through: its run's own (one MLflow helper
    process per trial), or the null tracker when the sweep is not tracked."""
    from harness.tracking import NullTracker

    return tracker if tracker is not None else NullTracker()


def close_trial_run(tracker, outcome: TrialOutcome) -> None:
    if tracker is None:
        return
    try:
        if outcome.ok:
            tracker.finish(outcome)
        else:
            tracker.fail(str(outcome.failure_reason))
    finally:
        tracker.close()


def abandon_trial_run(tracker) -> None:
    """The trial raised: flush and release its tracker without ending the run. Tune's callbacks
    (trial.CloseStoppedTrials) end it with the reason, or a retry of the trial reopens it."""
    if tracker is not None:
        tracker.close()


def close_stopped_run(
    uri: str | None, experiment: str, sweep_id: str, number: int, *, status: str, reason: str
) -> None:
    """Close the run of a trial Tune stopped or lost (the trial itself could not)."""
    from harness.tracking import client
    from harness.tracking.sweep import end_run, find_trial_run

    if uri is None:
        return
    rid = find_trial_run(uri, experiment, sweep_id, number)
    if rid is not None and client(uri).get_run(rid).info.status == "RUNNING":
        end_run(uri, rid, status=status, tags={T.STOP_TAG: reason})


def trial_runs(uri: str, experiment: str, sweep_id: str) -> list:
    from harness.tracking.sweep import trial_runs as _runs

    return _runs(uri, experiment, sweep_id)
