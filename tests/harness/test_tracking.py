"""harness/tracking: one interface, the helper process, runs never left RUNNING, steps once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from harness.config import validate
from harness.tracking import MlflowTracker, NullTracker, Outcome, ProcessTracker, TrackingError, open_tracker
from harness.tracking import tags as T

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_cfg(runs_dir, **tracking):
    return validate(
        {
            "name": "track",
            "runs_dir": str(runs_dir),
            "model": {"arch": "transformer", "hidden": 32, "heads": 2, "layers": 1},
            "task": {"name": "sudoku-4x4"},
            "tracking": tracking,
        },
        "test",
    )


def client(runs_dir):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{runs_dir.resolve() / 'mlflow.db'}")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_every_logged_step_arrives_and_the_run_finishes(runs_dir, monkeypatch):
    monkeypatch.setenv("RBENCH_TRACKER_FLUSH_S", "0.05")  # exercise flushing mid-run too
    tracker = open_tracker(make_cfg(runs_dir), run_dir=runs_dir / "r")
    assert isinstance(tracker, ProcessTracker)
    try:
        tracker.start()
        for step in range(1, 41):
            tracker.log_metrics(step, {"loss": 1.0 / step, "exact_accuracy": step / 40})
            if step % 10 == 0:
                time.sleep(0.06)
        tracker.log_metrics(40, {"exact_accuracy": 0.5}, prefix=T.EVAL_PREFIX)
        tracker.finish(
            Outcome.finished(
                SimpleNamespace(
                    num_parameters=123, effective_depth=4, checkpoint_dir=runs_dir / "ck", step=40
                )
            )
        )
    finally:
        tracker.close()
    run = client(runs_dir).get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.params["num_parameters"] == "123"
    loss = client(runs_dir).get_metric_history(tracker.run_id, "train/loss")
    assert [m.step for m in sorted(loss, key=lambda m: m.step)] == list(range(1, 41))
    assert sorted(loss, key=lambda m: m.step)[3].value == pytest.approx(0.25)
    assert run.data.metrics["eval/exact_accuracy"] == 0.5
    assert run.data.tags[T.FINAL_STEP_TAG] == "40"
    assert json.loads((runs_dir / "r" / T.RUN_FILE).read_text())["run_id"] == tracker.run_id


def test_a_killed_tracking_process_is_reported_not_ignored(runs_dir):
    tracker = open_tracker(make_cfg(runs_dir), run_dir=runs_dir / "r")
    tracker.start()
    tracker._proc.kill()
    tracker._proc.wait()
    with pytest.raises(TrackingError, match="tracking process"):
        for step in range(200):
            tracker.log_metrics(step, {"loss": 1.0})
            time.sleep(0.01)
    tracker.fail("already failing")  # must not raise
    tracker.close()


def test_tracking_off_is_the_null_tracker_and_no_helper_falls_back_in_process(runs_dir, monkeypatch):
    off = open_tracker(make_cfg(runs_dir, enabled=False), run_dir=runs_dir / "r")
    assert isinstance(off, NullTracker) and off.start() is None
    off.log_metrics(1, {"loss": 1.0})
    off.finish(Outcome.failed("x"))
    assert not (runs_dir / "mlflow.db").exists()

    def no_fork(*a, **k):
        raise OSError("fork not allowed")

    monkeypatch.setattr(subprocess, "Popen", no_fork)
    inproc = open_tracker(make_cfg(runs_dir), run_dir=runs_dir / "r")
    assert isinstance(inproc, MlflowTracker)
    inproc.start()
    rid = inproc.run_id
    inproc.finish(Outcome.killed("stopped by hand"))
    run = client(runs_dir).get_run(rid)
    assert run.info.status == "KILLED" and run.data.tags[T.STOP_TAG] == "stopped by hand"


def test_experiment_is_a_training_experiment_with_a_description(runs_dir):
    from harness.tracking import ensure_experiment

    uri = f"sqlite:///{runs_dir.resolve() / 'mlflow.db'}"
    c = client(runs_dir)
    old = c.create_experiment("made-before")  # an experiment from an older rbench
    assert ensure_experiment(uri, "made-before") == old
    for name in ("made-before", "fresh"):
        ensure_experiment(uri, name)
        tags = c.get_experiment_by_name(name).tags
        assert tags[T.EXPERIMENT_KIND_TAG] == "custom_model_development"
        assert tags[T.NOTE_TAG] == T.EXPERIMENT_DESCRIPTION


def test_a_reopened_run_logs_each_step_once(runs_dir):
    """Resuming from a checkpoint at step 6 re-trains steps 7..10, logged before the crash."""
    first = MlflowTracker(make_cfg(runs_dir), run_dir=runs_dir / "r")
    first.start()
    rid = first.run_id
    for step in range(1, 11):
        first.log_metrics(step, {"loss": float(step)})
    first.log_metrics(10, {"exact_accuracy": 0.1}, prefix=T.EVAL_PREFIX)
    again = MlflowTracker(make_cfg(runs_dir), run_dir=runs_dir / "r", run_id=rid)
    again.start()
    for step in range(7, 16):
        again.log_metrics(step, {"loss": float(step), "lr": 0.1})
    again.log_metrics(15, {"exact_accuracy": 0.2}, prefix=T.EVAL_PREFIX)
    c = client(runs_dir)
    assert sorted(m.step for m in c.get_metric_history(rid, "train/loss")) == list(range(1, 16))
    assert sorted(m.step for m in c.get_metric_history(rid, "train/lr")) == list(range(7, 16))
    assert sorted(m.step for m in c.get_metric_history(rid, "eval/exact_accuracy")) == [10, 15]
    assert c.get_run(rid).data.tags[T.ATTEMPT_TAG] == "2"


@pytest.mark.slow
def test_a_sigkilled_training_run_leaves_running_with_the_reason(tmp_path, runs_dir, experiment_file):
    """`rbench run` in a subprocess, SIGKILLed mid-training: its helper ends the run."""
    path = experiment_file(
        tmp_path / "exp.yaml", runs_dir, train={"steps": 100000, "log_every": 1, "checkpoint_every": 0}
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            str(path),
            "--no-progress",
            "--run-dir",
            str(runs_dir / "victim"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        c = client(runs_dir)

        def training():
            f = runs_dir / "victim" / T.RUN_FILE
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode())
            if not f.is_file():
                return None
            rid = json.loads(f.read_text())["run_id"]
            return rid if c.get_metric_history(rid, "train/loss") else None

        rid = wait_for(training, 240, "the run logs its first losses")
        assert c.get_run(rid).info.status == "RUNNING"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        run = wait_for(
            lambda: (r := c.get_run(rid)).info.status != "RUNNING" and r, 30, "the run leaves RUNNING"
        )
        print(f"ended {time.monotonic() - killed:.1f} s after SIGKILL")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run.info.status == "FAILED"
    assert f"pid {proc.pid}" in run.data.tags[T.FAILURE_TAG]
    assert "exited before ending it" in run.data.tags[T.FAILURE_TAG]


SWEEP_DRIVER = """
import os, signal, sys
from pathlib import Path
from harness.config import validate
from harness.tracking.sweep import start_parent_run
cfg = validate({"name": "sw", "runs_dir": sys.argv[1], "task": {"name": "sudoku-4x4"},
                "model": {"arch": "transformer", "hidden": 32, "heads": 2, "layers": 1}}, "test")
