"""Sweeps on the simulated two-node cluster: Ray Tune trials driven by a persisted Optuna study,
one MLflow child run per trial (1-worker trials train inside their Tune actor), surviving killed
training processes and a killed driver.

Two sweeps run:
- `grid` (module-scoped fixture): two 1-worker trials at once (one per node): a good learning rate
  and 1e30 (its loss goes NaN). While the good trial trains, its training process (the Tune trial
  actor) is SIGKILLed once Tune registered its first checkpoint; EMA is on, and the final
  checkpoint (module, EMA, optimizer) is compared with an undisturbed run's.
- the killed-driver test: a grid over two families x 2 seeds; the `rbench sweep` driver process is
  SIGKILLed mid-sweep, then `rbench sweep --resume` finishes the same study.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GOOD_LR, NAN_LR = 3e-3, 1e30
# Trials long enough that a kill lands while they still train: Tune registers a checkpoint only
# when its driver processes the report, which can lag the trial by seconds; a trial of 60-100
# steps (2-4 s on an idle core) was sometimes over before either kill below could land.
STEPS_KILLDRIVER = 240
STEPS_GRID = 240


def write_sweep(root: Path, experiment_file, *, name: str, space: dict, train: dict, **spec) -> Path:
    experiment_file(root / "experiments" / "tiny.yaml", root / "runs", train=train)
    data = {
        "name": name,
        "experiment": "experiments/tiny.yaml",
        "space": space,
        "seeds": [0],
        "sampler": {"type": "grid", "seed": 0},
        "max_concurrency": 2,
        "resources": {
            "workers": 1,
            "cpus_per_worker": 1,
            "max_failures": 2,
            "trial_driver": {"driver_slot": 1},
        },
        **spec,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tune_results(trial_dir: Path) -> list[dict]:
    """The results Tune's driver has processed for this trial (its result.json). A 1-worker trial
    reports each checkpoint to Tune, which registers it as it logs the result: what a rerun of
    the trial resumes from."""
    path = trial_dir.parents[1] / "tune" / trial_dir.name / "result.json"
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # being written
    return out


def registered_checkpoint(trial_dir: Path, step: int) -> bool:
    return any(r.get("step") == step for r in tune_results(trial_dir))


def trial_over(trial_dir: Path) -> bool:
    """The trial reported its outcome (finished or failed)."""
    from harness.outcome import OUTCOME_KEY

    return any(OUTCOME_KEY in r for r in tune_results(trial_dir))


def child_runs(sweep_dir: Path) -> list:
    from harness.tracking.sweep import trial_runs

    state = json.loads((sweep_dir / "sweep.json").read_text())
    return trial_runs(state["tracking_uri"], state["experiment"], state["sweep_id"])


def optuna_trials(sweep_dir: Path) -> list:
    import optuna

    from harness.sweep import open_storage

    state = json.loads((sweep_dir / "sweep.json").read_text())
    study = optuna.load_study(study_name=state["sweep_id"], storage=open_storage(state["storage"]))
    return study.get_trials(deepcopy=False)


def kill_driver_mid_trial(cmd: list[str], sweep_dir: Path, log_path: Path, *, env=None, timeout=300) -> int:
    """Start `rbench sweep` (`cmd`) and SIGKILL it once one trial is done and another is still
    mid-training with a registered checkpoint at step 10. Returns the interrupted trial's number;
    fails the test if the sweep never gets there."""
    victim = None
    with open(log_path, "w") as log:
        driver = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        try:
            while time.time() < deadline and victim is None:
                assert driver.poll() is None, log_path.read_text()[-3000:]
                if (sweep_dir / "sweep.json").is_file():
                    trials = optuna_trials(sweep_dir)
                    if any(t.state.name == "COMPLETE" for t in trials):
                        for t in trials:
                            trial_dir = sweep_dir / "trials" / f"trial_{t.number:05d}"
                            if (
                                t.state.name == "RUNNING"
                                and registered_checkpoint(trial_dir, 10)
                                and not trial_over(trial_dir)
                            ):
                                # at once: the trial trains on, and must still be mid-training
                                os.kill(driver.pid, signal.SIGKILL)
                                victim = t.number
                                break
                time.sleep(0.1)
        finally:
            if victim is None:
                driver.kill()
            driver.wait(timeout=60)
    if victim is None:
        pytest.fail("the sweep did not reach the point to kill its driver:\n" + log_path.read_text()[-3000:])
    return victim


class WorkerKiller(threading.Thread):
    """Watches the sweep's trial folders; SIGKILLs the training process (rank 0: for a 1-worker
    trial, the Tune trial's own actor) of the first trial that registered a checkpoint at
    `at_step` (and has not finished), and notes every worker's node."""

    def __init__(self, sweep_dir: Path, at_step: int):
        super().__init__(daemon=True)
        self.sweep_dir, self.at_step = sweep_dir, at_step
        self.killed: dict | None = None
        self.nodes: dict[str, set] = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for trial in sorted((self.sweep_dir / "trials").glob("trial_*")):
                for info_file in trial.glob("workers/rank*/worker.json"):
                    try:
                        info = json.loads(info_file.read_text())
                    except (OSError, ValueError):
                        continue
                    self.nodes.setdefault(trial.name, set()).add(info["node_id"])
                if (
                    self.killed is None
                    and registered_checkpoint(trial, self.at_step)
                    and not trial_over(trial)
                ):
                    info = json.loads((trial / "workers" / "rank0" / "worker.json").read_text())
                    os.kill(info["pid"], signal.SIGKILL)
                    self.killed = {"trial": trial.name, "pid": info["pid"], "time": time.time()}
            time.sleep(0.05)


