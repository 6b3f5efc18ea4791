"""`rbench demo`: the shrunken demo end to end (the committed spec with overrides), and its
argument errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "sweeps" / "demo.yaml"
# Seed 0 only, and a budget a trial spends in seconds: the same study, families and report.
SHRUNK = [
    "--name",
    "demo-shrunk",
    "--seeds",
    "0",
    "train.flops_budget=2e10",
    "train.eval_examples=500",
    "sweep.test_time.examples=100",
]


def rbench(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": ""}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def demo_families() -> set[str]:
    return set(yaml.safe_load(DEMO.read_text())["families"])


@pytest.mark.slow
def test_shrunken_demo_reports_every_family_with_no_failed_trial(tmp_path):
    runs = tmp_path / "runs"
    p = rbench("demo", "--runs-dir", str(runs), *SHRUNK, timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = runs / "sweeps" / "demo-shrunk" / "report"
    html = (report / "report.html").read_text()
    table = pd.read_csv(report / "runs.csv")
    families = demo_families()
    assert set(table["family"]) == families, table["family"].value_counts()
    assert len(table) == 9  # 3 TRM depths + HRM + looped + direct + 3 transformer sizes, one seed
    assert (table["status"] == "FINISHED").all(), table[["family", "status"]]
    for fam in families:
        assert fam in html
    # The console: the headline and where the report is, without MLflow's or runpy's chatter.
    out = p.stdout + p.stderr
    assert f"The report: {report / 'report.html'}" in out
    assert "rbench ui --runs-dir" in out
    assert "parity-24" in p.stdout and "which recursion" in p.stdout
    assert "Creating initial MLflow database tables" not in out
    assert "RuntimeWarning" not in out
    derived = yaml.safe_load((runs / "sweeps" / "demo-shrunk.spec.yaml").read_text())
    assert derived["seeds"] == [0] and derived["overrides"][-2:] == SHRUNK[4:6]
    assert derived["test_time"]["examples"] == 100


def test_demo_override_mistake_names_the_derived_spec_and_key(tmp_path):
    p = rbench("demo", "--runs-dir", str(tmp_path), "--name", "bad", "model.hiden=8", timeout=120)
    assert p.returncode == 2
    line = p.stderr.strip().splitlines()[-1]
    assert "bad.spec.yaml" in line and "model.hiden" in line, p.stderr
    assert not (tmp_path / "sweeps" / "bad").exists()  # nothing half-made


@pytest.mark.parametrize("args", [["--seeds", "a,b"], ["nokey"], ["sweep.nosuch.examples=3"]])
def test_demo_bad_arguments_exit_2_with_one_line(tmp_path, args):
    p = rbench("demo", "--runs-dir", str(tmp_path), *args, timeout=120)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "sweeps").exists()
