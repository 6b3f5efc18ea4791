"""A sweep whose spec ends each trial with a test-time grid (`test_time:`): every finished trial
gets a child run holding one point per (steps, samples), files in its trial folder, and the
sweep's report draws the depth / breadth curves from them."""

from __future__ import annotations

import json

import pytest
import yaml


@pytest.mark.slow
def test_a_sweep_trial_ends_with_its_test_time_grid_and_the_report_draws_it(
    ray_cluster, tmp_path, experiment_file
):
    from harness.sweep import load_spec, run_sweep
    from harness.tracking import client
    from harness.tracking.sweep import trial_runs
    from harness.tracking import tags as T
    from reports import build_report

    experiment_file(
        tmp_path / "experiments" / "tiny.yaml",
        tmp_path / "runs",
        train={"steps": 12, "checkpoint_every": 0, "eval_examples": 16},
    )
    spec = {
        "name": "tt",
        "experiment": "experiments/tiny.yaml",
        "space": {"train.lr": [3e-3]},
        "seeds": [0],
        "sampler": {"type": "grid", "seed": 0},
        "max_concurrency": 1,
        "resources": {"workers": 1, "cpus_per_worker": 1, "trial_driver": {"driver_slot": 1}},
        "test_time": {"steps": [1, 2], "samples": [1, 2], "noise": 0.1, "examples": 16},
    }
    path = tmp_path / "tt.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    summary = run_sweep(path)
    assert summary["counts"]["done"] == 1, summary

    sw = load_spec(path)
    state = json.loads((sw.sweep_dir / "sweep.json").read_text())
    uri, experiment = state["tracking_uri"], state["experiment"]
    (trial,) = trial_runs(uri, experiment, state["sweep_id"])
    children = [
        r
        for r in client(uri).search_runs(
            [trial.info.experiment_id], f"tags.`{T.PARENT_TAG}` = '{trial.info.run_id}'"
        )
        if r.data.tags.get(T.KIND_TAG) == "test_time"
    ]
    assert len(children) == 1
    keys = children[0].data.metrics
    for s in (1, 2):
        for k in (1, 2):
            assert f"testtime/s{s}_k{k}/exact_accuracy" in keys
            assert f"testtime/s{s}_k{k}/inference_flops_per_example" in keys
    run_dir = sw.sweep_dir / "trials" / "trial_00000"
    assert list((run_dir / "testtime").glob("*.json")), "the grid's files are in the trial folder"

    files = build_report(
        uri,
        tmp_path / "report",
        experiment=experiment,
        sweep=state["sweep_id"],
        n_boot=20,
        log_to_parent=False,
    )
    assert any(p.name.endswith("-test-time.png") for p in files.figures), files.figures
    assert "test-time depth and breadth" in files.html.read_text()
