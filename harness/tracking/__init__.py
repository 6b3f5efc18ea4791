"""Tracking: ONE interface (start, params, metrics, artifacts, finish(outcome)) for every run.

    from harness.tracking import Outcome, open_tracker

    tracker = open_tracker(cfg, run_dir=run_dir)   # helper process / in-process / null
    ...

Implementations: `ProcessTracker` (MLflow in a helper process: local runs, Ray drivers and Ray
workers; it also ends a run whose process died), `MlflowTracker` (MLflow in this process: where a
helper cannot be started, or RBENCH_TRACKING_HELPER=0), `NullTracker` (`tracking.enabled: false`).
Tag names live in `harness.tracking.tags`; the store helpers in `harness.tracking.store`; sweep
bookkeeping (parent and trial runs) in `harness.tracking.sweep`.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.tracking.base import FAILED, FINISHED, KILLED, NullTracker, Outcome, Tracker, TrackingError
from harness.tracking.inprocess import MlflowTracker
from harness.tracking.process import ProcessTracker
from harness.tracking.store import (
    artifact_root,
    client,
    default_uri,
    ensure_experiment,
    flatten,
    read_run_id,
    resolve_uri,
    search_runs,
)
from harness.tracking.tags import EVAL_PREFIX, TRAIN_PREFIX

HELPER_ENV = "RBENCH_TRACKING_HELPER"  # "0": MLflow in the calling process


def open_tracker(
    cfg,
    *,
    run_dir: Path,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    record_id: bool = True,
    owns_run: bool = True,
    helper: bool | None = None,
    **process_args,
) -> Tracker:
    """The tracker for a run of `cfg`: NullTracker when tracking is off; else MLflow in a helper
    process (`helper`, default: unless RBENCH_TRACKING_HELPER=0), falling back to in-process MLflow
    when no helper can be started. `owns_run=False`: this process logs into a run that another
    one (the Ray driver) ends, so a helper that sees this process die does not end it."""
    if not cfg.tracking.enabled:
        return NullTracker()
    common = dict(run_dir=run_dir, run_id=run_id, parent_run_id=parent_run_id, tags=tags, record_id=record_id)
    if helper is None:
        helper = os.environ.get(HELPER_ENV, "1") != "0"
    if helper:
        try:
            return ProcessTracker(cfg, owns_run=owns_run, **common, **process_args)
        except OSError:
            pass
    return MlflowTracker(cfg, **common)


__all__ = [
    "FAILED",
    "FINISHED",
    "KILLED",
    "EVAL_PREFIX",
    "TRAIN_PREFIX",
    "MlflowTracker",
    "NullTracker",
    "Outcome",
    "ProcessTracker",
    "Tracker",
    "TrackingError",
    "artifact_root",
    "client",
    "default_uri",
    "ensure_experiment",
    "flatten",
    "open_tracker",
    "read_run_id",
    "resolve_uri",
    "search_runs",
]
