"""The GPU-scale sweeps (sweeps/paper/): they load on the paper recipes, each family builds the
model the comment promises (effective depth, parameter count), and the published-data overrides
the header documents are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from benchmarks.registry import resolve
from harness.sweep import load_spec
from models import build_model

PAPER = Path(__file__).resolve().parents[2] / "sweeps" / "paper"


def built(sw, family):
    cfg = sw.trial_config(family, {}, 0, sweep_id=sw.spec.name, number=0)
    with torch.device("meta"):
        return cfg, build_model(cfg.model, resolve(cfg.task).meta)


def test_depth_grid_is_the_papers_table_3():
    sw = load_spec(PAPER / "trm-depth-sudoku.yaml")
    depths = {}
    for family in sw.spec.family_specs:
        cfg, model = built(sw, family)
        assert cfg.model.arch == "trm" and cfg.model.mlp_t  # TRM-MLP, the paper's Sudoku model
        depths[family] = (model.effective_depth(), model.num_parameters())
    assert sorted(d for d, _ in depths.values()) == [7, 20, 42, 72, 84]
    assert all(f == f"depth-{d}" for f, (d, _) in depths.items())
    assert depths["depth-42"][1] == 5_028_866  # the published TRM-MLP count
    assert sw.num_trials == 15  # 5 depths x 3 seeds


def test_trm_hrm_transformer_on_one_recipe():
    sw = load_spec(PAPER / "sudoku-trm-hrm-transformer.yaml")
    params = {f: built(sw, f)[1].num_parameters() for f in sw.spec.family_specs}
    assert params == {
        "trm": 6_828_034,
        "hrm": 27_275_266,
        "direct": 27_275_266,
        "transformer": 27_275_266,
    }
    direct, looped = built(sw, "direct")[0], built(sw, "transformer")[0]
    assert direct.model.halt_max_steps == 1 and looped.model.halt_max_steps == 16
    assert {built(sw, f)[0].train.steps for f in sw.spec.family_specs} == {65_104}  # one recipe
    assert sw.num_trials == 12


@pytest.mark.parametrize("name", ["trm-depth-sudoku", "sudoku-trm-hrm-transformer"])
def test_stand_in_by_default_published_files_by_override(tmp_path, name):
    sw = load_spec(PAPER / f"{name}.yaml")
    assert sw.base.task.name == "sudoku-extreme-gen"
    assert sw.base.tracking.tags["rbench.data_published"] == "sudoku-extreme"
    data = yaml.safe_load((PAPER / f"{name}.yaml").read_text())
    data["experiment"] = str((PAPER / data["experiment"]).resolve())
    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text("source,question,answer,rating\n")
    data["overrides"] = [
        "task.stand_in=null",
        "task.source=csv",
        f"task.train_path={tmp_path / 'train.csv'}",
        f"task.test_path={tmp_path / 'test.csv'}",
    ]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    published = load_spec(spec)
    assert published.base.task.name == "sudoku-extreme"
    assert published.base.task.params["source"] == "csv"