@pytest.fixture(scope="module")
def grid(ray_cluster, tmp_path_factory, experiment_file):
    from harness.engine import train as engine_train
    from harness.sweep import load_spec, run_sweep

    root = tmp_path_factory.mktemp("grid")
    steps = STEPS_GRID
    spec = write_sweep(
        root,
        experiment_file,
        name="grid",
        space={"train.lr": {"type": "categorical", "values": [GOOD_LR, NAN_LR]}},
        train={"steps": steps, "checkpoint_every": 10, "log_every": 10, "ema_decay": 0.9},
    )
    sweep_dir = load_spec(spec).sweep_dir
    killer = WorkerKiller(sweep_dir, at_step=10)
    killer.start()
    t0 = time.time()
    summary = run_sweep(spec)
    elapsed = time.time() - t0
    killer.stop.set()
    killer.join()

    # The undisturbed run of the killed trial's config and seed: the engine in this process.
    sw = load_spec(spec)
    cfg = sw.trial_config("default", {"train.lr": GOOD_LR}, 0, sweep_id="ref", number=0)
    reference = engine_train(
        cfg.model_copy(update={"runs_dir": str(root / "ref-runs")}), root / "reference", progress=False
    )
    print(f"[grid] sweep took {elapsed:.1f}s; killed {killer.killed}")
    return {
        "summary": summary,
        "sweep_dir": sweep_dir,
        "killer": killer,
        "reference": reference,
        "reference_dir": root / "reference",
        "steps": steps,
        "log_every": 10,
    }


@pytest.mark.slow
def test_grid_trials_ran_on_both_nodes(grid):
    nodes = set().union(*grid["killer"].nodes.values())
    assert len(grid["killer"].nodes) == 2 and len(nodes) == 2


@pytest.mark.slow
def test_every_trial_recorded_once(grid):
    trials = optuna_trials(grid["sweep_dir"])
    assert sorted(t.number for t in trials) == [0, 1]
    assert sorted(t.params["train.lr"] for t in trials) == [GOOD_LR, NAN_LR]
    runs = child_runs(grid["sweep_dir"])
    assert sorted(int(r.data.tags["rbench.trial_number"]) for r in runs) == [0, 1]
    state = json.loads((grid["sweep_dir"] / "sweep.json").read_text())
    assert state["sweep_id"].startswith("grid-")
    for r in runs:
        assert r.data.tags["mlflow.parentRunId"] == state["parent_run_id"]
        assert r.data.tags["rbench.sweep_id"] == state["sweep_id"]
        assert r.data.tags["rbench.sweep_name"] == "grid"
        assert r.data.tags["rbench.seed"] == "0"
        assert r.data.tags["rbench.optuna_trial_id"]
        assert r.info.artifact_uri.startswith(grid["sweep_dir"].parents[1].as_uri())
    counts = grid["summary"]["counts"]
    assert counts["done"] == 1 and counts["failed"] == 1
    assert counts["running"] == counts["pending"] == counts["interrupted"] == 0


@pytest.mark.slow
def test_nan_trial_is_failed_with_its_reason_and_the_sweep_completed(grid):
    bad = next(t for t in optuna_trials(grid["sweep_dir"]) if t.params["train.lr"] == NAN_LR)
    assert bad.state.name == "FAIL"
    assert "TrainingDiverged" in bad.user_attrs["failure_reason"]
    run = next(
        r for r in child_runs(grid["sweep_dir"]) if r.data.tags["rbench.trial_number"] == str(bad.number)
    )
    assert run.info.status == "FAILED"
    assert "diverged" in run.data.tags["rbench.failure_reason"]
    row = next(r for r in grid["summary"]["trials"] if r["number"] == bad.number)
    assert row["state"] == "failed" and "diverged" in row["reason"]


