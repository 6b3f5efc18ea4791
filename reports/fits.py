"""Scaling-law fits with bootstrap intervals (scipy.optimize: Huber loss, multi-start L-BFGS-B).

Laws (error e = 1 - exact accuracy, floored at half an example so log e is finite):

- power law in parameters (transformers):     log e = log A - alpha * log N
- recurrence equivalence (transformers and one recursive family together, after Schwethelm et al.):
      log e = log A - alpha * log(N * r^phi)     r = recurrences = effective depth / unique layers
  so r loops of N parameters are worth r^phi * N unique ones (phi = 1: a full copy; 0: nothing);
- saturating law in effective depth d (one recursive family at fixed parameters):
      acc(d) = c * (1 - exp(-d / tau)) * exp(-lam * d)
  lam >= 0 lets accuracy peak at d* = tau * ln(1 + 1 / (lam * tau)) and fall (TRM's depth sweep);
  lam = 0 is pure saturation at c.
- exchange rate: the parameters a transformer needs to match a recursive model (inverting the
  transformer power law at the recursive model's error), as a multiple of the recursive model's.

Every fit minimises sum(huber(residual, delta)) from a grid of starts and keeps the best (Chinchilla
"approach 3"). Intervals are percentiles of refits on bootstrap replicates of the accuracies
(reports.intervals: seeds and puzzles resampled), with the fraction of refits that converged. A fit
that the data cannot support (too few distinct points) returns `ok=False` and a reason in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber

# Huber deltas. Chinchilla's 1e-3 suits log-loss residuals whose noise is ~1e-3; a log error
# measured on a few hundred puzzles is noisy at ~0.1, and an accuracy at ~0.02. With a delta far
# below the noise the loss is L1 and L-BFGS stalls on its kinks; these keep it smooth near the fit
# and linear (robust) for outliers.
DELTA_LOG = 0.1  # on log-error residuals
DELTA_ACC = 0.02  # on accuracy residuals
GTOL = 1e-6


@dataclass
class Fit:
    law: str
    formula: str
    ok: bool
    reason: str = ""
    names: tuple[str, ...] = ()
    params: dict[str, float] = field(default_factory=dict)
    lo: dict[str, float] = field(default_factory=dict)
    hi: dict[str, float] = field(default_factory=dict)
    converged: float = math.nan  # fraction of bootstrap refits that converged
    n_points: int = 0
    draws: np.ndarray | None = None  # [B, len(names)] raw parameters of each refit
    extra: dict = field(default_factory=dict)

    def describe(self) -> str:
        if not self.ok:
            return f"{self.law}: not fitted: {self.reason}"
        parts = [f"{n} = {self.params[n]:.3g} [{self.lo[n]:.3g}, {self.hi[n]:.3g}]" for n in self.names]
        return f"{self.law}: " + ", ".join(parts) + f" (95% bootstrap; {self.n_points} points)"


def minimize_huber(
    resid_jac_for, Y: np.ndarray, theta0: np.ndarray, bounds, delta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One L-BFGS-B fit per row of `Y` [M, n] (observations) from `theta0` [M, k]:
    `resid_jac_for(Y[i:i+1])(theta [1, k])` -> residuals [1, n] and Jacobian [1, n, k]; the loss
    is sum(huber(delta, residuals)). -> (theta [M, k], loss [M], converged [M] bool)."""
    theta0 = np.atleast_2d(np.asarray(theta0, float))
    M, k = theta0.shape
    out, loss, conv = np.empty((M, k)), np.empty(M), np.zeros(M, bool)
    for i in range(M):
        rj = resid_jac_for(Y[i : i + 1])

        def f(t, rj=rj):
            r, J = rj(t[None])
            return float(huber(delta, r).sum()), np.einsum("mn,mnk->k", np.clip(r, -delta, delta), J)

        res = minimize(
            f, theta0[i], jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 1000, "gtol": GTOL}
        )
        out[i], loss[i], conv[i] = res.x, res.fun, res.success
    return out, loss, conv


