"""Report rendering on a hand-made run table: pooling seeds, Wilson intervals, the verdict."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from reports.render import markdown, summarize


def table():
    rows = []
    # TRM: 2 seeds, 80/100 and 90/100 correct; transformer 4x params: 2 seeds, 10/100 and 20/100.
    for seed, acc in ((0, 0.8), (1, 0.9)):
        rows.append({"run_id": f"t{seed}", "run_name": "trm", "status": "FINISHED", "task": "parity-24",
                     "seed": seed, "num_parameters": 1000, "effective_depth": 4, "flops": 1e12,
                     "exact_accuracy": acc, "eval_examples": 100, "model.arch": "trm", "model.T": 1,
                     "model.n": 1, "model.hidden": 32})
    for seed, acc in ((0, 0.1), (1, 0.2)):
        rows.append({"run_id": f"b{seed}", "run_name": "tf", "status": "FINISHED", "task": "parity-24",
                     "seed": seed, "num_parameters": 4000, "effective_depth": 8, "flops": 1.1e12,
                     "exact_accuracy": acc, "eval_examples": 100, "model.arch": "transformer",
                     "model.T": math.nan, "model.n": math.nan, "model.hidden": 32})
    rows.append({"run_id": "f", "run_name": "bad", "status": "FAILED", "task": "parity-24",
                 "failure_reason": "training diverged at step 3: loss is nan", "model.arch": "trm"})
    return pd.DataFrame(rows)


def test_summary_pools_seeds_with_wilson_interval():
    s = summarize(table())
    assert list(s["model.arch"]) == ["trm", "transformer"]          # ordered by training FLOPs
    trm = s.iloc[0]
    assert trm["seeds"] == 2 and trm["exact_accuracy"] == pytest.approx(0.85)
    assert trm["exact_accuracy_std"] == pytest.approx(math.sqrt(0.005))
    # Wilson 95% for 170/200: (0.7940, 0.8924) by the closed form
    z = 1.959963984540054
    n, p = 200, 0.85
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert trm["ci95_low"] == pytest.approx(centre - half, abs=1e-4)
    assert trm["ci95_high"] == pytest.approx(centre + half, abs=1e-4)


def test_markdown_states_the_comparison_and_failures():
    text = markdown(table(), title="T")
    assert "| trm hidden=32 T=1 n=1 | 1,000 | 4 |" in text
    assert "85.0% ± 7.1" in text
    assert "Best recursive model: trm hidden=32 T=1 n=1 at 85.0%" in text
    assert "(4.0x)" in text and "do not overlap" in text
    assert "bad (f): training diverged at step 3: loss is nan" in text


def test_empty_table_says_so():
    assert "No finished runs" in markdown(pd.DataFrame(), title="T")
