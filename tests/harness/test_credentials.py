"""Credentials from the environment only (harness/credentials.py): a spec holding a database
password is refused with one line naming the file and key, URLs are masked where recorded (sweep
storage URL, MLflow params / tags / config artifacts) and unmasked only from the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.credentials import STORAGE_ENV, has_password, mask, redact, unmask
from harness.errors import UserError

REPO = Path(__file__).resolve().parents[2]
URL = "postgresql://optuna:s3cr3t-pw@db.example:5432/optuna"


def test_mask_and_unmask_round_trip(monkeypatch):
    assert has_password(URL) and mask(URL) == "postgresql://optuna:***@db.example:5432/optuna"
    assert not has_password(mask(URL))
    for plain in ("postgresql://optuna@db:5432/optuna", "sqlite:////tmp/o.db", "http://mlflow:5000", "runs"):
        assert not has_password(plain) and mask(plain) == plain and unmask(plain) == plain
    assert mask("http://u:pw@mlflow:5000/x") == "http://u:***@mlflow:5000/x"
    nested = redact({"a": [URL, 1], "b": {"c": URL}, "d": "x"})
    assert "s3cr3t-pw" not in repr(nested) and nested["d"] == "x" and nested["a"][1] == 1
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    with pytest.raises(UserError, match=STORAGE_ENV):
        unmask(mask(URL))
    monkeypatch.setenv(STORAGE_ENV, URL.replace("db.example", "other"))
    with pytest.raises(UserError, match="is not the storage"):
        unmask(mask(URL))
    monkeypatch.setenv(STORAGE_ENV, URL)
    assert unmask(mask(URL)) == URL


def test_a_password_in_the_spec_is_refused_naming_file_and_key(tmp_path, experiment_file):
    experiment_file(tmp_path / "exp.yaml", tmp_path / "runs")
    spec = tmp_path / "s.yaml"
    spec.write_text(
        yaml.safe_dump({"name": "s", "experiment": "exp.yaml", "space": {"train.lr": [1e-3]}, "storage": URL})
    )
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli", "sweep", str(spec)], cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(spec) in lines[0] and "storage" in lines[0], r.stderr
    assert "PGPASSWORD" in lines[0] and STORAGE_ENV in lines[0]
    assert "s3cr3t-pw" not in r.stderr + r.stdout


def test_storage_from_the_environment_is_recorded_masked(tmp_path, experiment_file, monkeypatch):
    from harness.sweep import load_spec

    experiment_file(tmp_path / "exp.yaml", tmp_path / "runs")
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "experiment": "exp.yaml", "space": {"train.lr": [1e-3]}}))
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert load_spec(spec).storage_url.startswith("sqlite:///")
    monkeypatch.setenv(STORAGE_ENV, URL)
    assert load_spec(spec).storage_url == mask(URL)


def test_mlflow_params_tags_and_config_artifact_hold_no_password(tmp_path, experiment_file):
    from harness.config import load_experiment
    from harness.tracking import MlflowTracker, client, resolve_uri

    cfg = load_experiment(
        experiment_file(tmp_path / "exp.yaml", tmp_path / "runs", tracking={"tags": {"db": URL}})
    )
    tracker = MlflowTracker(cfg, run_dir=tmp_path / "run")
    tracker.start()
    tracker.log_params({"storage": URL})
    tracker.set_tags({"storage": URL})
    tracker.log_artifacts({"spec.yaml": {"storage": URL}})
    run = client(resolve_uri(cfg)).get_run(tracker.run_id)
    assert run.data.params["storage"] == mask(URL) and run.data.tags["storage"] == mask(URL)
    assert run.data.tags["db"] == mask(URL)
    local = Path(client(resolve_uri(cfg)).download_artifacts(tracker.run_id, "", str(tmp_path / "art")))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"spec.yaml", "config.yaml"}
    assert not [p for p in files if b"s3cr3t-pw" in p.read_bytes()]
