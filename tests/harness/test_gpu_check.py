"""harness/bench/gpu_check.py in its reduced mode on the CPU: the same code path as on a GPU."""

from __future__ import annotations

import json
import math

import torch

from benchmarks.dataset import DatasetMeta
from harness.bench import gpu_check
from harness.config import load_experiment
from models import build_model


def test_reduced_check_reports_consistent_figures(capsys):
    assert gpu_check.main(["--reduced", "--json", "--steps", "2"]) == 0
    r = json.loads(capsys.readouterr().out)
    cfg = load_experiment(gpu_check.RECIPE, gpu_check.REDUCED)
    meta = DatasetMeta(task="sudoku", seq_len=81, vocab_size=11, num_puzzle_identifiers=1)
    with torch.device("meta"):
        model = build_model(cfg.model, meta)
    assert cfg.model.arch == "trm" and cfg.model.hidden == 64  # the paper recipe, made small
    assert r["parameters"] == model.num_parameters()
    assert (
        r["train_flops_per_step"]
        == model.flops_per_example("train") * r["batch_size"]
        == r["train_flops_per_step"]
    )
    assert r["dtype"] == "bfloat16" and r["steps"] == 2 and r["batch_size"] == 8
    assert math.isclose(r["examples_per_s"], r["batch_size"] / r["step_s"])
    assert math.isclose(r["model_flops_per_s"], r["train_flops_per_step"] / r["step_s"])
    assert math.isclose(r["mfu"], r["model_flops_per_s"] / r["matmul_flops_per_s"])
    assert 0 < r["mfu"] < 1.5 and r["matmul_flops_per_s"] > 0
    assert math.isfinite(r["loss_first"]) and math.isfinite(r["loss_last"])


def test_full_mode_uses_paper_width_and_batch():
    cfg = load_experiment(gpu_check.RECIPE, [])
    assert (cfg.model.hidden, cfg.model.T, cfg.model.n, cfg.train.batch_size) == (512, 3, 6, 768)
    assert cfg.train.optimizer == "adam_atan2"


def test_text_output_names_the_figures(capsys):
    assert gpu_check.main(["--reduced", "--steps", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "examples/s" in out and "MFU" in out and "bfloat16 matmul" in out