@pytest.mark.slow
def test_killed_worker_trial_resumes_from_checkpoint_and_matches_undisturbed_run(grid):
    killed = grid["killer"].killed
    assert killed is not None, "no worker was killed: the trial finished too fast"
    good = next(t for t in optuna_trials(grid["sweep_dir"]) if t.params["train.lr"] == GOOD_LR)
    assert killed["trial"] == f"trial_{good.number:05d}"
    assert good.state.name == "COMPLETE"
    # a new worker process took over from a checkpoint (not from step 0)
    trial_dir = grid["sweep_dir"] / "trials" / killed["trial"]
    new_pid = json.loads((trial_dir / "workers" / "rank0" / "worker.json").read_text())["pid"]
    assert new_pid != killed["pid"]
    assert good.user_attrs["resumed_from_step"] >= 10
    ref = grid["reference"]
    assert good.user_attrs["step"] == ref.step
    assert good.user_attrs["flops"] == pytest.approx(ref.flops)
    run = next(
        r for r in child_runs(grid["sweep_dir"]) if r.data.tags["rbench.trial_number"] == str(good.number)
    )
    assert run.info.status == "FINISHED"
    for key in ("exact_accuracy", "token_accuracy"):
        assert run.data.metrics[f"eval/{key}"] == pytest.approx(ref.metrics[key], abs=1e-6)
    assert good.values[0] == pytest.approx(ref.metrics["exact_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_killed_worker_trial_ends_with_the_undisturbed_runs_tensors_and_logs_each_step_once(grid):
    """The killed-and-restarted trial's final checkpoint holds the same module weights, EMA and
    optimizer state as the undisturbed run's (float tolerance), and its MLflow history has each
    logged step of train/loss exactly once (the rerun neither repeats nor skips a step)."""
    from sweep_checks import assert_same_checkpoint, metric_steps

    from harness import checkpoint

    killed = grid["killer"].killed
    assert killed is not None, "no worker was killed: the trial finished too fast"
    trial_dir = grid["sweep_dir"] / "trials" / killed["trial"]
    final = checkpoint.latest(trial_dir / "workers" / "rank0")
    want = checkpoint.latest(grid["reference_dir"])
    assert final.name == want.name == f"step_{grid['steps']:08d}"
    assert_same_checkpoint(final, want)
    number = str(int(killed["trial"].split("_")[1]))
    run = next(r for r in child_runs(grid["sweep_dir"]) if r.data.tags["rbench.trial_number"] == number)
    state = json.loads((grid["sweep_dir"] / "sweep.json").read_text())
    every = grid["log_every"]
    assert metric_steps(state["tracking_uri"], run.info.run_id, "train/loss") == list(
        range(every, grid["steps"] + 1, every)
    )


@pytest.mark.slow
def test_killed_driver_resumes_two_families_without_duplicates_or_losses(
    ray_cluster, tmp_path, experiment_file
):
    """A grid over two families (TRM, looped transformer) x 2 seeds. SIGKILL `rbench sweep` once
    one trial is done and another is mid-training with a checkpoint; `--resume` finishes: exactly
    points x seeds trials in Optuna and as MLflow child runs, each tagged with its family, and the
    interrupted trial continued from its checkpoint."""
    from harness.sweep import load_spec, status

    families = {
        "trm": {"fixed": {"model.arch": "trm"}, "space": {"model.n": [1]}},
        "looped": {"fixed": {"model.arch": "looped"}, "space": {"model.loops": [1]}},
    }
    # One trial at a time, so the kill lands deterministically: the first trial is done, the
    # second is mid-training with a registered checkpoint.
    spec = write_sweep(
        tmp_path,
        experiment_file,
        name="killdriver",
        max_concurrency=1,
        families=families,
        seeds=[0, 1],
        space={},
        train={"steps": STEPS_KILLDRIVER, "checkpoint_every": 10, "log_every": 10},
    )
    sweep_dir = load_spec(spec).sweep_dir
    expected = {(f, s) for f in families for s in (0, 1)}
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(spec), "--address", ray_cluster.address]
    victim = kill_driver_mid_trial(cmd, sweep_dir, tmp_path / "driver.log")
    interrupted = status(sweep_dir)
    assert interrupted["counts"]["interrupted"] == 1 and interrupted["counts"]["done"] >= 1
    assert not interrupted["driver_alive"]

    resumed = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    final = status(sweep_dir)
    assert final["counts"]["done"] == 4 and len(final["trials"]) == 4
    trials = optuna_trials(sweep_dir)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert {(t.user_attrs["family"], t.user_attrs["seed"]) for t in trials} == expected
    interrupted_trial = trials[victim]
    steps = STEPS_KILLDRIVER
    assert interrupted_trial.user_attrs["step"] == steps
    assert 10 <= interrupted_trial.user_attrs["resumed_from_step"] < steps
    runs = child_runs(sweep_dir)
    assert sorted(int(r.data.tags["rbench.trial_number"]) for r in runs) == [0, 1, 2, 3]
    assert {(r.data.tags["rbench.family"], int(r.data.tags["rbench.seed"])) for r in runs} == expected
    for r in runs:
        number = int(r.data.tags["rbench.trial_number"])
        assert r.data.tags["rbench.family"] == trials[number].user_attrs["family"]
        assert r.data.tags["rbench.model"] == r.data.tags["rbench.family"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert "done 4" in resumed.stdout
