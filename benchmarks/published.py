"""Where a CSV-format task (Sudoku-Extreme, Maze-Hard) gets its rows: generated here, a local file,
or the Hugging Face hub. Shared parameters and split selection."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import PositiveInt

from benchmarks import csvfmt, hub
from benchmarks.registry import Params, require_file, split_seed
from benchmarks.errors import ConfigError, DataError, UserError


class SourceParams(Params):
    # generate: made here; csv: local files; hub: the published files (`hub_repo`), fetched once
    source: Literal["generate", "csv", "hub"] = "generate"
    path: str | None = None  # csv: one file, split into train/test by data_seed
    train_path: str | None = None  # csv: the published train.csv ...
    test_path: str | None = None  # ... and test.csv
    hub_repo: str | None = None
    hub_revision: str | None = None
    train_size: PositiveInt | None = None  # generate: how many; csv/hub: subsample (None = all)
    test_size: PositiveInt | None = None


def check_source(p: SourceParams) -> None:
    if p.source == "generate":
        for k in ("train_size", "test_size"):
            if getattr(p, k) is None:
                raise ConfigError(f"task.{k}", "a positive integer (required when source: generate)")
    if p.source == "csv" and (p.path is None) == (p.train_path is None or p.test_path is None):
        raise ConfigError(
            "task.path",
            "source: csv needs either `path` (one file, split by "
            "data_seed) or both `train_path` and `test_path`",
        )
    if p.source == "hub" and not p.hub_repo:
        raise ConfigError("task.hub_repo", "a Hugging Face dataset id, e.g. sapientinc/sudoku-extreme")


def local_source(paths: list[str]) -> dict:
    """`--from` values -> parameters: FILE (one CSV, split by data_seed), DIR (holding train.csv
    and test.csv, the hub layout) or train=FILE test=FILE."""
    named = dict(x.split("=", 1) for x in paths if "=" in x)
    plain = [x for x in paths if "=" not in x]
    if named:
        if plain or set(named) != {"train", "test"}:
            raise UserError("--from: give train=FILE and test=FILE together (nothing else)")
        return {"source": "csv", "path": None, "train_path": named["train"], "test_path": named["test"]}
    if len(plain) != 1:
        raise UserError("--from: one FILE or DIR, or train=FILE test=FILE")
    p = Path(plain[0]).expanduser()
    if p.is_dir():
        missing = [f for f in ("train.csv", "test.csv") if not (p / f).is_file()]
        if missing:
            raise UserError(f"--from {p}: folder lacks {', '.join(missing)}")
        return {
            "source": "csv",
            "path": None,
            "train_path": str(p / "train.csv"),
            "test_path": str(p / "test.csv"),
        }
    if not p.is_file():
        raise UserError(f"--from {p}: no such file or folder")
    return {"source": "csv", "path": str(p), "train_path": None, "test_path": None}


def local_files(p: SourceParams) -> dict[str, Path]:
    if p.source != "csv":
        return {}
    if p.path is not None:
        return {"path": require_file(p.path, "path")}
    return {
        "train_path": require_file(p.train_path, "train_path"),
        "test_path": require_file(p.test_path, "test_path"),
    }


def load_splits(p: SourceParams, task: str, read, keep=None) -> dict[str, csvfmt.Rows]:
    """{"train": Rows, "test": Rows} from the configured files. `read(path) -> Rows` parses and checks
    one file; `keep(rows) -> bool mask` filters rows (e.g. by rating) before subsampling."""
    if p.source == "hub":
        files = {s: hub.fetch(p.hub_repo, f"{s}.csv", p.hub_revision, task) for s in ("train", "test")}
    else:
        files = local_files(p)
    if "path" in files:
        rows = read(files["path"])
        if keep is not None:
            rows = rows.take(np.flatnonzero(keep(rows)))
        order = split_seed(p, 1).permutation(len(rows.lines))
        n_train = p.train_size or len(order) // 2
        if n_train >= len(order):
            raise DataError(
                files["path"],
                None,
                f"{len(order)} usable rows: not enough for {n_train} training rows and a test split",
            )
        n_test = min(p.test_size or len(order), len(order) - n_train)
        return {
            "train": rows.take(np.sort(order[:n_train])),
            "test": rows.take(np.sort(order[n_train : n_train + n_test])),
        }
    out = {}
    for i, split in enumerate(("train", "test")):
        path = files.get(f"{split}_path", files.get(split))
        rows = read(path)
        if keep is not None:
            rows = rows.take(np.flatnonzero(keep(rows)))
        want = p.train_size if split == "train" else p.test_size
        if want is not None and want > len(rows.lines):
            raise DataError(
                path, None, f"{len(rows.lines)} usable rows, fewer than the {split}_size of {want}"
            )
        if want is not None and want < len(rows.lines):
            rows = rows.take(np.sort(split_seed(p, 2, i).choice(len(rows.lines), want, replace=False)))
        out[split] = rows
    return out
