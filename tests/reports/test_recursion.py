"""The recursion ladder: which loop (outer: supervision segments; inner: the architecture's own
recursion) a gain comes from, with paired bootstrap intervals, and the headline comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.intervals import Cell, bootstrap, percentile_interval
from reports.recursion import comparison, describe_comparison, describe_ladder, ladder

PUZZLES, SEEDS = 500, 3
# (label, kind, params, segments, true accuracy)
CONFIGS = [
    ("transformer 1x direct", "transformer", 1000, 1, 0.20),
    ("transformer 1x outer", "transformer", 1000, 4, 0.60),
    ("trm n=1", "recursive", 1000, 4, 0.58),
    ("trm n=2", "recursive", 1000, 4, 0.70),
    ("transformer 4x outer", "transformer", 4000, 4, 0.65),  # better than 1x: not "outer loop"
    ("transformer 16x direct", "transformer", 16000, 1, 0.90),
]


def _study(rng, configs=CONFIGS, flops=None):
    flops = flops or (1e12,) * len(configs)
    # puzzles differ in difficulty and every configuration sees the same ones (paired draws)
    u = rng.random(PUZZLES)
    cells = [
        Cell(
            np.stack([(u + 0.03 * rng.standard_normal(PUZZLES)) < acc for _ in range(SEEDS)]),
            np.arange(PUZZLES),
        )
        for *_, acc in configs
    ]
    draws = bootstrap(cells, 2000, seed=1)
    lo, hi = percentile_interval(draws)
    cf = pd.DataFrame(
        {
            "label": [c[0] for c in configs],
            "kind": [c[1] for c in configs],
            "num_parameters": [c[2] for c in configs],
            "segments": [c[3] for c in configs],
            "accuracy": [c.mean for c in cells],
            "low": lo,
            "high": hi,
            "train_flops": list(flops),
            "per_seed": [", ".join(f"{100 * v:.1f}" for v in c.per_seed) for c in cells],
        }
    )
    return cf, draws, cells


def test_the_ladder_separates_the_outer_loop_from_the_inner_one():
    cf, draws, cells = _study(np.random.default_rng(0))
    rungs = ladder(cf, draws)
    assert [r.stage for r in rungs] == ["direct", "outer loop", "inner loop", "parameters"]
    assert [r.label for r in rungs] == [
        "transformer 1x direct",
        "transformer 1x outer",
        "trm n=2",
        "transformer 16x direct",  # the best larger transformer ...
    ]
    assert rungs[3].versus == "direct"  # ... measured against the 1x one with its segment count
    m = [c.mean for c in cells]
    for r, (i, j) in zip(rungs[1:], [(1, 0), (3, 1), (5, 0)]):
        assert abs(r.gain - (m[i] - m[j])) < 1e-12
        assert r.gain_low <= r.gain <= r.gain_high
    # outer loop +40 points: resolved; inner loop +10 points on 500 shared puzzles: resolved too
    assert rungs[1].gain_low > 0.3 and rungs[2].gain_low > 0
    text = describe_ladder(rungs)
    assert "outer loop (transformer 1x outer)" in text and "not resolved" not in text


def test_paired_intervals_resolve_a_gain_that_overlapping_intervals_hide():
    # 0.60 vs 0.63 on the same 500 puzzles: the two intervals overlap, the paired one excludes 0
    configs = [CONFIGS[1], ("trm", "recursive", 1000, 4, 0.63)]
    cf, draws, _ = _study(np.random.default_rng(3), configs, (1e12, 1e12))
    outer, inner = ladder(cf, draws)
    assert inner.low < outer.high  # the marginal intervals overlap
    assert inner.gain_low > 0, (inner.gain_low, inner.gain_high)


def test_the_headline_says_when_the_transformer_wins_and_when_flops_differ():
    cf, draws, _ = _study(np.random.default_rng(1))
    c = comparison(cf, draws)
    assert c.recursive.label == "trm n=2" and c.transformer.label == "transformer 16x direct"
    assert c.gain < 0 and c.resolved and c.equal_flops
    assert "the transformer wins" in describe_comparison(c)
    flops = [1e12] * 5 + [2e12]
    cf, draws, _ = _study(np.random.default_rng(1), flops=flops)
    c = comparison(cf, draws)
    assert not c.equal_flops and "UNEQUAL training FLOPs" in describe_comparison(c)


def test_an_unresolved_difference_is_called_so():
    configs = [CONFIGS[1], ("trm", "recursive", 1000, 4, 0.60)]
    cf, draws, _ = _study(np.random.default_rng(2), configs, (1e12, 1e12))
    c = comparison(cf, draws)
    assert c.gain_low < 0 < c.gain_high and not c.resolved
    assert "not resolved" in describe_comparison(c)
    _, inner = ladder(cf, draws)  # the same gain as a rung of the ladder
    assert inner.gain_low < 0 < inner.gain_high and not inner.resolved
    assert "(not resolved)" in describe_ladder([inner])
