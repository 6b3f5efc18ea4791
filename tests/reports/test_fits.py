"""Fits recover known laws, their bootstrap intervals cover the truth, and thin data is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports import fits
from reports.intervals import Cell, bootstrap
from tests.reports.synthetic import ALPHA, PHI, law_cells


@pytest.mark.slow
def test_phi_and_exponents_are_inside_their_95_intervals_in_90_of_100_repetitions():
    rng = np.random.default_rng(0)
    hits = {"phi": 0, "alpha (joint)": 0, "alpha (transformers)": 0}
    for rep in range(100):
        N, r, cells = law_cells(rng)
        acc = np.array([c.mean for c in cells])
        draws = bootstrap(cells, n_boot=100, seed=rep)
        eq = fits.equivalence(N, r, acc, draws)
        tf = r == 1
        pw = fits.power_law(N[tf], acc[tf], draws[:, tf])
        assert eq.converged > 0.95 and pw.converged > 0.95
        hits["phi"] += eq.lo["phi"] <= PHI <= eq.hi["phi"]
        hits["alpha (joint)"] += eq.lo["alpha"] <= ALPHA <= eq.hi["alpha"]
        hits["alpha (transformers)"] += pw.lo["alpha"] <= ALPHA <= pw.hi["alpha"]
    assert min(hits.values()) >= 90, hits


def test_interval_narrows_as_seeds_are_added():
    rng = np.random.default_rng(1)
    widths = []
    for seeds in (1, 4, 16):
        w = []
        for rep in range(4):
            N, r, cells = law_cells(rng, seeds=seeds, puzzles=200, sigma=0.3)
            acc = np.array([c.mean for c in cells])
            eq = fits.equivalence(N, r, acc, bootstrap(cells, n_boot=100, seed=rep))
            w.append(eq.hi["phi"] - eq.lo["phi"])
        widths.append(np.median(w))
    assert widths[0] > widths[1] > widths[2], widths


def test_saturating_law_finds_a_peak_and_fall():
    """A TRM-like depth sweep that peaks near 40 and falls: the fitted peak is there, the fall is
    significant (lam's interval excludes 0), and the hold-out check predicts the deepest point."""
    rng = np.random.default_rng(2)
    c, tau, lam = 0.9, 12.0, 0.012  # peak at tau*ln(1 + 1/(lam*tau)) ~ 23
    d = np.array([4, 8, 16, 24, 32, 48, 64, 96])
    p = fits._depth_curve(np.array([c, math.log(tau), lam]), d)[0]
    cells = [Cell(rng.random((3, 400)) < q, np.arange(400)) for q in p]
    acc = np.array([x.mean for x in cells])
    draws = bootstrap(cells, n_boot=200, seed=0)
    f = fits.saturating(d, acc, draws)
    assert f.ok and f.lo["lam"] > 0
    true_peak = fits.peak_depth(tau, lam)
    assert f.extra["peak_lo"] <= true_peak <= f.extra["peak_hi"]
    assert abs(f.extra["peak"] - true_peak) < 6
    h = fits.holdout("depth", d, acc, draws)
    assert h["ok"] and abs(h["error"]) < 0.1 and h["lo"] <= h["observed"] <= h["hi"]


def test_exchange_rate_is_r_to_the_phi_under_the_law():
    """Under error = A (N r^phi)^-alpha a transformer needs r^phi times the parameters."""
    N = np.array([1e4, 1e5, 1e6, 1e7])
    acc = 1 - 5.0 * N**-0.35
    pw = fits.power_law(N, acc)
    for r in (2, 8):
        got = fits.exchange_rate(pw, 1e4, 1 - 5.0 * (1e4 * r**0.5) ** -0.35)
        assert got["multiple"] == pytest.approx(r**0.5, rel=1e-3)


def test_thin_data_is_refused_in_words():
    f = fits.power_law([1e4, 1e5], [0.2, 0.4])
    assert not f.ok and "3 or more parameter counts, has 2" in f.reason
    assert not fits.saturating([1, 2, 4], [0.1, 0.2, 0.3]).ok
    eq = fits.equivalence([1e4, 1e5, 1e4], [1, 1, 1], [0.1, 0.2, 0.3])
    assert not eq.ok and "recurrence counts above 1 (has 0)" in eq.reason
    assert not fits.holdout("power", [1e4, 1e5, 1e6], [0.1, 0.2, 0.3])["ok"]


@pytest.mark.parametrize("law", ["power", "phi", "depth"])
def test_batched_refits_agree_with_one_lbfgs_per_replicate(law):
    """The bootstrap's batched Gauss-Newton reaches the same Huber optimum (the same loss; with
    few points the Huber minimum can be flat, so parameters may differ along it) as scipy's
    L-BFGS-B run on each replicate alone."""
    from scipy.special import huber

    rng = np.random.default_rng(3)
    N, r, cells = law_cells(rng, seeds=2, puzzles=300)
    acc = np.array([c.mean for c in cells])
    draws = bootstrap(cells, n_boot=20, seed=0)
    y = lambda row: np.log(np.clip(1 - row, 1e-3, None))
    if law == "power":
        tf = r == 1
        f, d = fits.power_law(N[tf], acc[tf], draws[:, tf]), draws[:, tf]
        raw = lambda p: (math.log(p["A"]), p["alpha"])
        loss = lambda t, row: huber(fits.DELTA_LOG, y(row) - (t[0] - t[1] * np.log(N[tf]))).sum()
        alone = [fits.power_law(N[tf], row).params for row in d]
    elif law == "phi":
        f, d = fits.equivalence(N, r, acc, draws), draws
        raw = lambda p: (math.log(p["A"]), p["alpha"], p["phi"])
        loss = lambda t, row: huber(
            fits.DELTA_LOG, y(row) - (t[0] - t[1] * (np.log(N) + t[2] * np.log(r)))
        ).sum()
        alone = [fits.equivalence(N, r, row).params for row in d]
    else:
        depth = np.array([2, 4, 8, 16, 32, 64, 128.0])
        p = fits._depth_curve(np.array([0.9, math.log(10.0), 0.005]), depth)[0]
        cs = [Cell(rng.random((2, 300)) < q, np.arange(300)) for q in p]
        d = bootstrap(cs, n_boot=20, seed=0)
        f = fits.saturating(depth, np.array([c.mean for c in cs]), d)
        raw = lambda p: (p["c"], math.log(p["tau"]), p["lam"])
        loss = lambda t, row: huber(fits.DELTA_ACC, row - fits._depth_curve(np.array(t), depth)[0]).sum()
        alone = [fits.saturating(depth, row).params for row in d]
    assert f.converged == 1.0
    for t, a, row in zip(f.draws, alone, d):
        assert loss(t, row) <= loss(raw(a), row) + 1e-7


def test_phi_is_not_fitted_when_accuracy_never_varies():
    # All runs at 0%: alpha = 0 describes the data exactly, and with alpha = 0 every phi fits.
    N = np.array([1e4, 4e4, 1.6e5, 1e4, 1e4])
    r = np.array([1, 1, 1, 4, 8])
    fit = fits.equivalence(N, r, np.zeros(5))
    assert not fit.ok and "not identified" in fit.reason


def test_phi_is_not_fitted_when_bigger_transformers_are_worse():
    # Error rising with parameters (alpha < 0, as at a CPU budget where a bigger model gets fewer
    # steps): phi, the parameter price of a loop, has no meaning and must not be reported.
    N = np.array([1e4, 4e4, 1.6e5, 1e4, 1e4])
    r = np.array([1, 1, 1, 4, 8])
    acc = np.array([0.6, 0.2, 0.01, 0.4, 0.3])
    fit = fits.equivalence(N, r, acc)
    assert not fit.ok and "not identified" in fit.reason and "alpha = -" in fit.reason
