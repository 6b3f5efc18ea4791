"""The two-level bootstrap against the truth, by simulation."""

from __future__ import annotations

import numpy as np

from reports.intervals import Cell, bootstrap, pooled_binomial
from tests.reports.synthetic import shared_puzzle_cell


def test_two_level_interval_matches_the_estimator_spread_and_pooled_binomial_does_not():
    """Seeds share puzzles of varied difficulty. The true sampling spread of the mean accuracy
    (new puzzles from the population AND new seeds, 400 times) is matched by the two-level
    bootstrap's spread on ONE sample; the pooled binomial, treating seeds x puzzles as
    independent, is far narrower."""
    rng = np.random.default_rng(0)
    S, P = 8, 200
    truth = np.std([shared_puzzle_cell(rng, S, P).mean for _ in range(400)])
    ratios_boot, ratios_pool = [], []
    for rep in range(10):
        cell = shared_puzzle_cell(rng, S, P)
        boot = bootstrap([cell], n_boot=1000, seed=rep)[:, 0]
        lo, hi = pooled_binomial(cell)
        ratios_boot.append(boot.std() / truth)
        ratios_pool.append((hi - lo) / (2 * 1.96) / truth)
    assert 0.8 < np.median(ratios_boot) < 1.25, ratios_boot
    assert np.median(ratios_pool) < 0.65, ratios_pool


def test_puzzle_draw_is_shared_between_cells_of_one_test_set():
    """Two configurations on the same puzzles move together under the bootstrap (so a difference
    between them is judged on the same puzzle sample)."""
    rng = np.random.default_rng(1)
    c = shared_puzzle_cell(rng, 1, 300)
    twin = Cell(c.correct.copy(), c.puzzle_ids)
    d = bootstrap([c, twin], n_boot=500, seed=0)
    assert np.allclose(d[:, 0], d[:, 1])
    other = Cell(c.correct.copy(), c.puzzle_ids, key="other-task")
    d = bootstrap([c, other], n_boot=500, seed=0)
    assert np.corrcoef(d[:, 0], d[:, 1])[0, 1] < 0.5


def test_augmented_variants_move_with_their_puzzle():
    """Examples with one puzzle id are resampled as one unit: two copies of each puzzle give
    the same spread as one copy (not sqrt(2) narrower)."""
    rng = np.random.default_rng(2)
    c = shared_puzzle_cell(rng, 1, 300)
    doubled = Cell(np.repeat(c.correct, 2, axis=1), np.repeat(c.puzzle_ids, 2))
    s1 = bootstrap([c], 2000, seed=0)[:, 0].std()
    s2 = bootstrap([doubled], 2000, seed=0)[:, 0].std()
    assert abs(s2 / s1 - 1) < 0.1


def test_all_wrong_configuration_gets_a_binomial_interval_not_a_degenerate_one():
    import pandas as pd

    from reports.analysis import configurations
    from reports.table import RunData

    rows = [
        {
            "run_id": f"r{s}",
            "status": "FINISHED",
            "task": "t",
            "family": "transformer",
            "kind": "transformer",
            "num_parameters": 1000,
            "effective_depth": 2,
            "recursion": "",
            "seed": s,
            "final_exact_accuracy": 0.0,
            "best_exact_accuracy": float("nan"),
            "best_step": float("nan"),
            "recurrences": 1.0,
            "train_flops": 1.0,
            "inference_flops_per_example": 1.0,
            "eval_examples": 50,
            "puzzle_emb_parameters": 0,
        }
        for s in (0, 1)
    ]
    bits = {"steps": np.array([5]), "splits": {"test": (np.zeros((1, 50), bool), np.arange(50))}}
    data = RunData(pd.DataFrame(rows), correctness={"r0": bits, "r1": bits})
    cf, _ = configurations(data, "final", n_boot=50)
    assert cf.loc[0, "low"] == 0 and 0.05 < cf.loc[0, "high"] < 0.1  # Wilson 0/50: 0-7.1%
    assert cf.loc[0, "interval"].startswith("binomial")
