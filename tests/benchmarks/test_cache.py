"""The dataset cache: keyed by task config + data seed, no-op rebuilds, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import build, cache
from benchmarks.registry import resolve
from harness.errors import DataError

SMALL = {"name": "sudoku-4x4", "train_size": 40, "test_size": 10}


def test_rebuild_with_same_key_is_a_no_op(cache_root, monkeypatch):
    spec = resolve(SMALL)
    first = build(spec, cache_root)
    d = cache.cache_dir(spec, cache_root)
    stamp = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    monkeypatch.setattr(type(spec.family), "build", lambda *a: pytest.fail("rebuilt a cached task"))
    again = build(resolve(SMALL), cache_root)
    assert {p.name: p.stat().st_mtime_ns for p in d.iterdir()} == stamp
    for s in ("train", "test"):
        np.testing.assert_array_equal(first[s].inputs, again[s].inputs)
        np.testing.assert_array_equal(first[s].labels, again[s].labels)
        assert first[s].meta == again[s].meta == spec.meta
    manifest = json.loads((d / cache.MANIFEST).read_text())
    assert manifest["task"]["train_size"] == 40 and manifest["sizes"] == {"train": 40, "test": 10}


def test_key_follows_config_and_data_seed(cache_root):
    a = resolve(SMALL)
    b = resolve({**SMALL, "data_seed": 1})
    c = resolve({**SMALL, "train_size": 41})
    keys = {cache.cache_key(x) for x in (a, b, c)}
    assert len(keys) == 3 and cache.cache_key(resolve(SMALL)) == cache.cache_key(a)
    da, db = build(a, cache_root), build(b, cache_root)
    assert not np.array_equal(da["train"].inputs, db["train"].inputs)
    assert len(list(cache_root.iterdir())) == 2


def test_failed_build_leaves_nothing(cache_root, monkeypatch):
    spec = resolve(SMALL)
    real = type(spec.family).build

    def crash(self, s):
        real(self, s)
        raise RuntimeError("power cut")

    monkeypatch.setattr(type(spec.family), "build", crash)
    with pytest.raises(RuntimeError):
        build(spec, cache_root)
    assert list(cache_root.iterdir()) == []


_BUILD_THEN_HANG = """
import sys, time
from pathlib import Path
from benchmarks import build
from benchmarks.dataset import PuzzleDataset
from benchmarks.registry import resolve

real_save, saved = PuzzleDataset.save, []

def save(self, path):                   # save one split, say so, then wait to be killed
    real_save(self, path)
    saved.append(path)
    if len(saved) == 1:
        Path(sys.argv[2]).write_text(str(path))
        time.sleep(600)

PuzzleDataset.save = save
build(resolve(%r), Path(sys.argv[1]))
"""


def test_a_builder_killed_while_writing_leaves_a_tmp_folder_that_is_never_read(
    cache_root, tmp_path, monkeypatch
):
    """A real SIGKILL (no Python clean-up runs) of a process in the middle of writing the cache:
    its `.tmp-*` folder stays behind, half written; lookups ignore it and the next build never
    reads it."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from benchmarks.dataset import PuzzleDataset

    marker = tmp_path / "one-split-written"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _BUILD_THEN_HANG % (SMALL,), str(cache_root), str(marker)], env=env
    )
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None and time.time() < deadline, "the builder never got to write"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    spec = resolve(SMALL)
    left = [p for p in cache_root.iterdir()]
    assert len(left) == 1 and left[0].name.startswith(".tmp-"), left
    assert (left[0] / "train.npz").is_file() and not (left[0] / cache.MANIFEST).exists()
    assert cache.lookup(spec, cache_root) is None
    (left[0] / "train.npz").write_bytes(b"garbage a reader would choke on")
    read = []
    real_load = PuzzleDataset.load
    monkeypatch.setattr(
        PuzzleDataset, "load", staticmethod(lambda path: read.append(path) or real_load(path))
    )
    data = build(spec, cache_root)
    assert len(data["train"]) == 40 and len(data["test"]) == 10
    assert cache.lookup(spec, cache_root) == cache.cache_dir(spec, cache_root)
    again = build(spec, cache_root)  # from the cache now
    np.testing.assert_array_equal(again["train"].inputs, data["train"].inputs)
    assert read and not any(".tmp-" in str(p) for p in read), read


def test_incomplete_folder_is_replaced(cache_root):
    spec = resolve(SMALL)
    d = cache.cache_dir(spec, cache_root)
    d.mkdir(parents=True)
    (d / "train.npz").write_bytes(b"half a file")  # no manifest: not a finished copy
    assert cache.lookup(spec, cache_root) is None
    data = build(spec, cache_root)
    assert len(data["train"]) == 40 and cache.lookup(spec, cache_root) == d


def test_concurrent_builder_finishing_first_wins(cache_root, monkeypatch):
    spec = resolve(SMALL)
    real = type(spec.family).build

    def other_process_finishes_meanwhile(self, s):
        out = real(self, s)
        monkeypatch.setattr(type(spec.family), "build", real)
        build(s, cache_root)  # the "other" builder renames its copy into place
        return out

    monkeypatch.setattr(type(spec.family), "build", other_process_finishes_meanwhile)
    data = build(spec, cache_root)
    assert len(data["test"]) == 10
    assert [p.name for p in cache_root.iterdir()] == [cache.cache_dir(spec, cache_root).name]


def test_malformed_csv_fails_with_file_line_reason_and_caches_nothing(cache_root, tmp_path):
    f = tmp_path / "bad.csv"
    good = "rbench,1..........3....,1234341221434321,0\n"
    f.write_text("source,question,answer,rating\n" + good * 3 + "x,12,1234341221434321,0\n" + good)
    spec = resolve(
        {
            "name": "sudoku-extreme",
            "source": "csv",
            "path": str(f),
            "size": 4,
            "train_size": 2,
            "augmentations": 0,
        }
    )
    with pytest.raises(DataError) as e:
        build(spec, cache_root)
    assert str(f) in str(e.value) and e.value.line == 5 and "question has 2 characters" in str(e.value)
    assert not cache_root.exists() or list(cache_root.iterdir()) == []


def test_source_file_content_is_part_of_the_key(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("source,question,answer,rating\nx,1..........3....,1234341221434321,0\n")
    spec = resolve({"name": "sudoku-extreme", "source": "csv", "path": str(f), "size": 4})
    k1 = cache.cache_key(spec)
    f.write_text("source,question,answer,rating\nx,12..........3...,1234341221434321,0\n")
    assert cache.cache_key(spec) != k1
