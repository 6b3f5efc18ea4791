"""Fixtures for the benchmarks tests: a fresh cache folder per test; never any network."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def cache_root(tmp_path):
    d = tmp_path / "data"
    return d


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch):
    """Tests never reach a hub: make the optional client unimportable."""
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