rid = start_parent_run(cfg, sweep_id="sw-1", sweep_name="sw", sweep_dir=Path(sys.argv[1]) / "sw",
                       spec={"name": "sw"}, run_id=sys.argv[2] if len(sys.argv) > 2 else None)
print(rid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_dead_sweep_driver_leaves_its_parent_run_killed_and_resume_reopens_it(runs_dir):
    env = {**os.environ, "PYTHONPATH": REPO}
    c = client(runs_dir)

    def driver(*run_id):
        out = subprocess.run(
            [sys.executable, "-c", SWEEP_DRIVER, str(runs_dir), *run_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == -signal.SIGKILL, out.stderr
        return out.stdout.split()[0]

    rid = driver()
    run = wait_for(
        lambda: (r := c.get_run(rid)).info.status != "RUNNING" and r, 30, "the parent run leaves RUNNING"
    )
    assert run.info.status == "KILLED" and "--resume" in run.data.tags[T.STOP_TAG]
    assert run.data.tags[T.ROLE_TAG] == "sweep"
    # --resume: the same parent run, RUNNING again, and watched again
    assert driver(rid) == rid
    run = wait_for(
        lambda: (r := c.get_run(rid)).info.status != "RUNNING" and r,
        30,
        "the reopened parent run leaves RUNNING",
    )
    assert run.info.status == "KILLED" and run.data.tags[T.ATTEMPT_TAG] == "2"


WORKER = """
import os, signal, sys
from harness.config import validate
from harness.tracking import MlflowTracker, open_tracker
cfg = validate({"name": "w", "runs_dir": sys.argv[1], "task": {"name": "sudoku-4x4"},
                "model": {"arch": "transformer", "hidden": 32, "heads": 2, "layers": 1}}, "test")
driver = MlflowTracker(cfg, run_dir=sys.argv[1] + "/job")       # the Ray driver's part
driver.start()
print(driver.run_id, flush=True)
worker = open_tracker(cfg, run_dir=sys.argv[1] + "/rank0", run_id=driver.run_id, record_id=False,
                      owns_run=False)
worker.start()
for step in range(1, 51):
    worker.log_metrics(step, {"loss": 1.0 / step})
os.kill(os.getpid(), signal.SIGKILL)        # before the helper has answered (or written) them
"""


@pytest.mark.slow
def test_a_killed_workers_helper_writes_what_it_was_sent_and_leaves_the_run_to_the_driver(runs_dir):
    env = {**os.environ, "PYTHONPATH": REPO, "RBENCH_TRACKER_FLUSH_S": "60"}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(runs_dir)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    rid = out.stdout.split()[0]
    c = client(runs_dir)
    wait_for(
        lambda: len(c.get_metric_history(rid, "train/loss")) == 50,
        30,
        "all 50 steps written after the worker died",
    )
    time.sleep(1.5)
    assert c.get_run(rid).info.status == "RUNNING"  # the driver ends it (Ray retries workers)
    assert not (runs_dir / "rank0" / T.RUN_FILE).exists()
