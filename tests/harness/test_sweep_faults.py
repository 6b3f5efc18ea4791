"""A sweep driver killed inside its most fragile window: right after Optuna's ask() handed out a
trial and before anything else (its parameters, Tune's trial table, Tune's experiment-state save)
recorded it. The kill is deterministic: the test-only hook RBENCH_FAULT_KILL_AFTER_ASK (see
harness/sweep/search.py) makes the `rbench sweep` process SIGKILL itself there. `--resume` must
then adopt the orphaned Optuna trial (nothing lost or duplicated in Optuna or MLflow), leave the
finished trial's checkpoints untouched, and train the interrupted trial to the same tensors as an
undisturbed run of its config.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_checks import assert_same_checkpoint, file_fingerprints, metric_steps
from test_sweep import REPO, child_runs, optuna_trials, write_sweep

from harness.sweep.search import FAULT_KILL_AFTER_ASK

LRS = [3e-3, 1e-2]
STEPS, EVERY = 20, 10


def finished_checkpoints(sweep_dir: Path, number: int) -> dict:
    """Fingerprints of a trial's checkpoint files: Tune's copies and the trial folder's own."""
    name = f"trial_{number:05d}"
    out = {}
    for root in (sweep_dir / "tune" / name, sweep_dir / "trials" / name / "workers" / "rank0"):
        for d in sorted(root.glob("checkpoint_*")) + sorted(root.glob("checkpoints/step_*")):
            out.update({f"{d.relative_to(sweep_dir)}/{k}": v for k, v in file_fingerprints(d).items()})
    return out


@pytest.mark.slow
def test_driver_killed_right_after_ask_resumes_without_loss_duplicate_or_drift(
    ray_cluster, tmp_path, experiment_file
):
    from harness import checkpoint
    from harness.engine import train as engine_train
    from harness.sweep import load_spec

    # one trial at a time: trial 0 finishes, then the driver dies as ask() returns trial 1
    spec = write_sweep(
        tmp_path,
        experiment_file,
        name="killask",
        max_concurrency=1,
        space={"train.lr": {"type": "categorical", "values": LRS}},
        train={"steps": STEPS, "checkpoint_every": EVERY, "log_every": EVERY, "ema_decay": 0.9},
    )
    sw = load_spec(spec)
    sweep_dir = sw.sweep_dir
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(spec), "--address", ray_cluster.address]
    first = subprocess.run(
        cmd,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, FAULT_KILL_AFTER_ASK: "1"},
    )
    assert first.returncode == -signal.SIGKILL, first.stdout[-3000:] + first.stderr[-3000:]
    before = {t.number: t for t in optuna_trials(sweep_dir)}
    assert sorted(before) == [0, 1]
    assert before[0].state.name == "COMPLETE" and before[1].state.name == "RUNNING"
    assert not (sweep_dir / "trials" / "trial_00001").exists()  # it never started
    kept = finished_checkpoints(sweep_dir, 0)
    assert any("/ds/" in k for k in kept) and any("tune/" in k for k in kept), sorted(kept)

    resumed = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    # the finished trial's checkpoints: byte for byte and mtime the same
    assert finished_checkpoints(sweep_dir, 0) == kept
    # Optuna and MLflow: each trial once, each grid point once, all complete
    trials = optuna_trials(sweep_dir)
    assert sorted(t.number for t in trials) == [0, 1]
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(t.params["train.lr"] for t in trials) == LRS
    runs = child_runs(sweep_dir)
    assert sorted(int(r.data.tags["rbench.trial_number"]) for r in runs) == [0, 1]
    assert all(r.info.status == "FINISHED" for r in runs)
    state = json.loads((sweep_dir / "sweep.json").read_text())
    for r in runs:
        assert metric_steps(state["tracking_uri"], r.info.run_id, "train/loss") == list(
            range(EVERY, STEPS + 1, EVERY)
        )
    # the interrupted trial trained as an undisturbed run of its config and seed
    interrupted = trials[1]
    cfg = sw.trial_config(
        "default", {"train.lr": interrupted.params["train.lr"]}, 0, sweep_id="ref", number=1
    )
    ref = engine_train(
        cfg.model_copy(update={"runs_dir": str(tmp_path / "ref-runs")}),
        tmp_path / "reference",
        progress=False,
    )
    assert interrupted.user_attrs["step"] == ref.step == STEPS
    assert_same_checkpoint(
        checkpoint.latest(sweep_dir / "trials" / "trial_00001" / "workers" / "rank0"),
        checkpoint.latest(tmp_path / "reference"),
    )


def test_rerun_from_an_older_checkpoint_logs_no_step_twice(tmp_path, experiment_file):
    """A trial's process can die after it logged step N but before its checkpoint N was stored;
    the rerun resumes from the checkpoint before N and trains step N again. Its MLflow history
    must still hold each step once (and the final metrics must still be logged). Here the
    "killed" attempt ran to step 20 and the rerun is handed its step-10 checkpoint: the engine
    in this process, through the same session code a 1-worker trial runs (no Ray needed)."""
    import shutil

    from ray.train import Checkpoint

    from harness import checkpoint
    from harness.config import load_experiment
    from harness.launch import run_session
    from harness.tracking import MlflowTracker, resolve_uri

    cfg = load_experiment(
        experiment_file(
            tmp_path / "tiny.yaml",
            tmp_path / "runs",
            train={"steps": 2 * EVERY, "checkpoint_every": EVERY, "log_every": EVERY // 2},
        )
    )
    tracker = MlflowTracker(cfg, run_dir=tmp_path / "run")
    tracker.start()
    run_id, uri = tracker.run_id, resolve_uri(cfg)
    session = {
        "cfg": cfg.to_dict(),
        "scratch_dir": str(tmp_path / "run" / "workers"),
        "mlflow_run_id": run_id,
        "fallback_resume": None,
        "progress": False,
        "extra_metrics": {},
    }
    reports: list[dict] = []

    def report(metrics, checkpoint=None, **_):
        reports.append(metrics)

    first = run_session(session, rank=0, get_checkpoint=lambda: None, report=report)
    assert first.step == 2 * EVERY
    older = tmp_path / "stored" / f"step_{EVERY:08d}"  # what the store kept: step 10 only
    shutil.copytree(checkpoint.step_dir(tmp_path / "run" / "workers" / "rank0", EVERY), older)
    rerun = run_session(
        session, rank=0, get_checkpoint=lambda: Checkpoint.from_directory(str(older)), report=report
    )
    assert rerun.step == 2 * EVERY and rerun.resumed_from_step == EVERY
    every = EVERY // 2
    for key in ("train/loss", "train/lr"):
        assert metric_steps(uri, run_id, key) == list(range(every, 2 * EVERY + 1, every)), key
    assert rerun.metrics == pytest.approx(first.metrics)
