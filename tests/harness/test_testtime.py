"""Test-time compute (harness/testtime.py, `rbench eval`): depth x breadth on a trained checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import checkpoint
from harness import testtime as tt
from harness.cli import main as cli
from harness.config import validate
from models.act import LatentNoise, perturb

TRAINED_STEPS = 2


def tiny_cfg(runs_dir, **model):
    return validate(
        {
            "name": "testtime",
            "seed": 0,
            "runs_dir": str(runs_dir),
            "model": {
                "arch": "trm",
                "hidden": 32,
                "heads": 2,
                "T": 1,
                "n": 1,
                "layers": 1,
                "halt_max_steps": TRAINED_STEPS,
                "puzzle_emb_len": 1,
                **model,
            },
            "task": {"name": "sudoku-4x4", "train_size": 512, "test_size": 64, "clues": 12},
            "train": {
                "steps": 60,
                "batch_size": 32,
                "lr": 3e-3,
                "log_every": 20,
                "eval_examples": 64,
                "ema_decay": 0.9,
            },
            "engine": {"threads": 1},
        },
        "test",
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A TRM (with a puzzle-embedding table) trained for 60 steps with EMA and MLflow tracking
    (~15 s alone on one core): (cfg, run_dir, result)."""
    from harness.commands.run import run_local

    runs = tmp_path_factory.mktemp("runs")
    cfg = tiny_cfg(runs)
    result, run_id = run_local(cfg, runs / "trained", progress=False)
    assert run_id is not None and result.metrics["exact_accuracy"] > 0  # a non-trivial number
    return cfg, runs / "trained", result


def load(cfg, run_dir):
    from benchmarks import build
    from benchmarks.registry import resolve

    test = build(resolve(cfg.task), Path(cfg.runs_dir) / "data")["test"]
    model, weights = tt.load_model(
        cfg, checkpoint.latest(run_dir), test.meta, torch.device("cpu"), torch.float32
    )
    return model, test, weights


def batch_of(test, n=8):
    from harness.engine import to_batch

    return to_batch(test, np.arange(n), torch.device("cpu"))