def best_of(resid_jac_for, y: np.ndarray, starts, bounds, delta) -> np.ndarray:
    """Point fit: L-BFGS from every start, keep the lowest loss."""
    starts = np.asarray(starts, float)
    t, loss, _ = minimize_huber(resid_jac_for, np.repeat(y[None], len(starts), axis=0), starts, bounds, delta)
    return t[int(np.argmin(loss))]


def refit(resid_jac_for, Y: np.ndarray | None, theta: np.ndarray, bounds, delta):
    """Bootstrap refits: row b of `Y` [B, n] from the point fit. -> (thetas [B, k], converged frac).

    Thousands of refits one L-BFGS-B call each cost ~20 ms apiece (scipy's per-call overhead), so
    the replicates are solved together by `batch_gauss_newton`, the same Huber objective from the
    same (L-BFGS) starting point; tests/reports/test_fits.py checks both optimisers agree."""
    if Y is None or len(Y) == 0:
        return None, math.nan
    Y = Y[np.all(np.isfinite(Y), axis=1)]
    t, conv = batch_gauss_newton(resid_jac_for(Y), np.repeat(theta[None], len(Y), axis=0), bounds, delta)
    return t, float(conv.mean())


def batch_gauss_newton(rj, theta0: np.ndarray, bounds, delta: float, iters: int = 200):
    """Huber fits of M independent problems at once: iteratively reweighted Gauss-Newton with a
    Levenberg-Marquardt damping per problem and projection on the bounds. `rj(theta [M, k])` ->
    (residuals [M, n], Jacobian [M, n, k]). -> (theta [M, k], converged [M] bool: projected
    gradient below 1e-6 per residual)."""
    t = np.array(theta0, float)
    M, k = t.shape
    lo = np.array([b[0] for b in bounds], float)
    hi = np.array([b[1] for b in bounds], float)
    r, J = rj(t)
    loss = huber(delta, r).sum(axis=1)
    mu = np.full(M, 1e-3)
    eye = np.eye(k)
    tol = 1e-6 * r.shape[1]
    for _ in range(iters):
        psi = np.clip(r, -delta, delta)
        g = np.einsum("mn,mnk->mk", psi, J)
        pg = np.where((t <= lo) & (g > 0) | (t >= hi) & (g < 0), 0.0, g)
        done = np.abs(pg).max(axis=1) < tol
        if done.all():
            break
        w = np.where(np.abs(r) > delta, delta / np.maximum(np.abs(r), 1e-300), 1.0)  # IRLS weights
        H = np.einsum("mnk,mn,mnl->mkl", J, w, J)
        A = H + mu[:, None, None] * (H * eye + 1e-12 * eye)
        step = -np.linalg.solve(A, g[..., None])[..., 0]
        tn = np.clip(t + step, lo, hi)
        rn, Jn = rj(tn)
        ln = huber(delta, rn).sum(axis=1)
        ok = (ln <= loss) & ~done
        t[ok], r[ok], J[ok], loss[ok] = tn[ok], rn[ok], Jn[ok], ln[ok]
        mu = np.where(ok, np.maximum(mu / 3, 1e-9), np.minimum(mu * 4, 1e9))
    psi = np.clip(r, -delta, delta)
    g = np.einsum("mn,mnk->mk", psi, J)
    pg = np.where((t <= lo) & (g > 0) | (t >= hi) & (g < 0), 0.0, g)
    return t, np.abs(pg).max(axis=1) < tol


def _log_err(acc: np.ndarray, floor: float) -> np.ndarray:
    return np.log(np.clip(1.0 - np.asarray(acc, float), floor, None))


def _finish(fit: Fit, theta: np.ndarray, boot: np.ndarray | None, conv: float) -> Fit:
    fit.ok = True
    fit.params = dict(zip(fit.names, map(float, theta)))
    if boot is not None and len(boot):
        lo, hi = np.quantile(boot, 0.025, axis=0), np.quantile(boot, 0.975, axis=0)
        fit.lo, fit.hi = dict(zip(fit.names, map(float, lo))), dict(zip(fit.names, map(float, hi)))
        fit.draws = boot
    else:
        fit.lo = {n: math.nan for n in fit.names}
        fit.hi = dict(fit.lo)
    fit.converged = conv
    return fit


