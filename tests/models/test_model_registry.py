"""The architectures are listed once (models/registry.py), their configs live beside them, and no
import runs from models/ or benchmarks/ up into harness/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from models.registry import ARCHS, ARCH_NAMES, RECURSIVE_ARCHS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", ["models", "benchmarks"])
def test_lower_layers_never_import_the_harness(package):
    offenders = []
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(REPO)}: {n}" for n in names if n == "harness" or n.startswith("harness.")
            ]
    assert not offenders, offenders


def test_each_config_lives_beside_its_model_and_the_registry_drives_the_config():
    from harness.config import validate
    from harness.errors import ConfigError

    for name, arch in ARCHS.items():
        assert arch.config.__module__ == arch.core.__module__, name  # nanoGPT: config beside model
        cfg = validate({"model": {"arch": name}, "task": {"name": "sudoku-4x4"}}, "t")
        assert type(cfg.model) is arch.config
        with pytest.raises(ConfigError) as ei:  # dotted path without the union's tag
            validate({"model": {"arch": name, "no_such_key": 1}, "task": {"name": "sudoku-4x4"}}, "t")
        assert ei.value.key == "model.no_such_key"
    assert set(RECURSIVE_ARCHS) == set(ARCH_NAMES) - {"transformer"}


def test_the_old_import_paths_still_work():
    import benchmarks.errors
    import harness.errors
    import harness.model_config
    import models.trm

    assert harness.errors.ConfigError is benchmarks.errors.ConfigError
    assert harness.model_config.TRMConfig is models.trm.TRMConfig
