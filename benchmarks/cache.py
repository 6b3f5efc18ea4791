"""The on-disk dataset cache.

A built task lives in `<cache_root>/<task>-<key>/` with one `<split>.npz` per split and a
`manifest.json`. The key is a hash of everything that decides the data: the task name, its
generator and generator version, every parameter (the data seed included) and the content of any
local source file. Building with a key that is already present loads it and does nothing else.

Writes are atomic: the build goes to a hidden temporary folder beside the final one, the manifest is
written last, and the folder is renamed into place. A crash leaves only a `.tmp-*` folder, which is
never read; a folder without a valid manifest is treated as absent and replaced. Two processes
building the same key at once both build; the first rename wins and the other discards its copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from benchmarks.dataset import PuzzleDataset
from benchmarks.registry import TaskSpec

MANIFEST = "manifest.json"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(spec: TaskSpec) -> str:
    files = {k: file_digest(p) for k, p in sorted(spec.family.source_files(spec.params).items())}
    blob = json.dumps(
        {
            "task": spec.name,
            "generator": spec.generator,
            "version": spec.family.VERSION,
            "params": spec.params.model_dump(mode="json"),
            "files": files,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_dir(spec: TaskSpec, cache_root: Path) -> Path:
    return Path(cache_root) / f"{spec.name}-{cache_key(spec)}"


def _complete(d: Path, spec: TaskSpec) -> bool:
    try:
        m = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return m.get("key") == d.name.rsplit("-", 1)[-1] and all(
        (d / f"{s}.npz").is_file() for s in m.get("splits", spec.family.SPLITS)
    )


def lookup(spec: TaskSpec, cache_root: Path) -> Path | None:
    """The complete cache folder of this spec, or None."""
    d = cache_dir(spec, cache_root)
    return d if _complete(d, spec) else None


def load(d: Path) -> dict[str, PuzzleDataset]:
    m = json.loads((d / MANIFEST).read_text())
    return {s: PuzzleDataset.load(d / f"{s}.npz") for s in m["splits"]}


def build(spec: TaskSpec, cache_root: Path) -> dict[str, PuzzleDataset]:
    """The task's splits, from the cache when present, else built and cached atomically."""
    final = cache_dir(spec, cache_root)
    if _complete(final, spec):
        return load(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        t0 = time.perf_counter()
        data = spec.family.build(spec)
        seconds = time.perf_counter() - t0
        for split, ds in data.items():
            ds.save(tmp / f"{split}.npz")
        manifest = {
            "key": final.name.rsplit("-", 1)[-1],
            "task": spec.config(),
            "generator": spec.generator,
            "version": spec.family.VERSION,
            "splits": list(data),
            "sizes": {s: len(d) for s, d in data.items()},
            "build_seconds": round(seconds, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))  # last: marks the copy whole
        if final.exists() and not _complete(final, spec):
            shutil.rmtree(final, ignore_errors=True)  # a damaged copy (e.g. hand-edited)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _complete(final, spec):  # not a concurrent builder's finished copy: real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return load(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return data
