"""The MLflow helper process behind `rbench run`: order, buffering, failures."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from harness.config import validate
from harness.tracking import TrackingError
from harness.tracking_process import TrackerProcess


def make_cfg(runs_dir):
    return validate({"name": "track", "runs_dir": str(runs_dir),
                     "model": {"arch": "transformer", "hidden": 32, "heads": 2, "layers": 1},
                     "task": {"name": "sudoku-4x4"}}, "test")


def client(runs_dir):
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=f"sqlite:///{runs_dir.resolve() / 'mlflow.db'}")


def test_every_logged_step_arrives_and_the_run_finishes(runs_dir, monkeypatch):
    monkeypatch.setenv("RBENCH_TRACKER_FLUSH_S", "0.05")   # exercise flushing mid-run too
    tracker = TrackerProcess(make_cfg(runs_dir), run_dir=runs_dir / "r")
    try:
        tracker.start()
        for step in range(1, 41):
            tracker.log_metrics(step, {"loss": 1.0 / step, "exact_accuracy": step / 40})
            if step % 10 == 0:
                time.sleep(0.06)
        tracker.log_metrics(40, {"exact_accuracy": 0.5}, prefix="eval/")
        tracker.finish(SimpleNamespace(num_parameters=123, effective_depth=4,
                                       checkpoint_dir=runs_dir / "ck", step=40))
    finally:
        tracker.close()
    run = client(runs_dir).get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.params["num_parameters"] == "123"
    loss = client(runs_dir).get_metric_history(tracker.run_id, "train/loss")
    assert [m.step for m in sorted(loss, key=lambda m: m.step)] == list(range(1, 41))
    assert sorted(loss, key=lambda m: m.step)[3].value == pytest.approx(0.25)
    assert run.data.metrics["eval/exact_accuracy"] == 0.5
    assert run.data.tags["rbench.final_step"] == "40"


def test_a_killed_tracking_process_is_reported_not_ignored(runs_dir):
    tracker = TrackerProcess(make_cfg(runs_dir), run_dir=runs_dir / "r")
    tracker.start()
    tracker._proc.kill()
    tracker._proc.wait()
    with pytest.raises(TrackingError, match="tracking process"):
        for step in range(200):
            tracker.log_metrics(step, {"loss": 1.0})
            time.sleep(0.01)
    tracker.fail("already failing")      # must not raise
    tracker.close()
