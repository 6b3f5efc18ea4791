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
    assert run.info.artifact_uri.startswith(runs.resolve().as_uri())   # nothing in the repo tree
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
