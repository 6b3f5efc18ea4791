"""Registry: tasks are YAML data; resolve validates parameters and knows shapes without building."""

from __future__ import annotations

import pytest

from benchmarks import registry
from benchmarks.registry import list_tasks, resolve
from harness.config import TaskConfig
from harness.errors import ConfigError


def test_registry_lists_the_paper_and_small_tasks():
    names = set(list_tasks())
    for want in (
        "sudoku-4x4",
        "sudoku-6x6",
        "sudoku-9x9",
        "sudoku-extreme",
        "sudoku-extreme-gen",
        "maze-hard",
        "maze-hard-gen",
        "arc-agi-1",
        "arc-agi-2",
        "parity-24",
        "addition-8x6",
        "pointer-16x12",
        "rule110-24x8",
    ):
        assert want in names


@pytest.mark.parametrize(
    "name,seq,vocab",
    [
        ("sudoku-extreme", 81, 11),
        ("sudoku-4x4", 16, 6),
        ("maze-hard", 900, 6),
        ("arc-agi-1", 900, 12),
        ("parity-24", 24, 4),
    ],
)
def test_resolve_gives_shapes_without_building(monkeypatch, name, seq, vocab):
    spec = resolve(name)
    monkeypatch.setattr(type(spec.family), "build", lambda *a: pytest.fail("built data"))
    spec = resolve(TaskConfig(name=name))
    assert (spec.seq_len, spec.vocab_size) == (seq, vocab)
    assert spec.num_puzzle_identifiers >= 1
    assert spec.config()["name"] == name


def test_arc_identifier_count_is_tasks_times_variants():
    spec = resolve({"name": "arc-agi-1", "augmentations": 9})
    # 400 training + 400 evaluation tasks, 10 variants each, + the blank identifier 0
    assert spec.num_puzzle_identifiers == 1 + 800 * 10


def test_overrides_and_validation():
    spec = resolve(TaskConfig(name="sudoku-4x4", train_size=123, data_seed=7))
    assert spec.params.train_size == 123 and spec.params.data_seed == 7
    with pytest.raises(ConfigError) as e:
        resolve(TaskConfig(name="sudoku-4x4", trian_size=5))
    assert e.value.key == "task.trian_size" and "unknown" in str(e.value)
    with pytest.raises(ConfigError) as e:
        resolve({"name": "sudoku-4x4", "train_size": "many"})
    assert e.value.key == "task.train_size"
    with pytest.raises(ConfigError) as e:
        resolve({"name": "sudoku-4x4", "size": 5})
    assert e.value.key == "task.size"
    with pytest.raises(ConfigError) as e:
        resolve({"name": "no-such-task"})
    assert e.value.key == "task.name" and "sudoku-4x4" in str(e.value)
    with pytest.raises(ConfigError) as e:
        resolve({"name": "sudoku-4x4", "source": "csv"})
    assert e.value.key == "task.path"


def test_arc2_training_with_arc1_evaluation_is_refused_unless_allowed():
    bad = {"name": "arc-agi-1", "train_sets": ["arc-agi-1/training", "arc-agi-2/training"]}
    with pytest.raises(ConfigError) as e:
        resolve(bad)
    assert e.value.key == "task.train_sets" and "376" in str(e.value)
    assert resolve({**bad, "allow_overlap": True}).meta.extra["overlap_allowed"] is True


def test_every_declared_task_resolves():
    for name in list_tasks():
        spec = resolve(name)
        assert spec.meta.task == name and spec.metric


def test_bad_declaration_file_names_the_file(tmp_path):
    (tmp_path / "x.yaml").write_text("generator: benchmarks.sudoku:Sudoku\ntasks:\n  a: {colour: 3}\n")
    with pytest.raises(ConfigError) as e:
        registry._load_declarations(tmp_path)
    assert str(tmp_path / "x.yaml") in str(e.value) and "tasks.a.colour" in str(e.value)
