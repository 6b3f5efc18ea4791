"""`rbench bench run`: suites are validated before anything runs, and the smoke suite's results
validate against the schema (a real run, in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.benchsuite import results
from harness.benchsuite.spec import load_suite, suite_names
from harness.cli import main
from harness.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_the_declared_suites_load():
    assert {"smoke", "nightly"} <= set(suite_names())
    nightly = load_suite("nightly")
    kinds = {b.kind for b, _, _ in nightly.benchmarks}
    assert kinds == {
        "matmul",
        "train_step",
        "counts",
        "data_build",
        "train_accuracy",
        "engine_overhead",
        "ray_overhead",
    }
    # every architecture x every task family, three seeds each
    from benchmarks.registry import resolve
    from harness.config import TaskConfig
    from models.registry import ARCH_NAMES

    acc = [(b, p) for b, p, _ in nightly.benchmarks if b.kind == "train_accuracy"]
    pairs = {
        (p.experiment["model"]["arch"], resolve(TaskConfig(**p.experiment["task"])).family) for _, p in acc
    }
    families = {
        yaml.safe_load(f.read_text())["generator"] for f in (REPO / "benchmarks" / "tasks").glob("*.yaml")
    }
    assert len(pairs) == len(ARCH_NAMES) * len(families) == len(acc)
    assert all(p.seeds == [0, 1, 2] for _, p in acc)


def _suite(tmp_path, benchmarks, **top) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"benchmarks": benchmarks, **top}))
    return str(path)


@pytest.mark.parametrize(
    "benchmarks, key",
    [
        ([{"name": "m", "kind": "nope"}], "benchmarks[0].kind"),
        ([{"name": "m", "kind": "matmul", "params": {"size": 3}}], "benchmarks[0].params.size"),
        ([{"name": "m", "kind": "matmul", "params": {"n": -1}}], "benchmarks[0].params.n"),
        ([{"name": "m", "kind": "matmul"}, {"name": "m", "kind": "matmul"}], "benchmarks[1].name"),
        (
            [
                {
                    "name": "c",
                    "kind": "counts",
                    "params": {"model": {"arch": "trm", "T": 0}, "task": {"name": "sudoku-4x4"}},
                }
            ],
            "benchmarks[0].params.model.T",
        ),
        (
            [
                {
                    "name": "c",
                    "kind": "counts",
                    "params": {"model": {"arch": "trm"}, "task": {"name": "no-task"}},
                }
            ],
            "benchmarks[0].params.task.name",
        ),
        (
            [
                {
                    "name": "t",
                    "kind": "train_accuracy",
                    "params": {
                        "experiment": {
                            "model": {"arch": "trm"},
                            "task": {"name": "sudoku-4x4"},
                            "train": {"stepz": 3},
                        }
                    },
                }
            ],
            "benchmarks[0].params.experiment.train.stepz",
        ),
    ],
)
def test_a_bad_suite_names_file_and_key(tmp_path, benchmarks, key):
    path = _suite(tmp_path, benchmarks)
    with pytest.raises(ConfigError) as e:
        load_suite(path)
    assert e.value.source == path and e.value.key == key, str(e.value)


def test_bad_suite_on_the_command_line_is_exit_2(tmp_path, capsys):
    assert main(["bench", "run", "--suite", "no-such-suite", "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "no suite 'no-such-suite'" in err and "smoke" in err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_smoke_suite_writes_results_that_validate(tmp_path):
    out = tmp_path / "smoke.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "bench", "run", "--suite", "smoke", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    jsonschema.Draft202012Validator(results.schema()).validate(doc)  # the schema itself, directly
    results.read(out)  # and the reader's extra checks
    suite = load_suite("smoke")
    assert doc["suite"] == "smoke" and doc["git"]["commit"] != "unknown"
    assert [b["name"] for b in doc["benchmarks"]] == [b.name for b, _, _ in suite.benchmarks]
    for (b, _, repeats), got in zip(suite.benchmarks, doc["benchmarks"]):
        for m in got["metrics"]:
            expected = {"count": None, "accuracy": 3}.get(m["kind"], repeats)
            if b.kind == "train_accuracy":
                expected = None if m["kind"] == "count" else 3
            if expected is not None:
                assert m["summary"]["n"] == expected, (b.name, m["name"])
    assert doc["machine"]["cpus"] >= 1 and doc["packages"]["torch"]
    assert wall < 180, f"the smoke suite took {wall:.0f} s (limit: 3 minutes)"


def test_only_runs_the_named_benchmarks(tmp_path, capsys):
    out = tmp_path / "counts.json"
    names = ["counts/trm-sudoku-4x4", "counts/hrm-sudoku-4x4"]
    assert main(["bench", "run", "--suite", "smoke", "--only", *names, "--out", str(out)]) == 0
    doc = results.read(out)
    assert [b["name"] for b in doc["benchmarks"]] == names
    assert [b["name"] for b in doc["config"]["benchmarks"]] == names
    m = results.metrics_by_key(doc)["counts/trm-sudoku-4x4/parameters"]
    assert m["kind"] == "count" and m["better"] == "equal" and m["samples"][0] > 0
    assert (
        main(["bench", "run", "--suite", "smoke", "--only", "nope", "--out", str(tmp_path / "x.json")]) == 2
    )
    assert "--only: no benchmark 'nope'" in capsys.readouterr().err
