"""`rbench model summary`: the figures of the model a config builds, without training."""

from __future__ import annotations

import json

import torch

from benchmarks.dataset import DatasetMeta
from harness.cli import main
from harness.config import load_experiment
from models import build_model


def _write(tmp_path, text: str):
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return str(p)


SHAPE = ["--seq-len", "81", "--vocab-size", "11"]


def test_summary_json_matches_the_built_model(tmp_path, capsys):
    cfg = _write(tmp_path, "name: s\nmodel: {arch: trm}\ntask: {name: sudoku-extreme}\n")
    assert main(["model", "summary", cfg, "model.n=4", "--json", *SHAPE]) == 0
    s = json.loads(capsys.readouterr().out)
    exp = load_experiment(cfg, ["model.n=4"])
    with torch.device("meta"):
        model = build_model(exp.model, DatasetMeta("sudoku-extreme", 81, 11, 1))
    assert s["parameters"] == model.num_parameters() == 6_828_034
    assert s["effective_depth"] == 3 * 5 * 2
    assert s["train_flops_per_example_per_step"] == model.flops_per_example("train")
    assert s["inference_flops_per_example_per_step"] == model.flops_per_example("eval")
    assert s["prefix_len"] == 16 and s["model"]["n"] == 4


def test_summary_shows_the_resolved_transformer_size(tmp_path, capsys):
    cfg = _write(
        tmp_path,
        "model: {arch: transformer, match_params: 6828034, match_multiple: 4}\n"
        "task: {name: sudoku-extreme}\n",
    )
    assert main(["model", "summary", cfg, *SHAPE]) == 0
    out = capsys.readouterr().out
    assert "layers=8" in out and "27,275,266" in out and "matched to:" in out
    assert main(["model", "summary", cfg, "--json", *SHAPE]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["model"]["layers"] == 8 and s["match_target_parameters"] == 4 * 6_828_034


def test_summary_errors_name_the_file_and_key(tmp_path, capsys):
    cfg = _write(tmp_path, "model: {arch: trm}\ntask: {name: sudoku-extreme}\n")
    assert main(["model", "summary", cfg, "model.match_params=5", *SHAPE]) == 2
    err = capsys.readouterr().err
    assert "exp.yaml + overrides: model.match_params: unknown key" in err
    bad = _write(tmp_path, "model: {arch: transformer, hidden: 64, match_params: 10}\ntask: {name: x}\n")
    assert main(["model", "summary", bad, *SHAPE]) == 2
    assert "model.match_params" in capsys.readouterr().err


def test_summary_uses_the_task_registry_without_building(tmp_path, capsys):
    from benchmarks import registry

    tasks = registry.list_tasks()
    assert "sudoku-extreme" in tasks and "arc-agi-1" in tasks, tasks
    name = "maze-hard"  # a published task: its shape comes from the registry, nothing is fetched
    meta = registry.resolve(name).meta
    cfg = _write(
        tmp_path,
        f"runs_dir: {tmp_path / 'runs'}\nmodel: {{arch: hrm, hidden: 64, heads: 2}}\n"
        f"task: {{name: {name}}}\n",
    )
    assert main(["model", "summary", cfg, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["seq_len"], s["vocab_size"]) == (meta.seq_len, meta.vocab_size)
    assert not (tmp_path / "runs").exists()  # nothing was built or written
    with torch.device("meta"):
        assert s["parameters"] == build_model(load_experiment(cfg).model, meta).num_parameters()
