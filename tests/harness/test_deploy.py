"""deploy/: the KubeRay RayCluster / RayJob and the MLflow server examples parse, and carry what
rbench relies on (docs/distributed.md, "On a real cluster"): the head's `driver_slot`, one RWX
volume at the same path on every pod, MLflow's URI naming the MLflow Service, the Optuna storage
and the database password only from the Secret, the RayJob running `rbench sweep` on that
cluster, and no password in any file."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from harness.credentials import STORAGE_ENV, has_password

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _docs(name: str) -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return {d["kind"]: d for d in docs}


def _pods(cluster: dict) -> list[dict]:
    spec = cluster["spec"]
    return [spec["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in spec["workerGroupSpecs"]
    ]


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_raycluster_head_slot_shared_volume_and_env_from_the_secret():
    docs = _docs("raycluster.yaml")
    cluster, pvc = docs["RayCluster"], docs["PersistentVolumeClaim"]
    assert cluster["apiVersion"] == "ray.io/v1"
    head = cluster["spec"]["headGroupSpec"]["rayStartParams"]
    assert json.loads(json.loads(head["resources"]))["driver_slot"] > 0
    assert head["dashboard-host"] == "0.0.0.0"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    mlflow = _docs("mlflow.yaml")
    svc = mlflow["Service"]
    want_uri = f"http://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}"
    for pod in _pods(cluster):
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        (c,) = pod["containers"]
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        # `runs_dir: runs` under the working directory is the shared volume, on every pod
        assert claims == {"runs": pvc["metadata"]["name"]} and mounts == {"runs": f"{c['workingDir']}/runs"}
        env = _env(c)
        assert env["MLFLOW_TRACKING_URI"]["value"] == want_uri
        ref = env[STORAGE_ENV]["valueFrom"]["secretKeyRef"]
        assert "value" not in env[STORAGE_ENV] and ref["name"] == "rbench-db"
    assert {p["containers"][0]["image"] for p in _pods(cluster)} == {
        mlflow["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    }


def test_rayjob_runs_a_sweep_spec_of_this_repo_on_that_cluster():
    job = _docs("rayjob.yaml")["RayJob"]
    cluster = _docs("raycluster.yaml")["RayCluster"]
    assert job["apiVersion"] == "ray.io/v1"
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    cd, run = job["spec"]["entrypoint"].split("&&")
    workdir = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["workingDir"]
    assert shlex.split(cd) == ["cd", workdir]
    argv = shlex.split(run)
    assert argv[:2] == ["rbench", "sweep"] and (REPO / argv[2]).is_file(), argv
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    assert not any(re.search("PASSWORD|TOKEN|STORAGE", k) for k in env)


def test_mlflow_server_backend_has_no_password_and_takes_it_from_the_secret():
    docs = _docs("mlflow.yaml")
    dep, svc = docs["Deployment"], docs["Service"]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    args = c["command"] + c["args"]
    opt = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert args[:2] == ["mlflow", "server"]
    assert opt["--backend-store-uri"].startswith("postgresql://")
    assert not has_password(opt["--backend-store-uri"])
    assert _env(c)["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "rbench-db"
    assert opt["--host"] == "0.0.0.0" and int(opt["--port"]) == svc["spec"]["ports"][0]["targetPort"]
    assert svc["metadata"]["name"] in opt["--allowed-hosts"].split(",")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    # the artifact root is the experiments' own: runs/mlartifacts on the shared volume
    (mount,) = c["volumeMounts"]
    assert opt["--default-artifact-root"] == f"file://{mount['mountPath']}/mlartifacts"


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml", "mlflow.yaml"])
def test_no_literal_credentials(name):
    text = (DEPLOY / name).read_text()
    for url in re.findall(r"postgresql://[^\s'\"]+", text):
        assert not has_password(url) or ":PASSWORD@" in url, url  # PASSWORD: a comment's placeholder

    def walk(node):
        if isinstance(node, dict):
            if re.search("PASSWORD|SECRET|TOKEN|STORAGE", str(node.get("name", ""))):
                assert "value" not in node, node  # an env entry: from a Secret, not the file
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for doc in yaml.safe_load_all(text):
        walk(doc)
