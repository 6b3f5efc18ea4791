"""Cluster mode on real services (tests/harness/services.py), all on 127.0.0.1: a throwaway
PostgreSQL (initdb / pg_ctl), an MLflow tracking server backed by it with a local artifact root,
and a Ray cluster of a head and a worker node started with `ray start` and joined by address.

- A two-family sweep (2 families x 2 seeds, two trials at once, one per node) with its Optuna study
  in PostgreSQL (RBENCH_OPTUNA_STORAGE, password included) and MLflow at
  MLFLOW_TRACKING_URI=http://127.0.0.1:PORT, run by `rbench sweep SPEC --address HEAD`: the
  driver is SIGKILLed mid-sweep and `--resume` finishes it, with every trial and MLflow child run
  exactly once. The database password is then searched for in every MLflow param, tag and
  artifact of the sweep's runs, in the driver's console, the sweep folder and Ray's session logs.
- Optuna heartbeats: a trial whose process is SIGKILLed goes stale, is failed and retried (same
  point and seed), the searcher hands the retry out, a live trial is left alone, and the killed
  trial's old Tune trial would not train it again.

PostgreSQL comes from the Debian package `postgresql` (.ci/run installs it); without it the
module is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import services as S
from test_sweep import REPO, child_runs, kill_driver_mid_trial, optuna_trials, write_sweep

pytestmark = pytest.mark.slow
STEPS = 240
FAMILIES = {
    "trm": {"fixed": {"model.arch": "trm"}, "space": {"model.n": [1]}},
    "looped": {"fixed": {"model.arch": "looped"}, "space": {"model.loops": [1]}},
}


@pytest.fixture(scope="module")
def postgres():
    if S.pg_bindir() is None:
        msg = "PostgreSQL's initdb not found (Debian: apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    pg = S.Postgres().start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def cluster(postgres):
    logs = Path(tempfile.mkdtemp(prefix="rbench-services-"))
    t0 = time.time()
    pg = postgres
    ml = ray = None
    try:
        # the password reaches the MLflow server only through libpq's PGPASSWORD
        ml = S.MlflowServer(
            pg.url("mlflow", password=False),
            logs / "artifacts-default",
            {**os.environ, "PGPASSWORD": pg.password, "MLFLOW_DISABLE_TELEMETRY": "true"},
            logs / "mlflow.log",
        )
        # every node (so every trial actor, for its heartbeats) and the driver have the storage
        # URL with its password in their environment, as from a Kubernetes secret
        env = {
            **os.environ,
            **S.ray_auth_env(),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
            "RBENCH_OPTUNA_STORAGE": pg.url("optuna", password=True),
            "MLFLOW_TRACKING_URI": ml.uri,
        }
        env.pop("RAY_ADDRESS", None)
        ray = S.RayCluster(env, logs / "ray-start.log")
        ray.wait_for_nodes(2)
        ml.wait()
        print(f"[cluster] PostgreSQL, MLflow server and 2 Ray nodes up in {time.time() - t0:.1f}s")
        yield {"pg": pg, "mlflow": ml, "ray": ray, "env": env, "logs": logs}
    finally:
        if ray is not None:
            ray.stop()
        if ml is not None:
            ml.stop()
        shutil.rmtree(logs, ignore_errors=True)


def test_sweep_on_postgres_mlflow_server_and_ray_nodes_resumes_and_leaks_no_password(
    cluster, tmp_path, experiment_file, monkeypatch
):
    from mlflow.tracking import MlflowClient

    from harness.sweep import load_spec, status

    env = cluster["env"]
    for key in ("RBENCH_OPTUNA_STORAGE", "MLFLOW_TRACKING_URI"):  # this process reads both too
        monkeypatch.setenv(key, env[key])
    spec = write_sweep(
        tmp_path,
        experiment_file,
        name="cluster",
        families=FAMILIES,
        seeds=[0, 1],
        space={},
        train={"steps": STEPS, "checkpoint_every": 10, "log_every": 10},
    )
    sweep_dir = load_spec(spec).sweep_dir
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(spec), "--address", cluster["ray"].address]
    victim = kill_driver_mid_trial(cmd, sweep_dir, tmp_path / "driver.log", env=env)
    state = json.loads((sweep_dir / "sweep.json").read_text())
    pg = cluster["pg"]
    assert state["storage"] == f"postgresql://rbench:***@127.0.0.1:{pg.port}/optuna"
    assert state["tracking_uri"] == cluster["mlflow"].uri
    interrupted = status(sweep_dir)
    assert interrupted["counts"]["interrupted"] >= 1 and interrupted["counts"]["done"] >= 1

    resumed = subprocess.run(
        cmd + ["--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=400
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    # Optuna (PostgreSQL): 4 trials, each (family, seed) once, all complete
    expected = {(f, s) for f in FAMILIES for s in (0, 1)}
    trials = optuna_trials(sweep_dir)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert {(t.user_attrs["family"], t.user_attrs["seed"]) for t in trials} == expected
    assert 10 <= trials[victim].user_attrs["resumed_from_step"] < STEPS
    assert trials[victim].user_attrs["step"] == STEPS
    # MLflow (the server): one child run per trial, by the sweep's own identifiers
    runs = child_runs(sweep_dir)
    assert sorted(int(r.data.tags["rbench.trial_number"]) for r in runs) == [0, 1, 2, 3]
    assert {(r.data.tags["rbench.family"], int(r.data.tags["rbench.seed"])) for r in runs} == expected
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags["mlflow.parentRunId"] == state["parent_run_id"] for r in runs)
    client = MlflowClient(cluster["mlflow"].uri)
    assert client.get_run(state["parent_run_id"]).info.status == "FINISHED"
    # the trials ran on both Ray nodes
    nodes = {
        json.loads(p.read_text())["node_id"]
        for p in sweep_dir.glob("trials/trial_*/workers/rank0/worker.json")
    }
    assert len(nodes) == 2

    # the database password: in no MLflow param, tag or artifact, console, sweep file or Ray log
    secret = pg.password.encode()
    leaks = []
    for run in [*runs, client.get_run(state["parent_run_id"])]:
        rid = run.info.run_id
        for kind, values in (("param", run.data.params), ("tag", run.data.tags)):
            leaks += [f"{rid} {kind} {k}" for k, v in values.items() if pg.password in str(v)]
        local = Path(client.download_artifacts(rid, "", str(tmp_path / "artifacts" / rid)))
        assert any(local.rglob("*")), f"run {rid} has no artifacts to search"
        leaks += [f"{rid} artifact {p}" for p in local.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert any(r.data.params for r in runs) and "config.yaml" in {
        a.path for a in client.list_artifacts(runs[0].info.run_id)
    }
    files = [tmp_path / "driver.log", cluster["logs"] / "mlflow.log"]
    files += [p for root in (sweep_dir, cluster["ray"].temp_dir) for p in root.rglob("*")]
    leaks += [str(p) for p in files if p.is_file() and not p.is_socket() and secret in _read(p)]
    leaks += ["resume console"] if pg.password in resumed.stdout + resumed.stderr else []
    assert not leaks, leaks
    assert "done 4" in resumed.stdout


def _read(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError:
        return b""


def test_trial_whose_process_vanished_is_failed_and_retried_by_heartbeat(postgres, monkeypatch, tmp_path):
    """Two trials of a grid on PostgreSQL beat through `Heartbeat` (what every trial's process
    runs): one in a subprocess that is SIGKILLed, one in this process. After the grace period the
    searcher's next suggestion fails the killed one and hands out its retry (same point, seed
    and family; Optuna's `failed_trial` names it); the live one stays RUNNING."""
    import optuna

    from harness.credentials import mask
    from harness.sweep.heartbeat import Heartbeat, superseded
    from harness.sweep.search import StudySearcher
    from harness.sweep.spec import SweepSpec
    from harness.sweep.state import open_storage, write_state
    from harness.sweep.summary import status

    url = postgres.url("optuna", password=True)
    monkeypatch.setenv("RBENCH_OPTUNA_STORAGE", url)
    masked = mask(url)
    spec = SweepSpec.model_validate(
        {"name": "beat", "experiment": "x.yaml", "space": {"train.lr": [1e-3, 3e-3, 1e-2]}, "seeds": [0, 1]}
    )
    name = f"beat-{os.getpid()}-{time.time_ns()}"
    storage = open_storage(masked, heartbeat_s=1, grace_s=3)
    optuna.create_study(storage=storage, study_name=name)
    searcher = StudySearcher(spec, study_name=name, storage_url=masked)
    searcher._cache["storage"] = storage  # the short grace period: seconds, not a minute
    searcher._cache["study"] = optuna.load_study(study_name=name, storage=storage)
    first, second = searcher.suggest("tune-a"), searcher.suggest("tune-b")
    a, b = first["_rbench"], second["_rbench"]

    code = (
        "import sys, time; from harness.sweep.heartbeat import Heartbeat;"
        "Heartbeat(sys.argv[1], int(sys.argv[2]), interval=1).__enter__(); print('beating', flush=True);"
        "time.sleep(600)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, masked, str(a["optuna_trial_id"])],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "beating"
        with Heartbeat(masked, b["optuna_trial_id"], interval=1):
            time.sleep(1)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            time.sleep(5)  # past the 3 s grace period for the killed trial only
            third = searcher.suggest("tune-c")
            trials = {t.number: t for t in searcher.study.get_trials(deepcopy=False)}
            assert trials[a["number"]].state.name == "FAIL"
            assert trials[b["number"]].state.name == "RUNNING"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    retry = trials[third["_rbench"]["number"]]
    assert retry.system_attrs["failed_trial"] == a["number"]
    assert (third["family"], third["seed"], third["params"]) == (
        first["family"],
        first["seed"],
        first["params"],
    )
    assert retry.user_attrs["grid_index"] == trials[a["number"]].user_attrs["grid_index"]
    assert superseded(masked, name, a["optuna_trial_id"]) == retry.number
    assert superseded(masked, name, b["optuna_trial_id"]) is None
    # `rbench sweep status` says why the old trial failed
    sweep_dir = tmp_path / "sweeps" / "beat"
    sweep_dir.mkdir(parents=True)
    write_state(sweep_dir, {"sweep_id": name, "storage": masked, "num_trials": 6, "driver": {}})
    row = next(r for r in status(sweep_dir)["trials"] if r["number"] == a["number"])
    assert row["state"] == "failed" and f"retried as trial {retry.number}" in row["reason"]