def _exp_param(fit: Fit, name: str) -> None:
    for d in (fit.params, fit.lo, fit.hi):
        d[name] = math.exp(d[name]) if not math.isnan(d[name]) else d[name]


# ---------------------------------------------------------------------------------------------
# Power law in parameters

POWER_FORMULA = "error = A * N^(-alpha)"
POWER_BOUNDS = [(-50, 50), (-5, 5)]  # log A, alpha


def power_law(N, acc, draws=None, *, floor: float = 1e-3) -> Fit:
    """`draws` [B, n]: bootstrap replicates of `acc` (reports.intervals.bootstrap columns)."""
    N, acc = np.asarray(N, float), np.asarray(acc, float)
    fit = Fit(
        "power law in parameters (transformers)",
        POWER_FORMULA,
        ok=False,
        names=("A", "alpha"),
        n_points=len(N),
    )
    if len(np.unique(N)) < 3:
        fit.reason = f"needs transformers at 3 or more parameter counts, has {len(np.unique(N))}"
        return fit
    xbar = float(np.log(N).mean())
    x = np.log(N) - xbar  # centred: log A and alpha are then nearly uncorrelated,
    J = np.stack([-np.ones_like(x), x], axis=-1)  # which L-BFGS needs; d resid / d (a, alpha)

    def rj(A):
        Y = _log_err(A, floor)
        return lambda t: (Y - (t[:, :1] - t[:, 1:2] * x), np.repeat(J[None], len(t), axis=0))

    y = _log_err(acc, floor)
    starts = [(float(np.mean(y)), al) for al in (0.05, 0.3, 1.0)]
    theta = best_of(rj, acc, starts, POWER_BOUNDS, DELTA_LOG)
    boot, conv = refit(rj, draws, theta, POWER_BOUNDS, DELTA_LOG)
    uncentre = lambda t: np.c_[t[..., 0] + t[..., 1] * xbar, t[..., 1]]  # (a, alpha) -> (log A, alpha)
    theta = uncentre(theta[None])[0]
    boot = None if boot is None else uncentre(boot)
    fit = _finish(fit, theta, boot, conv)
    _exp_param(fit, "A")
    fit.extra.update(log_theta=theta, floor=floor)
    return fit


def power_predict(fit: Fit, N) -> np.ndarray:
    """Accuracy the power law predicts at N (point estimate)."""
    return 1 - fit.params["A"] * np.asarray(N, float) ** (-fit.params["alpha"])


# ---------------------------------------------------------------------------------------------
# Recurrence equivalence (phi)

PHI_FORMULA = "error = A * (N * r^phi)^(-alpha)"
PHI_BOUNDS = [(-50, 50), (-5, 5), (-2, 3)]  # log A, alpha, phi


