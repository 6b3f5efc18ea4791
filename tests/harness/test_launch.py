"""Ray Train jobs (`rbench run --workers N`): 2 DeepSpeed workers (gloo) on two simulated nodes."""

from __future__ import annotations

import json

import pytest

from harness import checkpoint
from harness.config import load_experiment
from harness.errors import ConfigError, UserError


@pytest.mark.slow
def test_two_worker_job_trains_and_logs_exactly_one_mlflow_run(ray_cluster, tmp_path, experiment_file):
    from harness.launch import launch
    from harness.tracking import client, resolve_uri

    runs = tmp_path / "runs"
    cfg = load_experiment(experiment_file(tmp_path / "exp.yaml", runs))
    run_dir = runs / "job"
    result = launch(cfg, run_dir=run_dir, workers=2, progress=False)

    assert result.step == cfg.train.steps
    assert result.flops > 0 and result.num_parameters > 0
    assert {"exact_accuracy", "token_accuracy"} <= set(result.metrics)
    # Ray Train's storage is the run folder's checkpoints/: both ranks' files merged per step.
    last = checkpoint.latest(run_dir)
    assert last == result.checkpoint_dir == run_dir / "checkpoints" / f"step_{cfg.train.steps:08d}"
    assert {p.name for p in last.glob("carry_rank*.pt")} == {"carry_rank0.pt", "carry_rank1.pt"}
    # The two workers ran on the two nodes (one logical CPU each).
    infos = [json.loads((run_dir / "workers" / f"rank{r}" / "worker.json").read_text()) for r in (0, 1)]
    assert len({i["node_id"] for i in infos}) == 2

    uri = resolve_uri(cfg.model_copy(update={"runs_dir": str(runs)}))
    c = client(uri)
    exp = c.get_experiment_by_name(cfg.tracking.experiment)
    runs_found = c.search_runs([exp.experiment_id])
    assert len(runs_found) == 1, [r.info.run_name for r in runs_found]
    run = runs_found[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["rbench.workers"] == "2"
    assert run.info.artifact_uri.startswith(runs.resolve().as_uri())  # nothing in the repo tree
    # rank 0 logged the training curve (every log_every steps) and the final evaluation
    losses = c.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses] == list(range(5, cfg.train.steps + 1, 5))
    assert run.data.metrics["eval/exact_accuracy"] == pytest.approx(result.metrics["exact_accuracy"])
    # ... and the per-example correctness the report's intervals need
    assert "eval/correctness.npz" in {a.path for a in c.list_artifacts(run.info.run_id, "eval")}


def test_launch_rejects_bad_worker_counts_before_starting_ray(tmp_path, experiment_file):
    from harness.launch import launch

    cfg = load_experiment(experiment_file(tmp_path / "exp.yaml", tmp_path / "runs"))
    with pytest.raises(ConfigError, match="--workers"):
        launch(cfg, run_dir=tmp_path / "r", workers=0)
    with pytest.raises(ConfigError, match="--gpus-per-worker"):
        launch(cfg, run_dir=tmp_path / "r", workers=1, gpus_per_worker=-1)


def test_launch_refuses_to_restart_a_ray_run_without_resume(tmp_path, experiment_file):
    from harness.launch import launch

    cfg = load_experiment(experiment_file(tmp_path / "exp.yaml", tmp_path / "runs"))
    run_dir = tmp_path / "runs" / "job"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "checkpoint_manager_snapshot.json").write_text("{}")
    with pytest.raises(UserError, match="--resume"):
        launch(cfg, run_dir=run_dir, workers=1)


def test_ray_temp_dir_stays_in_runs_unless_sockets_would_not_fit():
    from pathlib import Path

    from harness.launch import ray_temp_dir

    assert ray_temp_dir(Path("/srv/runs")) == "/srv/runs/ray"
    assert ray_temp_dir(Path("/srv") / ("x" * 80)).startswith("/tmp/rbench-ray-")


def _module_weights(step_dir):
    """The model parameters in a DeepSpeed checkpoint (ZeRO 0: rank 0's model-states file)."""
    import torch

    from harness.checkpoint import DS_TAG

    files = sorted((step_dir / DS_TAG).glob("mp_rank_00_model_states.pt"))
    assert files, f"no model states under {step_dir}"
    return torch.load(files[0], map_location="cpu", weights_only=False)["module"]


@pytest.mark.slow
def test_killed_worker_resumes_each_step_logged_once_and_matches_an_undisturbed_job(
    ray_cluster, tmp_path, experiment_file
):
    """SIGKILL rank 0 once the step-10 checkpoint is registered: Ray restarts the worker group
    from it, steps 11.. are re-trained; train/loss has every step exactly once and the final
    weights equal an undisturbed job's."""
    import os
    import signal
    import threading
    import time

    import torch

    from harness.launch import launch
    from harness.tracking import client, resolve_uri

    runs = tmp_path / "runs"
    train = {"steps": 30, "log_every": 1, "checkpoint_every": 10}
    cfg = load_experiment(experiment_file(tmp_path / "exp.yaml", runs, train=train))
    job = runs / "killed"
    killed: dict = {}

    def killer():
        snap = job / "checkpoints" / "checkpoint_manager_snapshot.json"
        while not killed:
            try:
                names = [
                    r.get("checkpoint_dir_name") for r in json.loads(snap.read_text())["checkpoint_results"]
                ]
                info = json.loads((job / "workers" / "rank0" / "worker.json").read_text())
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
                continue
            if "step_00000010" in names:
                os.kill(info["pid"], signal.SIGKILL)
                killed.update(info)
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    result = launch(cfg, run_dir=job, workers=2, progress=False)
    t.join(timeout=1)
    assert killed, "no worker was killed"
    new_pid = json.loads((job / "workers" / "rank0" / "worker.json").read_text())["pid"]
    assert new_pid != killed["pid"] and result.step == 30

    c = client(resolve_uri(cfg.model_copy(update={"runs_dir": str(runs)})))
    (run,) = c.search_runs([c.get_experiment_by_name(cfg.tracking.experiment).experiment_id])
    assert run.info.status == "FINISHED" and int(run.data.tags["rbench.attempts"]) >= 2
    steps = sorted(m.step for m in c.get_metric_history(run.info.run_id, "train/loss"))
    assert steps == list(range(1, 31)), f"{len(steps)} points for 30 steps"

    reference = launch(cfg, run_dir=runs / "undisturbed", workers=2, progress=False)
    mine, ref = _module_weights(result.checkpoint_dir), _module_weights(reference.checkpoint_dir)
    assert mine.keys() == ref.keys()
    for name in ref:
        torch.testing.assert_close(mine[name], ref[name], rtol=1e-5, atol=1e-6, msg=name)
