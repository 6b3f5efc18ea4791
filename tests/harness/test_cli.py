"""`rbench run` as a user meets it: one-line errors with exit code 2, one MLflow run per job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import main

REPO = Path(__file__).resolve().parents[2]


def write_cfg(tmp_path, runs_dir, **extra):
    data = {
        "name": "cli",
        "seed": 0,
        "runs_dir": str(runs_dir),
        "model": {"arch": "transformer", "hidden": 32, "heads": 2, "layers": 2, "halt_max_steps": 2},
        "task": {"name": "sudoku-4x4", "train_size": 128, "test_size": 32},
        "train": {"steps": 4, "batch_size": 16, "lr": 1e-3, "log_every": 2},
    }
    data.update(extra)
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def mlflow_runs(runs_dir):
    from mlflow.tracking import MlflowClient

    db = runs_dir / "mlflow.db"
    if not db.exists():
        return []
    c = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exps = c.search_experiments()
    return [r for r in c.search_runs([e.experiment_id for e in exps])] if exps else []


@pytest.mark.parametrize(
    "case, overrides, words",
    [
        ("unknown key", ["train.stepz=3"], "train.stepz: unknown key"),
        ("wrong type", ["train.steps=lots"], "train.steps: input should be a valid integer"),
        ("unknown task param", ["task.colour=red"], "task.colour"),
        ("unknown task", ["task.name=chess"], "task.name"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_no_run(tmp_path, runs_dir, capsys, case, overrides, words):
    path = write_cfg(tmp_path, runs_dir)
    code = main(["run", str(path), *overrides])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and words in err and str(path) in err, err
    assert mlflow_runs(runs_dir) == []
    assert not any(runs_dir.glob("cli-*")), "no run folder for a config that never ran"


def _bad_csv(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("source,question,answer,rating\nx,1.3.,1234,0\n")  # a 4x4 grid has 16 cells
    return bad


@pytest.mark.parametrize(
    "case",
    ["cuda on a CPU machine", "match_params out of range", "malformed --from CSV", "unknown task parameter"],
)
def test_errors_found_before_training_leave_no_run(tmp_path, runs_dir, capsys, case):
    """Caught by the preflight (harness/preflight.py), before any MLflow run or run folder."""
    import torch

    path = write_cfg(tmp_path, runs_dir)
    args, named, key = {
        "cuda on a CPU machine": (["engine.device=cuda"], str(path), "engine.device"),
        "match_params out of range": (["model.match_params=10"], str(path), "model.match_params"),
        "malformed --from CSV": (["--from", str(_bad_csv(tmp_path))], str(tmp_path / "bad.csv"), ":2:"),
        "unknown task parameter": (["task.colour=red"], str(path), "task.colour"),
    }[case]
    if case.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["run", str(path), "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and named in err and key in err, err
    assert mlflow_runs(runs_dir) == []
    assert not any(runs_dir.glob("cli-*")), "no run folder for a config that never ran"


@pytest.mark.slow
def test_a_run_with_tracking_off_still_records_its_provenance(tmp_path, runs_dir, capsys):
    path = write_cfg(tmp_path, runs_dir, tracking={"enabled": False})
    assert main(["run", str(path), "--no-progress", "train.steps=2"]) == 0
    assert "(tracking disabled)" in capsys.readouterr().out
    run_dir = next(runs_dir.glob("cli-*"))
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert prov["git_commit"] and prov["packages"]["torch"] != "absent" and "argv" in prov
    assert not (runs_dir / "mlflow.db").exists()


def test_missing_file_exit_2(tmp_path, capsys):
    code = main(["run", str(tmp_path / "absent.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"rbench: error: {tmp_path / 'absent.yaml'}: file not found"


def test_cli_entry_point_exit_code(tmp_path):
    """The installed console script itself (a real process) exits 2 with one line."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(tmp_path / "x.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.strip().endswith("x.yaml: file not found")