def equivalence(N, r, acc, draws=None, *, floor: float = 1e-3) -> Fit:
    """Joint fit over transformer runs (r = 1) and one recursive family (r = recurrences)."""
    N, r, acc = np.asarray(N, float), np.asarray(r, float), np.asarray(acc, float)
    fit = Fit(
        "recurrence-equivalence exponent phi",
        PHI_FORMULA,
        ok=False,
        names=("A", "alpha", "phi"),
        n_points=len(N),
    )
    nN, nr = len(np.unique(N[r == 1])), len(np.unique(r[r > 1]))
    if nN < 2 or nr < 1 or len(np.unique(np.c_[N, r], axis=0)) < 4:
        missing = ([f"transformers at 2 or more sizes (has {nN})"] if nN < 2 else []) + (
            [f"the recursive family at 1 or more recurrence counts above 1 (has {nr})"] if nr < 1 else []
        )
        fit.reason = "needs " + (
            " and ".join(missing) if missing else "4 distinct (parameters, recurrences) points in all"
        )
        return fit
    if np.ptp(acc) == 0:  # a flat error surface: alpha = 0 fits it, and then any phi does
        fit.reason = f"accuracy is {acc[0]:.1%} at every point: phi is not identified"
        return fit
    x1bar = float(np.log(N).mean())
    x1, x2 = np.log(N) - x1bar, np.log(r)  # centred (see power_law)

    def rj(A):
        Y = _log_err(A, floor)

        def f(t):
            a, al, ph = t[:, :1], t[:, 1:2], t[:, 2:3]
            res = Y - (a - al * (x1 + ph * x2))
            J = np.stack(
                [
                    -np.ones_like(res),
                    np.broadcast_to(x1 + ph * x2, res.shape),
                    np.broadcast_to(al * x2, res.shape),
                ],
                axis=-1,
            )
            return res, J

        return f

    y = _log_err(acc, floor)
    starts = [(float(np.mean(y)), al, ph) for al in (0.1, 0.5) for ph in (0.2, 0.8)]
    theta = best_of(rj, acc, starts, PHI_BOUNDS, DELTA_LOG)
    boot, conv = refit(rj, draws, theta, PHI_BOUNDS, DELTA_LOG)
    uncentre = lambda t: np.c_[t[..., 0] + t[..., 1] * x1bar, t[..., 1], t[..., 2]]
    theta = uncentre(theta[None])[0]
    boot = None if boot is None else uncentre(boot)
    fit = _finish(fit, theta, boot, conv)
    _exp_param(fit, "A")
    low = fit.lo.get("alpha", math.nan)
    if fit.ok and not (fit.params["alpha"] if math.isnan(low) else low) > 0:
        # phi prices a loop in parameters: with no resolved gain from parameters there is no price
        fit.ok = False
        fit.reason = (
            f"alpha = {fit.params['alpha']:.2f} [{fit.lo['alpha']:.2f}, {fit.hi['alpha']:.2f}]: "
            "error does not resolvably fall with parameters here, so phi is not identified"
        )
    return fit


# ---------------------------------------------------------------------------------------------
# Saturating law in effective depth

DEPTH_FORMULA = "acc = c * (1 - exp(-d / tau)) * exp(-lam * d)"


def _depth_curve(t, d):
    """t [M, 3] = (c, log tau, lam), d [n] -> [M, n]."""
    t = np.atleast_2d(t)
    return t[:, :1] * (1 - np.exp(-d / np.exp(t[:, 1:2]))) * np.exp(-t[:, 2:3] * d)


def saturating(depth, acc, draws=None) -> Fit:
    d, acc = np.asarray(depth, float), np.asarray(acc, float)
    fit = Fit(
        "saturating law in effective depth",
        DEPTH_FORMULA,
        ok=False,
        names=("c", "tau", "lam"),
        n_points=len(d),
    )
    if len(np.unique(d)) < 4:
        fit.reason = f"needs 4 or more effective depths at fixed parameters, has {len(np.unique(d))}"
        return fit
    dmax = float(d.max())
    u = d / dmax  # fitted in units of the largest depth: (c, log(tau/dmax), lam*dmax) are O(1)
    bounds = [(0, 1), (math.log(1e-4), math.log(1e4)), (0, 10)]

    def rj(A):
        def f(t):
            c, s, lam = t[:, :1], np.exp(t[:, 1:2]), t[:, 2:3]
            E, D = np.exp(-u / s), np.exp(-lam * u)
            res = A - c * (1 - E) * D
            J = -np.stack([(1 - E) * D, c * D * (-E * u / s), -u * c * (1 - E) * D], axis=-1)
            return res, J

        return f

    top = float(np.clip(acc.max(), 1e-3, 1))
    starts = [(top, math.log(s), lam) for s in (0.05, 0.3, 2.0) for lam in (0.0, 1.0)]
    theta = best_of(rj, acc, starts, bounds, DELTA_ACC)
    boot, conv = refit(rj, draws, theta, bounds, DELTA_ACC)
    unscale = lambda t: np.c_[t[..., 0], t[..., 1] + math.log(dmax), t[..., 2] / dmax]
    theta = unscale(theta[None])[0]
    boot = None if boot is None else unscale(boot)
    fit = _finish(fit, theta, boot, conv)
    _exp_param(fit, "tau")
    fit.extra["theta"] = theta
    fit.extra["peak"] = peak_depth(fit.params["tau"], fit.params["lam"])
    if boot is not None and len(boot):
        peaks = [peak_depth(math.exp(t[1]), t[2]) for t in boot]
        # "nearest": some refits never fall (peak = inf); interpolating between inf would give nan
        fit.extra["peak_lo"], fit.extra["peak_hi"] = (
            float(v) for v in np.quantile(peaks, [0.025, 0.975], method="nearest")
        )
    return fit


