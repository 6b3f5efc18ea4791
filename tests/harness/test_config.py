"""Config loading: typed values, overrides, and one clear error per kind of mistake."""

from __future__ import annotations

import pytest
import yaml

from harness.config import apply_overrides, load_experiment, parse_override
from harness.errors import ConfigError

BASE = {
    "name": "t",
    "seed": 3,
    "model": {"arch": "trm", "hidden": 64, "heads": 2, "T": 2, "n": 3},
    "task": {"name": "sudoku-4x4"},
    "train": {"steps": 10, "batch_size": 8, "lr": 1e-3},
}


def write(tmp_path, data, name="exp.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_valid_config_is_typed_and_defaults_filled(tmp_path):
    cfg = load_experiment(write(tmp_path, BASE))
    assert cfg.model.arch == "trm" and cfg.model.T == 2 and cfg.model.n == 3
    assert cfg.model.layers == 2 and cfg.model.puzzle_emb_len == 16  # TRM defaults
    assert cfg.train.lr == 1e-3 and cfg.engine.zero_stage == 0
    assert cfg.task.params == {}


def test_overrides_are_dotted_and_typed(tmp_path):
    cfg = load_experiment(
        write(tmp_path, BASE), ["train.lr=3e-4", "model.n=4", "task.train_size=50", "engine.precision=bf16"]
    )
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.model.n == 4
    assert cfg.task.params == {"train_size": 50}
    assert cfg.engine.precision == "bf16"


def test_override_can_switch_architecture(tmp_path):
    data = {**BASE, "model": {"arch": "trm", "hidden": 64, "heads": 2}}
    cfg = load_experiment(write(tmp_path, data), ["model.arch=transformer", "model.layers=4"])
    assert cfg.model.arch == "transformer" and cfg.model.layers == 4


def test_resolved_config_round_trips(tmp_path):
    cfg = load_experiment(write(tmp_path, BASE), ["task.train_size=50"])
    again = load_experiment(write(tmp_path, yaml.safe_load(cfg.to_yaml()), "again.yaml"))
    assert again == cfg


@pytest.mark.parametrize(
    "mutate, key, words",
    [
        (lambda d: d["train"].update(stepz=3), "train.stepz", "unknown key"),
        (lambda d: d["model"].update(L_cycles=3), "model.L_cycles", "unknown key"),  # HRM key on TRM
        (lambda d: d["train"].update(steps="many"), "train.steps", "integer"),
        (lambda d: d["train"].update(lr=-1.0), "train.lr", "greater than 0"),
        (lambda d: d["model"].update(arch="gpt"), "model", "arch"),
        (lambda d: d["model"].update(hidden=65), "model", "divisible"),
        (lambda d: d.pop("task"), "task", "missing"),
        (
            lambda d: d["train"].update(steps=5, lr_warmup_steps=10),
            "train.lr_warmup_steps",
            "must not exceed train.steps (5), got 10",
        ),
        (
            lambda d: (
                d["engine"].__setitem__("zero_stage", 4)
                if "engine" in d
                else d.update(engine={"zero_stage": 4})
            ),
            "engine.zero_stage",
            "less than or equal to 3",
        ),
    ],
)
def test_bad_values_name_file_key_and_expectation(tmp_path, mutate, key, words):
    import copy

    data = copy.deepcopy(BASE)
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as ei:
        load_experiment(path)
    msg = str(ei.value)
    assert str(path) in msg and key in msg and words in msg, msg
    assert "\n" not in msg


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_experiment(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  arch: trm\n  hidden: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: invalid YAML"):
        load_experiment(p)


def test_top_level_must_be_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_experiment(p)


def test_bad_override_syntax_and_target(tmp_path):
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_override("train.lr")
    with pytest.raises(ConfigError, match="train.lr: is not a section"):
        apply_overrides({"train": {"lr": 1.0}}, ["train.lr.x=1"])
    with pytest.raises(ConfigError, match=r"\+ overrides: train.steps"):
        load_experiment(write(tmp_path, BASE), ["train.steps=abc"])


def test_yaml_scalars_in_overrides():
    assert parse_override("a.b=true") == (["a", "b"], True)
    assert parse_override("a.b=null") == (["a", "b"], None)
    assert parse_override("a.b=1e-3") == (["a", "b"], 1e-3)
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a.b=hello") == (["a", "b"], "hello")


def test_words_stay_strings_in_overrides():
    assert parse_override("tracking.run_name=inf") == (["tracking", "run_name"], "inf")
    assert parse_override("tracking.run_name=nan") == (["tracking", "run_name"], "nan")
