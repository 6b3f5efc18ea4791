"""Small depth tasks: labels checked against plain reference computations; splits disjoint."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import build
from benchmarks.dataset import IGNORE_LABEL_ID
from benchmarks.depth import DIGIT0
from benchmarks.registry import resolve

SMALL = {"train_size": 3000, "test_size": 300}


def built(name, cache_root, **over):
    spec = resolve({"name": name, **SMALL, **over})
    return spec, build(spec, cache_root)


def test_prefix_parity(cache_root):
    spec, data = built("parity-24", cache_root)
    assert (spec.seq_len, spec.vocab_size) == (24, 4)
    for ds in data.values():
        for x, y in zip(ds.inputs[:200], ds.labels[:200]):
            bits = (x - DIGIT0).tolist()
            want, acc = [], 0
            for b in bits:
                acc ^= b
                want.append(acc)
            assert (y - DIGIT0).tolist() == want
    _, whole = built("parity-24", cache_root, prefix=False)
    assert (whole["test"].labels[:, :-1] == IGNORE_LABEL_ID).all()


def test_multi_operand_addition(cache_root):
    spec, data = built("addition-8x6", cache_root, operands=5, digits=3, base=7)
    k, m, b = 5, 3, 7
    out = spec.meta.extra["sum_digits"]
    assert spec.seq_len == k * m + out
    for x, y in zip(data["test"].inputs, data["test"].labels):
        ops = (x[: k * m] - DIGIT0).reshape(k, m)
        value = sum(int("".join(map(str, op[::-1])), b) for op in ops)  # least significant first
        got = y[k * m :] - DIGIT0
        assert sum(int(d) * b**i for i, d in enumerate(got)) == value
        assert (y[: k * m] == IGNORE_LABEL_ID).all() and (x[k * m :] == 1).all()


def test_pointer_chasing(cache_root):
    spec, data = built("pointer-16x12", cache_root, nodes=9, hops=7)
    for x, y in zip(data["test"].inputs, data["test"].labels):
        f = (x - DIGIT0).tolist()
        for i in range(9):
            v = i
            for _ in range(7):
                v = f[v]
            assert y[i] - DIGIT0 == v


def test_cellular_automaton(cache_root):
    spec, data = built("rule110-24x8", cache_root, rule=30, width=11, steps=5)
    for x, y in zip(data["test"].inputs[:100], data["test"].labels[:100]):
        s = (x - DIGIT0).tolist()
        for _ in range(5):
            s = [(30 >> (4 * s[i - 1] + 2 * s[i] + s[(i + 1) % 11])) & 1 for i in range(11)]
        assert (y - DIGIT0).tolist() == s


@pytest.mark.parametrize("name", ["parity-24", "addition-8x6", "pointer-16x12", "rule110-24x8"])
def test_train_and_test_are_disjoint_and_seeded(cache_root, name):
    spec, data = built(name, cache_root)
    tr = {r.tobytes() for r in data["train"].inputs}
    te = [r.tobytes() for r in data["test"].inputs]
    assert len(set(te)) == len(te) == 300 and not tr & set(te) and len(data["train"]) == 3000
    _, again = built(name, cache_root, data_seed=1)
    assert not np.array_equal(again["train"].inputs, data["train"].inputs)


def test_too_small_an_input_space_is_a_config_error(cache_root):
    from harness.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        built("parity-24", cache_root, length=4, test_size=20)
    assert e.value.key == "task.test_size"