@pytest.mark.slow
def test_eval_at_trained_steps_reproduces_the_run_and_logs_a_child_run(trained, capsys):
    """`rbench eval` at the trained steps with one sample gives the training run's final exact and
    token accuracy exactly (same evaluation code path, EMA weights), and logs an MLflow child run
    of the training run."""
    _, run_dir, result = trained
    assert cli(["eval", str(run_dir), "--steps", f"1,{TRAINED_STEPS},4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "<- as trained" in out and "mlflow child run:" in out
    stem = run_dir / "testtime" / f"step_{result.step:08d}-noise0-q"  # as documented
    data = tt.read(stem.with_suffix(".json"))
    assert data["weights"] == "ema" and data["eval_examples"] == 64
    point = next(p for p in data["points"] if p["steps"] == TRAINED_STEPS and p["samples"] == 1)
    assert point["exact_accuracy"] == result.metrics["exact_accuracy"]
    assert point["token_accuracy"] == result.metrics["token_accuracy"]
    assert len(point["residual"]) == TRAINED_STEPS and all(r > 0 for r in point["residual"])
    assert stem.with_suffix(".csv").read_text().splitlines()[0].startswith("steps,samples,exact")
    # the same examples right and wrong as the run's final evaluation, one by one
    from harness import correctness

    final = correctness.read(correctness.path_in(run_dir))["splits"]["test"][0][-1]
    mine = tt.read_correct(stem.with_suffix(".npz"))
    assert np.array_equal(mine[(TRAINED_STEPS, 1)], final)
    assert final.sum() == round(result.metrics["exact_accuracy"] * 64) > 0

    from harness.tracking import client, read_run_id

    parent_id = read_run_id(run_dir)
    meta = json.loads((run_dir / "mlflow_run.json").read_text())
    c = client(meta["uri"])
    parent = c.get_run(parent_id)
    child_id = out.split("mlflow child run:")[1].split()[0]
    child = c.get_run(child_id)
    assert child.data.tags["mlflow.parentRunId"] == parent_id
    assert child.info.experiment_id == parent.info.experiment_id and child.info.status == "FINISHED"
    key = f"testtime/s{TRAINED_STEPS}_k1/exact_accuracy"
    assert child.data.metrics[key] == result.metrics["exact_accuracy"]
    history = c.get_metric_history(child_id, "testtime/s4_k1/residual")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]


@pytest.mark.slow
def test_flops_per_point_are_analytic_times_steps_times_samples_and_measured_agrees(trained):
    from harness.flops import counting

    cfg, run_dir, _ = trained
    model, test, _ = load(cfg, run_dir)
    res = tt.run_test_time(
        cfg,
        checkpoint.latest(run_dir),
        tt.Grid(steps=(3,), samples=(1, 2), noise=0.2, examples=16),
        progress=False,
    )
    per_segment = model.flops_per_example("eval")
    for p in res.points:
        assert p.inference_flops_per_example == per_segment * p.steps * p.samples
    batch = batch_of(test, 8)
    predictor = tt.Predictor(model, steps=3, samples=2, noise=0.2, generator=torch.Generator().manual_seed(0))
    with counting() as c:
        predictor(batch)
    measured = c.get_total_flops() / 8
    assert measured == pytest.approx(res.point(3, 2).inference_flops_per_example, rel=0.02)


@pytest.mark.slow
def test_no_noise_samples_agree_and_noise_makes_them_differ(trained):
    cfg, run_dir, _ = trained
    model, test, _ = load(cfg, run_dir)
    batch = batch_of(test, 16)
    quiet = tt.Predictor(model, steps=TRAINED_STEPS, samples=4, noise=0.0)
    preds, _ = quiet(batch)
    sp, sq = quiet.last_samples
    assert (sp == sp[:, :1]).all() and torch.equal(sq, sq[:, :1].expand_as(sq))
    single, q1 = model.predict(batch)
    assert torch.equal(preds, single)
    noisy = tt.Predictor(
        model, steps=TRAINED_STEPS, samples=4, noise=0.5, generator=torch.Generator().manual_seed(0)
    )
    noisy(batch)
    np_, nq = noisy.last_samples
    assert torch.equal(np_[:, 0], single) and torch.equal(nq[:, 0], q1)  # sample 0: unperturbed
    assert (nq[:, 1:] != nq[:, :1]).all()  # every noisy sample's logit moved
    assert (np_[:, 1:] != np_[:, :1]).any()  # and some answers changed
    # through the evaluation path: K = 4 without noise scores exactly like K = 1
    res = tt.run_test_time(
        cfg, checkpoint.latest(run_dir), tt.Grid(steps=(TRAINED_STEPS,), samples=(1, 4)), progress=False
    )
    assert res.point(TRAINED_STEPS, 4).metrics == res.point(TRAINED_STEPS, 1).metrics


class ConstructedModel:
    """Stands in for a model: `predict` returns given per-sample answers and halting logits."""

    def __init__(self, preds, q):  # preds [B, K, L], q [B, K]
        self.preds, self.q = preds, q

    def predict(self, rows, steps=None, noise=None, residuals=None):
        B, K, L = self.preds.shape
        assert rows["inputs"].shape[0] == B * K
        residuals.extend(torch.ones(B * K) for _ in range(steps))
        return self.preds.reshape(B * K, L), self.q.reshape(B * K)


def constructed_batch(B, L=3):
    return {k: torch.zeros(B, L, dtype=torch.long) for k in ("inputs", "labels")} | {
        "puzzle_identifiers": torch.zeros(B, dtype=torch.long)
    }


def test_select_q_returns_the_sample_with_the_highest_halting_logit():
    preds = torch.arange(2 * 3 * 3).view(2, 3, 3)  # every sample distinct
    q = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 1.0]])
    p, chosen_q = tt.Predictor(ConstructedModel(preds, q), steps=1, samples=3, select="q")(
        constructed_batch(2)
    )
    assert torch.equal(p, torch.stack([preds[0, 1], preds[1, 0]]))
    assert torch.equal(chosen_q, torch.tensor([2.0, 3.0]))


def test_vote_picks_the_majority_answer_and_breaks_ties_by_halting_logit():
    a, b, c = [1, 1, 1], [2, 2, 2], [3, 3, 3]
    preds = torch.tensor(
        [
            [a, b, a, b, a],  # a three times (low q), b twice (highest q)
            [c, b, b, c, a],
        ]
    )  # b and c twice each: c holds the highest q
    q = torch.tensor([[0.0, 5.0, 0.1, 4.0, 0.2], [0.0, 1.0, 2.0, 3.0, 9.0]])
    assert tt.select_by_vote(preds, q).tolist() == [4, 3]
    p, _ = tt.Predictor(ConstructedModel(preds, q), steps=1, samples=5, select="vote")(constructed_batch(2))
    assert p.tolist() == [a, c]


class CountingNoise(LatentNoise):
    calls = 0

    def __call__(self, z):
        CountingNoise.calls += 1
        return super().__call__(z)


