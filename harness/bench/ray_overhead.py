"""Ray overhead of sweeps: per-trial start-up cost, and 2 concurrent trials vs 1 on this machine.

Runs the same trials (a `--trials`-point grid over the learning rate on
sweeps/experiments/sweep-smoke.yaml, 1 worker each; default 4) three times in one local Ray:
  train-job   one at a time, each trial fitting a 1-worker TorchTrainer (resources.train_in_trial
              false: how every trial ran before)
  serial      one at a time, the engine in the Tune trial's own actor (the default)
  parallel    the same, two side by side (max_concurrency 2)
Reports, per trial, where the time from Tune starting it to its first training step goes:
  actor      Tune starts the trial -> the trial function runs
  job        -> the training process runs: the trial's config and MLflow child run, plus (train-
             job) the Ray Train controller and its worker group
  reused     whether the trial ran in an actor an earlier trial used (Tune's reuse_actors: its
             imports, MLflow client and data cache are already loaded)
  engine     -> the first training step done (torch / DeepSpeed import, process group, data,
             model, DeepSpeed initialize, the step itself)
  train ex/s training throughput (examples per second between its logs)
and per sweep the wall time and the aggregate training throughput, with the ratios.

    python -m harness.bench.ray_overhead [--steps 300] [--runs-dir runs/bench-ray] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "sweeps" / "experiments" / "sweep-smoke.yaml"
LOG_EVERY = 10


def _probe():
    """A Tune callback noting when each trial is launched (driver clock = worker clock: one host)."""
    from ray.tune import Callback

    class TrialStarts(Callback):
        def __init__(self):
            self.started: dict[int, float] = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.started[int(trial.config["_rbench"]["number"])] = time.time()

    return TrialStarts()


def run_one(
    runs_dir: Path,
    name: str,
    concurrency: int,
    steps: int,
    overrides: list[str],
    in_trial: bool = True,
    n_trials: int = 4,
) -> dict:
    from harness.sweep import load_spec, run_sweep
    from harness.tracking import client
    from harness.tracking.sweep import trial_runs

    spec = {
        "name": name,
        "experiment": str(BASE),
        "runs_dir": str(runs_dir),
        "overrides": [
            f"train.steps={steps}",
            f"train.log_every={LOG_EVERY}",
            "train.eval_every=0",
            "train.checkpoint_every=0",
            "train.eval_examples=32",
            *overrides,
        ],
        "space": {
            "train.lr": {
                "type": "categorical",
                "values": [round(0.002 + 0.0005 * i, 6) for i in range(n_trials)],
            }
        },
        "seeds": [0],
        "max_concurrency": concurrency,
        "resources": {"workers": 1, "cpus_per_worker": 1, "train_in_trial": in_trial},
    }
    path = runs_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    probe = _probe()
    t0 = time.time()
    summary = run_sweep(path, callbacks=[probe])
    wall = time.time() - t0
    if summary["counts"]["done"] != n_trials:
        raise SystemExit(f"bench sweep {name} did not finish its {n_trials} trials: {summary['counts']}")

    sw = load_spec(path)
    state = json.loads((sw.sweep_dir / "sweep.json").read_text())
    c = client(state["tracking_uri"])
    trials = []
    for run in trial_runs(state["tracking_uri"], state["experiment"], state["sweep_id"]):
        number = int(run.data.tags["rbench.trial_number"])
        hist = sorted(c.get_metric_history(run.info.run_id, "train/loss"), key=lambda m: m.step)
        # first step ~= first log - (LOG_EVERY - 1) x (time per step between the first two logs)
        per_step = (hist[1].timestamp - hist[0].timestamp) / 1000 / (hist[1].step - hist[0].step)
        first_step = hist[0].timestamp / 1000 - (hist[0].step - 1) * per_step
        rates = [m.value for m in c.get_metric_history(run.info.run_id, "train/examples_per_s")]
        tdir = sw.sweep_dir / "trials" / f"trial_{number:05d}"
        info = json.loads((tdir / "trial.json").read_text())
        entered = info["entered"]
        worker = json.loads((tdir / "workers" / "rank0" / "worker.json").read_text())["started"]
        trials.append(
            {
                "number": number,
                "overhead_s": first_step - probe.started[number],
                "actor_s": entered - probe.started[number],
                "job_s": worker - entered,
                "engine_s": first_step - worker,
                "pid": info["pid"],
                "train_start": first_step,
                "train_end": hist[-1].timestamp / 1000,
                "examples_per_s": statistics.median(rates[1:] or rates),
            }
        )
    seen: set[int] = set()
    for t in sorted(trials, key=lambda t: t["train_start"]):
        t["reused"] = t["pid"] in seen and in_trial
        seen.add(t["pid"])
    batch = sw.base.train.batch_size
    return {
        "name": name,
        "concurrency": concurrency,
        "wall_s": wall,
        "trials": trials,
        # all examples trained / the time during which at least one trial was training
        "aggregate_examples_per_s": n_trials
        * steps
        * batch
        / _union([(t["train_start"], t["train_end"]) for t in trials]),
    }


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def measure(
    steps: int,
    trials: int,
    runs_dir: Path,
    address: str | None = None,
    overrides: list[str] | None = None,
    modes: tuple[str, ...] = ("train-job", "serial", "parallel"),
) -> list[dict]:
    """The sweeps of `modes` (see the module doc), each a run_one() result, in one Ray (started
    here unless `address` is given; left running for the caller to shut down)."""
    import os

    from harness.launch import ensure_ray

    runs_dir = Path(runs_dir).resolve()
    shutil.rmtree(runs_dir / "sweeps", ignore_errors=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # One logical CPU more than cores: each trial's driver (a Tune actor) asks for 0.01 CPU, and
    # two 1-CPU workers plus two drivers must fit at once (what `rbench sweep` sizes a local Ray to).
    ensure_ray(address, runs_dir=runs_dir, num_cpus=(os.cpu_count() or 1) + 1)
    import ray

    print(
        f"Ray resources: {ray.cluster_resources().get('CPU', 0):g} CPUs; "
        f"{steps} steps per trial; base {BASE.relative_to(REPO)}"
    )
    n = max(2, trials)
    settings = {"train-job": (1, False), "serial": (1, True), "parallel": (2, True)}
    return [
        run_one(
            runs_dir, f"bench-{mode}", settings[mode][0], steps, list(overrides or []), settings[mode][1], n
        )
        for mode in modes
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="training steps per trial")
    ap.add_argument("--trials", type=int, default=4, help="trials per sweep (>= 2)")
    ap.add_argument("--runs-dir", default=str(REPO / "runs" / "bench-ray"))
    ap.add_argument("--address", default=None, help="a Ray cluster (default: a local Ray)")
    ap.add_argument("overrides", nargs="*", help="experiment overrides, e.g. model.hidden=64")
    args = ap.parse_args()

    results = measure(args.steps, args.trials, Path(args.runs_dir), args.address, args.overrides)
    import ray

    n = max(2, args.trials)
    print()
    print(
        f"{'sweep':<18}{'trial':>6}{'overhead s':>12}{'actor':>8}{'job':>8}{'engine':>8}"
        f"{'reused':>8}{'train ex/s':>12}"
    )
    for r in results:
        for t in sorted(r["trials"], key=lambda t: t["number"]):
            print(
                f"{r['name']:<18}{t['number']:>6}{t['overhead_s']:>12.1f}{t['actor_s']:>8.1f}"
                f"{t['job_s']:>8.1f}{t['engine_s']:>8.1f}{'yes' if t['reused'] else 'no':>8}"
                f"{t['examples_per_s']:>12.0f}"
            )
    print()
    print(f"{'sweep':<18}{'concurrency':>12}{'wall s':>9}{'aggregate train ex/s':>22}")
    for r in results:
        print(
            f"{r['name']:<18}{r['concurrency']:>12}{r['wall_s']:>9.1f}{r['aggregate_examples_per_s']:>22.0f}"
        )
    job, serial, parallel = results
    print()
    fresh = [t for r in (serial, parallel) for t in r["trials"] if not t["reused"]]
    for label, group in (
        ("train-job (before)", job["trials"]),
        ("in-trial", serial["trials"] + parallel["trials"]),
        ("in-trial, fresh actor", fresh),
    ):
        over = [t["overhead_s"] for t in group]
        target = "  (target <= 5 s)" if label == "in-trial" else ""
        print(
            f"per-trial overhead, {label} (trial start -> first step): median "
            f"{statistics.median(over):.1f}s, min {min(over):.1f}s, max {max(over):.1f}s "
            f"({len(over)} trials){target}"
        )
    print(
        f"2 concurrent vs 1 (in-trial): aggregate training throughput x"
        f"{parallel['aggregate_examples_per_s'] / serial['aggregate_examples_per_s']:.2f} "
        f"(target >= 1.85), "
        f"sweep wall time x{parallel['wall_s'] / serial['wall_s']:.2f} "
        f"(trials/hour {3600 * n / serial['wall_s']:.0f} -> {3600 * n / parallel['wall_s']:.0f}; "
        f"train-job serial {3600 * n / job['wall_s']:.0f})"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
