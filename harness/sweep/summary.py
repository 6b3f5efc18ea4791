"""`rbench sweep status`: a sweep's trials (done / stopped early / running / interrupted /
failed / pending) and its best so far, read from the Optuna study (no Ray needed)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.sweep.spec import DEFAULT_FAMILY, load_spec, plain_key
from harness.sweep.state import STATE_FILE, open_storage, read_state


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve_sweep_dir(target: str | Path) -> Path:
    """A sweep folder, or a spec file (whose folder is <runs_dir>/sweeps/<name>)."""
    p = Path(target)
    if p.is_dir():
        if not (p / STATE_FILE).is_file():
            raise UserError(f"{p}: not a sweep folder (no {STATE_FILE})")
        return p
    if p.is_file():
        sweep_dir = load_spec(p).sweep_dir
        if not (sweep_dir / STATE_FILE).is_file():
            raise UserError(f"{p}: this sweep has not been started (nothing in {sweep_dir})")
        return sweep_dir
    raise UserError(f"{p}: no such sweep spec or sweep folder")


def status(sweep_dir: str | Path) -> dict[str, Any]:
    """Trials done / stopped early / running / failed / pending, read from the Optuna study."""
    import optuna
    from optuna.trial import TrialState

    sweep_dir = Path(sweep_dir)
    state = read_state(sweep_dir)
    if state is None:
        raise UserError(f"{sweep_dir}: not a sweep folder (no {STATE_FILE})")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=state["sweep_id"], storage=open_storage(state["storage"]))
    trials = study.get_trials(deepcopy=False)
    driver = state.get("driver") or {}
    alive = driver.get("host") == socket.gethostname() and _pid_alive(int(driver.get("pid", -1)))
    # trials failed as stale (their process vanished) and retried: old number -> the retry's
    retried = {n: t.number for t in trials for n in t.system_attrs.get("retry_history", [])}
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == TrialState.COMPLETE:
            st = "done"
        elif t.state == TrialState.PRUNED:
            st = "stopped"
        elif t.state == TrialState.FAIL:
            st = "failed"
        elif t.state == TrialState.RUNNING:
            st = "running" if alive else "interrupted"
        else:
            st = "pending"  # WAITING: an enqueued seed replica
        rows.append(
            {
                "number": t.number,
                "state": st,
                "seed": t.user_attrs.get("seed"),
                "family": t.user_attrs.get("family", t.params.get("family")),
                "params": {plain_key(k): v for k, v in t.params.items() if k != "family"},
                "values": list(t.values) if t.values else None,
                "flops": t.user_attrs.get("flops"),
                "reason": t.user_attrs.get("failure_reason")
                or (
                    f"its process vanished (no Optuna heartbeat): retried as trial {retried[t.number]}"
                    if t.state == TrialState.FAIL and t.number in retried
                    else None
                ),
            }
        )
    counts = {
        k: sum(r["state"] == k for r in rows)
        for k in ("done", "stopped", "running", "interrupted", "failed", "pending")
    }
    total = int(state.get("num_trials", -1))
    if total > 0:
        counts["pending"] += max(0, total - sum(r["state"] != "pending" for r in rows) - counts["pending"])
    best = None
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if done and len(study.directions) == 1:
        b = study.best_trial
        best = {
            "number": b.number,
            "value": b.value,
            "params": b.params,
            "family": b.user_attrs.get("family"),
            "seed": b.user_attrs.get("seed"),
        }
    elif done:
        best = [
            {"number": b.number, "values": b.values, "params": b.params, "family": b.user_attrs.get("family")}
            for b in study.best_trials
        ]
    return {
        "sweep_id": state["sweep_id"],
        "sweep_dir": str(sweep_dir),
        "total": total,
        "counts": counts,
        "trials": rows,
        "best": best,
        "driver_alive": alive,
    }


def format_status(s: dict[str, Any]) -> str:
    c = s["counts"]
    total = s["total"] if s["total"] > 0 else "unbounded"
    lines = [
        f"sweep {s['sweep_id']}  ({s['sweep_dir']})",
        f"trials: {total}  done {c['done']}  stopped early {c['stopped']}  running {c['running']}"
        f"  interrupted {c['interrupted']}  failed {c['failed']}  pending {c['pending']}",
    ]
    if c["interrupted"]:
        lines.append("the driver is not running: continue with `rbench sweep SPEC --resume`")
    for r in s["trials"]:
        vals = "" if r["values"] is None else " values=" + ",".join(f"{v:.4g}" for v in r["values"])
        params = " ".join(f"{k}={v}" for k, v in r["params"].items() if k != "seed")
        flops = f" flops={r['flops']:.3g}" if r["flops"] else ""
        why = f"  reason: {r['reason']}" if r["reason"] and r["state"] == "failed" else ""
        fam = f"{r['family']} " if r.get("family") and r["family"] != DEFAULT_FAMILY else ""
        lines.append(f"  #{r['number']:<4} {r['state']:<11} {fam}seed={r['seed']} {params}{vals}{flops}{why}")
    return "\n".join(lines)
