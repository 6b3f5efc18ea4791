"""Small tasks where depth visibly matters, generated from a seed (CPU-scale studies).

- parity:    prefix parity of a bit string (label i = XOR of bits 0..i). Length 24 has 16.7M inputs:
             a training set of 100k cannot be memorised.
- addition:  the sum of k operands of m digits (least significant digit first), carries included.
- pointer:   p-hop pointer chasing on a random function f: [n] -> [n] (label i = f^p(i)). A random
             function, not a permutation: f^p of a permutation is the identity on every cycle whose
             length divides p, which makes some hop counts trivial.
- automaton: a 1-D elementary cellular automaton (Wolfram rule number, periodic boundary) rolled
             forward k steps; label = the final state.

Train and test examples are drawn independently from the data seed; any training example equal to
a test example is dropped and redrawn, so test accuracy is never recall. No puzzle identifiers
(all 0), one group per example.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field, PositiveInt

from benchmarks.dataset import IGNORE_LABEL_ID, DatasetMeta, PuzzleDataset
from benchmarks.registry import Family, Params, TaskSpec, split_seed
from benchmarks.errors import ConfigError

DIGIT0 = 2  # token of digit / bit / node 0 in every task here (0 = pad, 1 = blank answer slot)


class DepthParams(Params):
    train_size: PositiveInt = 100_000
    test_size: PositiveInt = 2_000


def _disjoint(
    sample: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]], p: DepthParams
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Draw test then train with `sample(rng, k) -> (inputs, labels)`; training rows equal to a
    test row are dropped and redrawn. Test rows are unique among themselves too."""

    def unique_rows(x: np.ndarray) -> np.ndarray:
        _, first = np.unique(
            np.ascontiguousarray(x).view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))),
            return_index=True,
        )
        return np.sort(first)

    rng = split_seed(p, 10)
    ti, tl = sample(rng, p.test_size * 2)
    keep = unique_rows(ti)[: p.test_size]
    if len(keep) < p.test_size:
        raise ConfigError("task.test_size", f"only {len(keep)} distinct inputs exist at this size")
    ti, tl = ti[keep], tl[keep]
    test_keys = {r.tobytes() for r in ti}
    rng = split_seed(p, 11)
    xs, ys, have = [], [], 0
    for _ in range(1000):
        i, lab = sample(rng, max(1024, p.train_size - have))
        ok = np.fromiter((r.tobytes() not in test_keys for r in i), bool, len(i))
        xs.append(i[ok])
        ys.append(lab[ok])
        have += int(ok.sum())
        if have >= p.train_size:
            break
    else:
        raise ConfigError("task.train_size", "too large for the number of distinct inputs")
    return {
        "train": (np.concatenate(xs)[: p.train_size], np.concatenate(ys)[: p.train_size]),
        "test": (ti, tl),
    }


