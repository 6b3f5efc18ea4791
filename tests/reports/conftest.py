"""A synthetic study logged to a real (SQLite) MLflow exactly as rbench logs runs: a sweep parent
run, trial runs with params, eval histories (test and validation), per-example correctness
artifacts, and one failed run. Accuracies follow known laws so the report's fits have data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import correctness
from harness.tracking import client

TASK = "sudoku-extreme-gen"
SWEEP = "study-abc123"
TRANSFORMERS = (20_000, 80_000, 320_000)
TRM_DEPTHS = ((1, 1), (1, 3), (2, 3), (3, 3), (3, 6))  # (T, n): depth T*(n+1)*layers
PUZZLES = 120


def _log(c, exp_id, parent, *, name, params, seed, accs, rng, run_dir, val_accs=None, tags=None):
    from mlflow.entities import Metric, Param

    run = c.create_run(
        exp_id,
        run_name=name,
        tags={
            "mlflow.parentRunId": parent,
            "rbench.sweep_id": SWEEP,
            "rbench.role": "trial",
            "rbench.task": TASK,
            "rbench.model": params["model.arch"],
            "rbench.seed": str(seed),
            "mlflow.source.git.commit": "0123456789abcdef",
            "rbench.git_dirty": "False",
            "rbench.run_dir": str(run_dir),
            "rbench.trial_number": str(tags.pop("trial")),
            **(tags or {}),
        },
    )
    rid = run.info.run_id
    c.log_batch(
        rid, params=[Param(k, str(v)) for k, v in {**params, "seed": seed, "task.name": TASK}.items()]
    )
    ids = np.arange(PUZZLES)
    ts = 1_700_000_000_000
    metrics = []
    for i, ((step, acc), (_, vacc)) in enumerate(zip(accs, val_accs or accs)):
        test = rng.random(PUZZLES) < acc
        val = rng.random(40) < vacc
        correctness.record(run_dir, step, {"test": (test, ids), "val": (val, ids[:40] + 1000)})
        for k, v in {
            "exact_accuracy": test.mean(),
            "val_exact_accuracy": val.mean(),
            "token_accuracy": min(1, test.mean() + 0.2),
            "eval_examples": PUZZLES,
            "flops_cumulative": 1e9 * step * params["num_parameters"] / 1e4,
            "inference_flops_per_example": 2e5 * params["effective_depth"] * params["num_parameters"] / 1e4,
            "puzzle_emb_parameters": 0.0,
        }.items():
            metrics.append(Metric(f"eval/{k}", float(v), ts + i, step))
    c.log_batch(
        rid,
        metrics=metrics,
        params=[
            Param("num_parameters", str(params["num_parameters"])),
            Param("effective_depth", str(params["effective_depth"])),
        ],
    )
    c.log_artifact(rid, str(correctness.path_in(run_dir)), "eval")
    c.set_tag(rid, "rbench.final_step", str(accs[-1][0]))
    c.set_terminated(rid, status="FINISHED")
    return rid


def make_study(runs_dir, seeds=(0, 1)) -> str:
    """-> tracking URI of a study: 3 transformer sizes and a TRM family at 5 depths, `seeds` each."""
    uri = f"sqlite:///{runs_dir / 'mlflow.db'}"
    c = client(uri)
    exp_id = c.create_experiment("study", artifact_location=(runs_dir / "mlartifacts").as_uri())
    parent = c.create_run(
        exp_id,
        run_name=f"sweep:{SWEEP}",
        tags={"rbench.sweep_id": SWEEP, "rbench.role": "sweep", "rbench.task": TASK},
    ).info.run_id
    c.log_dict(
        parent,
        {"name": "study", "budget": {"trials": len(seeds) * (len(TRANSFORMERS) + len(TRM_DEPTHS)) + 2}},
        "sweep.yaml",
    )
    rng = np.random.default_rng(0)
    trial = 0
    for n in TRANSFORMERS:
        acc = 1 - 6.0 * n**-0.3
        for s in seeds:
            _log(
                c,
                exp_id,
                parent,
                name=f"tf-{n}-s{s}",
                seed=s,
                rng=rng,
                run_dir=runs_dir / f"tf{n}s{s}",
                params={
                    "model.arch": "transformer",
                    "model.hidden": int(math.sqrt(n / 12)),
                    "model.layers": 4,
                    "num_parameters": n,
                    "effective_depth": 4,
                },
                accs=[(10, acc * 0.6), (20, acc * 0.9), (30, acc)],
                tags={"trial": trial},
            )
            trial += 1
    for T, nn in TRM_DEPTHS:
        d = T * (nn + 1) * 2
        acc = 0.97 * (1 - math.exp(-d / 8)) * math.exp(-0.004 * d)
        for s in seeds:
            # the last evaluation overfits: best-on-validation is the middle one; for seed 1 the
            # validation split peaks earlier than the test set does (so the choice shows)
            _log(
                c,
                exp_id,
                parent,
                name=f"trm-T{T}n{nn}-s{s}",
                seed=s,
                rng=rng,
                run_dir=runs_dir / f"trm{T}{nn}s{s}",
                params={
                    "model.arch": "trm",
                    "model.hidden": 32,
                    "model.layers": 2,
                    "model.T": T,
                    "model.n": nn,
                    "num_parameters": 20_000,
                    "effective_depth": d,
                },
                accs=[(10, acc * 0.5), (20, acc), (30, acc * 0.8)],
                tags={"trial": trial},
                val_accs=[(10, 0.99), (20, 0.3), (30, 0.2)] if s == 1 else None,
            )
            trial += 1
    bad = c.create_run(
        exp_id,
        run_name="trm-diverged",
        tags={
            "mlflow.parentRunId": parent,
            "rbench.sweep_id": SWEEP,
            "rbench.role": "trial",
            "rbench.task": TASK,
            "rbench.model": "trm",
            "rbench.trial_number": str(trial + 1),
            "rbench.failure_reason": "TrainingDiverged: training diverged at step 3: loss is nan",
        },
    )
    c.log_batch(bad.info.run_id, params=[__import__("mlflow").entities.Param("model.arch", "trm")])
    c.set_terminated(bad.info.run_id, status="FAILED")
    return uri


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    runs = tmp_path_factory.mktemp("study")
    return runs, make_study(runs)


@pytest.fixture(scope="session")
def report(study, tmp_path_factory):
    """-> (uri, ReportFiles) of the synthetic study's report (200 bootstrap replicates)."""
    from reports import build_report

    runs, uri = study
    return uri, build_report(uri, tmp_path_factory.mktemp("out"), sweep=SWEEP, n_boot=200)