@pytest.mark.parametrize(
    "arch,extra,recursions",
    [
        ("transformer", {"layers": 1}, 1),
        ("looped", {"layers": 1, "loops": 2}, 2),
        ("trm", {"layers": 1, "T": 3, "n": 1}, 3),
        ("hrm", {"H_layers": 1, "L_layers": 1, "H_cycles": 3, "L_cycles": 2}, 3),
    ],
)
def test_every_architecture_takes_depth_and_noise(runs_dir, arch, extra, recursions):
    """Untrained tiny models: `steps` sets the segments (residual curve length), noise moves every
    perturbed sample, none of it touches sample 0, and it is drawn once per recursion."""
    from benchmarks import build
    from benchmarks.registry import resolve
    from models import build_model

    cfg = validate(
        {
            "runs_dir": str(runs_dir),
            "model": {
                "arch": arch,
                "hidden": 16,
                "heads": 2,
                "halt_max_steps": 2,
                "puzzle_emb_len": 0,
                **extra,
            },
            "task": {"name": "sudoku-4x4", "train_size": 16, "test_size": 8},
        },
        "test",
    )
    test = build(resolve(cfg.task), runs_dir / "data")["test"]
    torch.manual_seed(0)
    model = build_model(cfg.model, test.meta).eval()
    torch.nn.init.normal_(model.core.q_head.weight)  # untrained q heads start constant (zeros)
    batch = batch_of(test, 4)
    pred = tt.Predictor(model, steps=3, samples=3, noise=0.3, generator=torch.Generator().manual_seed(1))
    pred(batch)
    assert len(pred.residual_curve()) == 3
    sp, sq = pred.last_samples
    base_p, base_q = model.predict(batch, steps=3)
    assert torch.equal(sp[:, 0], base_p) and torch.equal(sq[:, 0], base_q)
    assert (sq[:, 1:] != sq[:, :1]).all()
    CountingNoise.calls = 0
    model.predict(batch, steps=3, noise=CountingNoise(0.3, torch.Generator().manual_seed(2)))
    assert CountingNoise.calls == 3 * recursions


def test_zero_noise_is_no_work():
    z = 10 * torch.randn(2, 3, 4)
    assert perturb(z, None) is z and perturb(z, LatentNoise(0.0)) is z
    g = torch.Generator().manual_seed(0)
    moved = perturb(z, LatentNoise(0.1, g))
    rms = z.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()
    assert ((moved - z) / rms).std().item() == pytest.approx(0.1, rel=0.3)  # relative to the RMS


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli(["eval", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert cli(["eval", str(tmp_path), "--steps", "0,a", "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert "--steps" in err and len(err.strip().splitlines()) == 1


def test_sweep_test_time_section_is_validated_with_file_and_key(runs_dir):
    from harness.errors import ConfigError

    spec = tt.parse_spec({"samples": [1, 4], "noise": 0.1, "select": "vote"}, "sweep.yaml")
    grid = spec.grid(tiny_cfg(runs_dir))
    assert grid.steps == tt.default_steps(TRAINED_STEPS) == (1, 2, 4)
    assert grid.samples == (1, 4) and grid.noise == 0.1 and grid.select == "vote"
    for bad, key in (
        ({"nosie": 0.1}, "test_time.nosie"),
        ({"samples": [1, 0]}, "test_time.samples.1"),
        ({"select": "max"}, "test_time.select"),
        ({"noise": -1}, "test_time.noise"),
    ):
        with pytest.raises(ConfigError) as e:
            tt.parse_spec(bad, "sweep.yaml")
        assert str(e.value).startswith(f"sweep.yaml: {key}:"), str(e.value)


def test_dataset_cache_is_found_beside_the_run_when_runs_dir_is_relative_elsewhere(tmp_path):
    cfg = tiny_cfg("runs-that-are-not-here")
    ck = tmp_path / "runs" / "r1" / "checkpoints" / "step_00000001"
    ck.mkdir(parents=True)
    assert tt.data_root(cfg, ck) == Path("runs-that-are-not-here") / "data"  # nothing beside
    (tmp_path / "runs" / "data").mkdir()
    assert tt.data_root(cfg, ck) == tmp_path / "runs" / "data"


@pytest.mark.slow
def test_a_run_without_mlflow_is_evaluated_and_mlflow_skipped_in_one_line(trained, tmp_path, capsys):
    import shutil

    _, run_dir, result = trained
    copy = tmp_path / "untracked"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("mlflow_run.json"))
    ck = checkpoint.latest(copy)
    assert cli(["eval", str(ck), "--steps", str(TRAINED_STEPS), "--no-progress"]) == 0  # a checkpoint dir
    out = capsys.readouterr().out
    assert "mlflow: skipped (the run folder has no mlflow_run.json)" in out
    data = tt.read(copy / "testtime" / f"step_{result.step:08d}-noise0-q.json")
    assert data["points"][0]["exact_accuracy"] == result.metrics["exact_accuracy"]