def peak_depth(tau: float, lam: float) -> float:
    """Depth of the maximum of the saturating law (inf when lam = 0: it never falls)."""
    return math.inf if lam <= 1e-12 else tau * math.log1p(1 / (lam * tau))


def depth_predict(fit: Fit, d) -> np.ndarray:
    return _depth_curve(fit.extra["theta"], np.atleast_1d(np.asarray(d, float)))[0]


# ---------------------------------------------------------------------------------------------
# Exchange rate and hold-out checks


def exchange_rate(power: Fit, N_rec: float, acc_rec: float, acc_draws=None) -> dict:
    """Parameters a transformer needs (by its fitted power law) to reach `acc_rec`, divided by the
    recursive model's `N_rec`, with a bootstrap interval when both have draws."""
    floor = power.extra["floor"]

    def needed(A, alpha, acc):
        e = max(1 - acc, floor)
        try:
            return (A / e) ** (1 / alpha) if alpha > 1e-9 else math.inf
        except OverflowError:
            return math.inf

    point = needed(power.params["A"], power.params["alpha"], acc_rec) / N_rec
    out = {"multiple": point, "lo": math.nan, "hi": math.nan}
    if power.draws is not None and acc_draws is not None:
        m = min(len(power.draws), len(acc_draws))
        with np.errstate(over="ignore"):
            vals = [
                needed(math.exp(power.draws[i, 0]), power.draws[i, 1], acc_draws[i]) / N_rec for i in range(m)
            ]
        vals = np.nan_to_num(np.array(vals, float), nan=math.inf)  # alpha ~ 0: no size is enough
        out["lo"], out["hi"] = (float(v) for v in np.quantile(vals, [0.025, 0.975], method="nearest"))
    return out


def holdout(kind: str, x, acc, draws=None) -> dict:
    """Fit on every budget but the largest, predict the largest. `kind` is "power" (x = N) or
    "depth" (x = effective depth). -> {ok, reason | predicted, observed, error, lo, hi}."""
    x, acc = np.asarray(x, float), np.asarray(acc, float)
    top = x == x.max()
    sub = None if draws is None else draws[:, ~top]
    fit = power_law(x[~top], acc[~top], sub) if kind == "power" else saturating(x[~top], acc[~top], sub)
    if not fit.ok:
        return {"ok": False, "reason": f"without the largest budget the fit {fit.reason}"}
    xt = float(x.max())
    if kind == "power":
        pred = float(power_predict(fit, xt))
        band = None if fit.draws is None else 1 - np.exp(fit.draws[:, 0]) * xt ** (-fit.draws[:, 1])
    else:
        pred = float(depth_predict(fit, xt)[0])
        band = None if fit.draws is None else _depth_curve(fit.draws, np.array([xt]))[:, 0]
    obs = float(acc[top].mean())
    lo, hi = np.quantile(band, [0.025, 0.975]) if band is not None else (math.nan, math.nan)
    return {
        "ok": True,
        "at": xt,
        "predicted": pred,
        "observed": obs,
        "error": obs - pred,
        "lo": float(lo),
        "hi": float(hi),
    }