@pytest.mark.slow
def test_run_logs_one_complete_mlflow_run(tmp_path, runs_dir, capsys):
    path = write_cfg(tmp_path, runs_dir)
    assert main(["run", str(path), "--no-progress", "train.eval_every=2"]) == 0
    out = capsys.readouterr().out
    runs = mlflow_runs(runs_dir)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and f"mlflow run: {run.info.run_id}" in out
    assert "run files: " in out and "exact_accuracy" in out
    p, t = run.data.params, run.data.tags
    assert p["model.arch"] == "transformer" and p["train.steps"] == "4" and p["seed"] == "0"
    assert int(p["num_parameters"]) > 0
    assert len(t["mlflow.source.git.commit"]) in (40, 7) or t["mlflow.source.git.commit"] == "unknown"
    assert t["rbench.checkpoint_dir"].endswith("step_00000004")
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=f"sqlite:///{runs_dir / 'mlflow.db'}")
    loss = c.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in loss] == [2, 4]
    flops = [m.value for m in c.get_metric_history(run.info.run_id, "train/flops_cumulative")]
    assert flops[1] == pytest.approx(2 * flops[0]) and flops[0] > 0
    evals = c.get_metric_history(run.info.run_id, "eval/exact_accuracy")
    assert [m.step for m in evals] == [2, 4]
    artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "provenance.json"} <= artifacts
    run_dir = next(runs_dir.glob("cli-*"))
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["arch"] == "transformer" and saved["train"]["steps"] == 4
    # resume continues the same MLflow run rather than starting another
    assert main(["run", str(path), "--no-progress", "--resume", "train.steps=6"]) == 0
    runs = mlflow_runs(runs_dir)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert [m.step for m in c.get_metric_history(run.info.run_id, "train/loss")] == [2, 4, 6]


def test_diverged_run_exits_1_and_is_marked_failed(tmp_path, runs_dir, capsys):
    path = write_cfg(tmp_path, runs_dir)
    code = main(["run", str(path), "--no-progress", "train.lr=1e30", "train.steps=30", "train.log_every=1"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "training diverged at step" in err, err
    runs = mlflow_runs(runs_dir)
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert "TrainingDiverged" in runs[0].data.tags["rbench.failure_reason"]


def test_unreachable_tracking_store_is_one_line_exit_1(tmp_path, runs_dir, capsys):
    """MLflow runs on a background thread; its failure still stops the run with a clear error."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    path = write_cfg(tmp_path, runs_dir, tracking={"uri": f"sqlite:///{blocker}/mlflow.db"})
    code = main(["run", str(path), "--no-progress", "train.log_every=1"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("rbench: error: MLflow (sqlite:///") and "run files:" in err, err


@pytest.mark.slow
def test_ui_serves_the_runs_on_localhost_and_ctrl_c_stops_everything(tmp_path, runs_dir):
    import signal
    import socket
    import urllib.request

    import optuna
    import psutil

    from harness.tracking import tags as T

    sweep = runs_dir / "sweeps" / "s"  # a sweep's study, as `rbench sweep` keeps it
    sweep.mkdir(parents=True)
    storage = f"sqlite:///{sweep / 'optuna.db'}"
    optuna.create_study(storage=storage, study_name="s-1").optimize(lambda t: t.suggest_float("x", 0, 1), 2)
    (sweep / "sweep.json").write_text(json.dumps({"storage": storage}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "ui",
            "--runs-dir",
            str(runs_dir),
            "--port",
            str(port),
            "--optuna",
        ],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "ui.log").open("w"),
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    children: list = []
    try:
        lines = [proc.stdout.readline().strip() for _ in range(2)]  # printed once each answers
        assert lines == [
            f"MLflow: http://127.0.0.1:{port}/",
            f"Optuna ({storage}): http://127.0.0.1:{port + 1}/",
        ], (lines, (tmp_path / "ui.log").read_text())
        for p in (port, port + 1):
            with urllib.request.urlopen(f"http://127.0.0.1:{p}/", timeout=10) as r:
                assert r.status == 200
        children[:] = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2, "the servers run in child processes"
        listening = {
            c.laddr
            for c in psutil.net_connections("tcp")
            if c.status == "LISTEN" and c.laddr.port in (port, port + 1)
        }
        assert {a.ip for a in listening} == {"127.0.0.1"}, listening
        exp = mlflow_client(runs_dir).get_experiment_by_name("rbench")
        assert exp.tags[T.EXPERIMENT_KIND_TAG] == "custom_model_development"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, [p.pid for p in alive]
    finally:
        for p in [proc, *children]:
            if p.poll() is None if p is proc else p.is_running():
                p.kill()


def mlflow_client(runs_dir):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{runs_dir / 'mlflow.db'}")