class _Depth(Family):
    chars = "?"  # rendering: token t >= DIGIT0 shows as chars[t - DIGIT0]

    def sample(self, p, rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def build(self, spec: TaskSpec) -> dict[str, PuzzleDataset]:
        p = spec.params
        out = {}
        for split, (x, y) in _disjoint(lambda rng, k: self.sample(p, rng, k), p).items():
            n = len(x)
            out[split] = PuzzleDataset(
                x.astype(np.int32),
                y.astype(np.int32),
                np.zeros(n, np.int32),
                np.arange(n, dtype=np.int64),
                spec.meta,
            )
        return out

    def _text(self, row: np.ndarray) -> str:
        return "".join(
            "." if t == IGNORE_LABEL_ID or t == 0 else "_" if t == 1 else self.chars[t - DIGIT0] for t in row
        )

    def render(self, ds: PuzzleDataset, i: int) -> str:
        return f"input: {self._text(ds.inputs[i])}\nlabel: {self._text(ds.labels[i])}"


# ---------------------------------------------------------------------------------------------


class ParityParams(DepthParams):
    length: int = Field(24, ge=1, le=62)
    prefix: bool = True  # label every prefix's parity; False: only the whole string's


class Parity(_Depth):
    Params = ParityParams
    chars = "01"

    def meta(self, name, p: ParityParams) -> DatasetMeta:
        return DatasetMeta(name, p.length, DIGIT0 + 2, 1, {"family": "parity", "length": p.length})

    def sample(self, p: ParityParams, rng, k):
        bits = rng.integers(0, 2, (k, p.length))
        par = np.cumsum(bits, axis=1) % 2
        labels = par + DIGIT0
        if not p.prefix:
            labels[:, :-1] = IGNORE_LABEL_ID
        return bits + DIGIT0, labels


# ---------------------------------------------------------------------------------------------


class AdditionParams(DepthParams):
    operands: int = Field(8, ge=2)
    digits: int = Field(6, ge=1)
    base: int = Field(10, ge=2, le=36)


def _sum_digits(p: AdditionParams) -> int:
    top = p.operands * (p.base**p.digits - 1)
    out = 0
    while top:
        top //= p.base
        out += 1
    return out


class Addition(_Depth):
    Params = AdditionParams
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"

    def meta(self, name, p: AdditionParams) -> DatasetMeta:
        L = p.operands * p.digits + _sum_digits(p)
        return DatasetMeta(
            name,
            L,
            DIGIT0 + p.base,
            1,
            {
                "family": "addition",
                "operands": p.operands,
                "digits": p.digits,
                "base": p.base,
                "sum_digits": _sum_digits(p),
            },
        )

    def sample(self, p: AdditionParams, rng, k):
        d = rng.integers(0, p.base, (k, p.operands, p.digits))  # least significant first
        # Column sums with carries, digit by digit: exact for any size (no int64 overflow).
        out_len = _sum_digits(p)
        col = np.zeros((k, out_len), np.int64)
        col[:, : p.digits] = d.sum(1)
        s = np.zeros((k, out_len), np.int64)
        carry = np.zeros(k, np.int64)
        for j in range(out_len):
            t = col[:, j] + carry
            s[:, j], carry = t % p.base, t // p.base
        x = np.concatenate([d.reshape(k, -1) + DIGIT0, np.ones((k, out_len), np.int64)], 1)
        y = np.concatenate([np.full((k, p.operands * p.digits), IGNORE_LABEL_ID), s + DIGIT0], 1)
        return x, y


# ---------------------------------------------------------------------------------------------


class PointerParams(DepthParams):
    nodes: int = Field(16, ge=2, le=254)
    hops: int = Field(12, ge=1)


class Pointer(_Depth):
    Params = PointerParams

    def meta(self, name, p: PointerParams) -> DatasetMeta:
        return DatasetMeta(
            name, p.nodes, DIGIT0 + p.nodes, 1, {"family": "pointer", "nodes": p.nodes, "hops": p.hops}
        )

    def sample(self, p: PointerParams, rng, k):
        f = rng.integers(0, p.nodes, (k, p.nodes))
        # f^hops by repeated squaring: log2(hops) compositions instead of `hops`.
        result = np.tile(np.arange(p.nodes), (k, 1))
        power, e = f, p.hops
        while e:
            if e & 1:
                result = np.take_along_axis(power, result, axis=1)
            power = np.take_along_axis(power, power, axis=1)
            e >>= 1
        return f + DIGIT0, result + DIGIT0

    def _text(self, row):
        return " ".join("." if t < DIGIT0 else str(t - DIGIT0) for t in row)


# ---------------------------------------------------------------------------------------------


class AutomatonParams(DepthParams):
    rule: int = Field(110, ge=0, le=255)
    width: int = Field(24, ge=3)
    steps: int = Field(8, ge=1)


class Automaton(_Depth):
    Params = AutomatonParams
    chars = "01"

    def meta(self, name, p: AutomatonParams) -> DatasetMeta:
        return DatasetMeta(
            name,
            p.width,
            DIGIT0 + 2,
            1,
            {"family": "automaton", "rule": p.rule, "width": p.width, "steps": p.steps},
        )

    def sample(self, p: AutomatonParams, rng, k):
        table = (p.rule >> np.arange(8)) & 1  # new cell for neighbourhood value 0..7
        x = rng.integers(0, 2, (k, p.width))
        s = x
        for _ in range(p.steps):
            s = table[(np.roll(s, 1, 1) << 2) | (s << 1) | np.roll(s, -1, 1)]
        return x + DIGIT0, s + DIGIT0
