"""Sweep specs and the Optuna side of sweeps (no Ray cluster): validation with file/key/expected
errors, samplers, seed replicas, orphan adoption after a driver restart, and the FLOPs budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.outcome import TrialOutcome
from harness.sweep import FlopsBudget, load_spec, make_sampler

REPO = Path(__file__).resolve().parents[2]


def write_spec(tmp_path: Path, experiment_file, **spec) -> Path:
    experiment_file(tmp_path / "experiments" / "tiny.yaml", tmp_path / "runs")
    data = {
        "name": "s1",
        "experiment": "experiments/tiny.yaml",
        "space": {"model.T": {"type": "categorical", "values": [1, 2]}},
    }
    data.update(spec)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_grid_spec_loads_and_counts_points_times_seeds(tmp_path, experiment_file):
    path = write_spec(
        tmp_path,
        experiment_file,
        seeds=3,
        space={
            "model.T": {"type": "categorical", "values": [1, 2]},
            "model.n": {"type": "int", "low": 1, "high": 3},
            "train.lr": {"type": "float", "low": 1e-3, "high": 3e-3, "step": 1e-3},
        },
    )
    sw = load_spec(path)
    assert sw.spec.grid_points() == 2 * 3 * 3
    assert sw.num_trials == 18 * 3
    assert sw.sweep_dir == (tmp_path / "runs" / "sweeps" / "s1").resolve()
    assert sw.storage_url == f"sqlite:///{sw.sweep_dir / 'optuna.db'}"
    assert set(sw.spec.grid()[0][1]) == {"model.T", "model.n", "train.lr"}
    cfg = sw.trial_config(
        "default", {"model.T": 2, "model.n": 3, "train.lr": 0.002}, 5, sweep_id="s1", number=7
    )
    assert (cfg.model.T, cfg.model.n, cfg.train.lr, cfg.seed) == (2, 3, 0.002, 5)
    assert cfg.name == "s1-t00007" and Path(cfg.runs_dir).is_absolute()


@pytest.mark.parametrize(
    "spec, key, expected",
    [
        (
            {"space": {"model.depth": {"type": "categorical", "values": [1]}}},
            "space.model.depth",
            "unknown key",
        ),
        ({"space": {"model.T": {"type": "categorical", "values": [0]}}}, "space.model.T", "greater than 0"),
        ({"space": {"model.T": {"type": "int", "low": 4, "high": 2}}}, "space.model.T", "must not exceed"),
        (
            {"space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}},
            "space.train.lr",
            "a grid needs finitely many values",
        ),
        ({"space": {"model.T": {"type": "ranged", "values": [1]}}}, "space.model.T", "type"),
        ({"sampler": {"type": "nsga2"}, "budget": {"trials": 4}}, "sampler.type", "two objectives"),
        ({"sampler": {"type": "tpe"}}, "budget", "needs budget.trials"),
        ({"budget": {"wall_time": "soon"}}, "budget.wall_time", "unit s, m or h"),
        ({"scheduler": {"type": "asha"}}, "scheduler", "max_t and grace_period"),
        ({"space": {"seed": {"type": "categorical", "values": [1]}}}, "space", "list seeds under"),
        ({"experiment": "missing.yaml"}, "experiment", "not found"),
        ({"budget": {"trials": 3}}, "budget.trials", "at most the grid's 2 points"),
        ({"max_concurrency": 0}, "max_concurrency", "greater than 0"),
        ({"name": "has space"}, "name", "pattern"),
        ({"colour": "red"}, "colour", "unknown key"),
    ],
)
def test_bad_specs_name_file_key_and_expectation(tmp_path, experiment_file, spec, key, expected):
    path = write_spec(tmp_path, experiment_file, **spec)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    err = info.value
    assert err.source == str(path)
    assert err.key == key
    assert expected in err.expected
    assert str(err).startswith(f"{path}: {key}: ")


def test_bad_override_of_the_base_experiment_names_both_files(tmp_path, experiment_file):
    path = write_spec(tmp_path, experiment_file, overrides=["train.lr=-1"])
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert info.value.key == "train.lr"
    assert "tiny.yaml" in info.value.source and str(path) in info.value.source


def test_wall_time_units_and_samplers(tmp_path, experiment_file):
    import optuna

    sw = load_spec(
        write_spec(
            tmp_path,
            experiment_file,
            sampler={"type": "nsga2", "seed": 3},
            objectives=[{"metric": "exact_accuracy", "mode": "max"}, {"metric": "flops", "mode": "min"}],
            budget={"wall_time": "1.5h", "flops": 1e12},
            space={
                "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                "model.n": {"type": "int", "low": 1, "high": 8, "log": True},
            },
        )
    )
    assert sw.spec.budget.wall_time == 5400
    assert sw.spec.multi_objective and sw.num_trials == -1
    assert isinstance(make_sampler(sw.spec), optuna.samplers.NSGAIISampler)
    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = make_search(sw, url).suggest("a")
    assert set(first["params"]) == {"train.lr", "model.n"}
    dist = optuna.load_study(study_name=sw.spec.name, storage=url).trials[0].distributions
    assert dist["train.lr"].log and dist["model.n"].log and "seed" not in dist


def test_example_specs_in_the_repository_are_valid():
    specs = sorted((REPO / "sweeps").glob("*.yaml"))
    assert specs, "sweeps/ should hold example sweep specs"
    for path in specs:
        sw = load_spec(path)
        assert sw.spec.name == path.stem


# ---------------------------------------------------------------------------------------------
# The searcher (Ray Tune's OptunaSearch on a persisted study), driven directly


def make_search(sw, storage_url):
    """The sweep's searcher on a study created as the driver creates it."""
    import optuna

    from harness.sweep import StudySearcher

    directions = ["maximize" if o.mode == "max" else "minimize" for o in sw.spec.objectives]
    optuna.create_study(
        storage=storage_url, study_name=sw.spec.name, directions=directions, load_if_exists=True
    )
    return StudySearcher(sw.spec, study_name=sw.spec.name, storage_url=storage_url)


def finished(**metrics) -> dict:
    """The final report of a finished trial."""
    return TrialOutcome(status="finished", step=10, metrics=metrics, flops=10.0).to_report()


def test_tpe_point_runs_once_per_seed_and_replicas_survive_a_restart(tmp_path, experiment_file):
    sw = load_spec(
        write_spec(
            tmp_path,
            experiment_file,
            sampler={"type": "tpe"},
            seeds=[0, 1, 2],
            budget={"trials": 6},
            space={"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
        )
    )
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = make_search(sw, url)
    first = search.suggest("a")
    # a restarted driver: Tune restores the searcher's saved state; the queued replicas are in the
    # study itself
    search.save(str(tmp_path / "searcher.pkl"))
    search2 = make_search(sw, url)
    search2.restore(str(tmp_path / "searcher.pkl"))
    second, third = search2.suggest("b"), search2.suggest("c")
    assert [c["seed"] for c in (first, second, third)] == [0, 1, 2]
    assert first["params"]["train.lr"] == second["params"]["train.lr"] == third["params"]["train.lr"]
    assert len({c["_rbench"]["number"] for c in (first, second, third)}) == 3
    search2.on_trial_complete("b", result=finished(exact_accuracy=0.5))
    fourth = search2.suggest("d")  # a new point, its own seed 0
    assert fourth["seed"] == 0 and fourth["params"]["train.lr"] != first["params"]["train.lr"]
    study = search2.study
    assert study.trials[1].state.name == "COMPLETE" and study.trials[1].user_attrs["flops"] == 10.0
    assert study.trials[1].value == 0.5


def test_orphaned_running_trial_is_adopted_not_duplicated(tmp_path, experiment_file):
    """The driver asked Optuna for a trial, then died before Tune saved it: the next driver hands
    out that same Optuna trial (same number, same grid point) instead of asking a new one."""
    sw = load_spec(write_spec(tmp_path, experiment_file, seeds=[0]))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    lost = make_search(sw, url).suggest("lost")  # never recorded by Tune
    search = make_search(sw, url)  # restarted driver, empty Tune state
    adopted = search.suggest("new")
    assert adopted["_rbench"] == lost["_rbench"] and adopted["params"] == lost["params"]
    other = search.suggest("next")
    assert other["params"]["model.T"] != lost["params"]["model.T"]  # the grid's other point
    assert len(search.study.trials) == 2
    assert search.suggest("past the end") == search.FINISHED


def test_failures_and_early_stops_are_recorded_in_the_study(tmp_path, experiment_file):
    sw = load_spec(write_spec(tmp_path, experiment_file, seeds=[0]))
    search = make_search(sw, f"sqlite:///{tmp_path / 'optuna.db'}")
    search.suggest("a"), search.suggest("b")
    failed = TrialOutcome.failed("TrainingDiverged: training diverged at step 1", step=1)
    search.on_trial_result("a", {**failed.to_report(), "training_iteration": 1})
    search.on_trial_complete("a", result=failed.to_report())
    search.on_trial_result("b", {"exact_accuracy": 0.25, "flops_cumulative": 5.0, "training_iteration": 1})
    search.on_trial_complete("b", result={"exact_accuracy": 0.25, "flops_cumulative": 5.0})
    a, b = search.study.trials
    assert a.state.name == "FAIL" and "diverged" in a.user_attrs["failure_reason"]
    assert b.state.name == "PRUNED" and b.user_attrs["stopped_early"] is True
    assert b.value == 0.25  # ranked by its last intermediate value


def test_flops_budget_counts_each_trial_once():
    stop = FlopsBudget(100.0)
    stop("t1", {"flops_cumulative": 30.0})
    stop("t1", {"flops_cumulative": 60.0})  # cumulative: the latest value counts, not the sum
    stop("t2", {"loss": 1.0})
    assert not stop.stop_all()
    stop("t2", {"flops_cumulative": 40.0})
    assert stop.stop_all()


# ---------------------------------------------------------------------------------------------
# Families

TWO_FAMILIES = {
    "trm": {"fixed": {"model.arch": "trm"}, "space": {"model.n": [1, 2]}},
    "transformer": {
        "fixed": {"model.arch": "transformer", "model.match_params": {"family": "trm"}},
        "space": {"model.match_multiple": [1, 4, 16]},
    },
}


def test_transformer_family_sized_from_trm_hits_1x_4x_16x(tmp_path, experiment_file):
    from harness.sweep.sizing import count_parameters, match_ratio

    sw = load_spec(write_spec(tmp_path, experiment_file, families=TWO_FAMILIES, space={}))
    trm = sw.trial_config("trm", {"model.n": 2}, 0, sweep_id="s1", number=0)
    ratios = {}
    for multiple in (1, 4, 16):
        cfg = sw.trial_config("transformer", {"model.match_multiple": multiple}, 0, sweep_id="s1", number=1)
        assert cfg.model.arch == "transformer" and cfg.model.match_params == count_parameters(trm)
        ratios[multiple] = match_ratio(cfg)
    assert all(abs(r / m - 1) <= 0.10 for m, r in ratios.items()), ratios


def test_grid_over_families_enumerates_the_union_times_seeds(tmp_path, experiment_file):
    sw = load_spec(
        write_spec(
            tmp_path, experiment_file, families=TWO_FAMILIES, seeds=[0, 1], space={"train.lr": [0.001, 0.002]}
        )
    )
    assert sw.spec.grid_points() == 2 * 2 + 3 * 2 and sw.num_trials == 10 * 2
    search = make_search(sw, f"sqlite:///{tmp_path / 'optuna.db'}")
    got = [search.suggest(f"t{i}") for i in range(sw.num_trials)]
    assert search.suggest("one more") == search.FINISHED
    seen = {(c["family"], tuple(sorted(c["params"].items())), c["seed"]) for c in got}
    assert len(seen) == 20
    assert {c["family"] for c in got} == {"trm", "transformer"}
    for c, t in zip(got, search.study.trials):
        assert t.user_attrs["family"] == c["family"] == t.params["family"]
        own = set(TWO_FAMILIES[c["family"]]["space"])
        assert set(c["params"]) == own | {"train.lr"}


def test_conditional_tpe_never_gives_a_trial_a_key_of_another_family(tmp_path, experiment_file):
    families = {
        "trm": {"fixed": {"model.arch": "trm"}, "space": {"model.n": {"type": "int", "low": 1, "high": 4}}},
        "looped": {
            "fixed": {"model.arch": "looped"},
            "space": {"model.loops": {"type": "int", "low": 1, "high": 4}},
        },
    }
    sw = load_spec(
        write_spec(
            tmp_path,
            experiment_file,
            families=families,
            seeds=[0],
            sampler={"type": "tpe", "seed": 1},
            budget={"trials": 30},
            space={"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        )
    )
    search = make_search(sw, f"sqlite:///{tmp_path / 'optuna.db'}")
    fams = []
    for i in range(30):  # past TPE's 10 random start-up trials: the model-based part too
        c = search.suggest(f"t{i}")
        fam, own = c["family"], set(families[c["family"]]["space"])
        fams.append(fam)
        assert set(c["params"]) == own | {"train.lr"}, c
        t = search.study.trials[c["_rbench"]["number"]]
        assert {k.split(":")[0] for k in t.params if ":" in k} == {fam}
        cfg = sw.trial_config(fam, c["params"], c["seed"], sweep_id="s1", number=i)
        assert cfg.model.arch == fam
        value = c["params"]["train.lr"] * (100 if fam == "trm" else 1)
        search.on_trial_complete(f"t{i}", result=finished(exact_accuracy=value))
    assert set(fams) == {"trm", "looped"}


@pytest.mark.parametrize(
    "families, key, expected",
    [
        ({"trm": {"space": {"model.loops": [1]}}}, "families.trm.space.model.loops", "unknown key"),
        (
            {"tf": {"fixed": {"model.arch": "transformer", "model.match_params": {"family": "hrm"}}}},
            "families.tf.fixed.model.match_params",
            "not another family",
        ),
        (
            {"tf": {"fixed": {"model.arch": "transformer", "model.T": 2}}},
            "families.tf.fixed.model.T",
            "unknown key",
        ),
        ({"tf": {"fixed": {"model.match_params": {"fam": "trm"}}}}, "families.tf.fixed", "{family: NAME}"),
        ({"default": {}}, "families", "not 'default'"),
    ],
)
def test_family_mistakes_name_file_family_and_key(tmp_path, experiment_file, families, key, expected):
    path = write_spec(tmp_path, experiment_file, families=families, space={})
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    err = info.value
    assert (err.source, err.key) == (str(path), key)
    assert expected in err.expected


# ---------------------------------------------------------------------------------------------
# ASHA across a resume


def test_asha_record_of_earlier_trials_survives_a_resume(tmp_path):
    """Tune pickles the scheduler once, when the sweep starts, and restores THAT on --resume;
    SweepASHA reloads its rungs from the sweep folder, so a trial after the resume is judged
    against the trials before it (a bad one is stopped at the first rung, not waved through)."""
    import copy
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from harness.sweep.schedule import SweepASHA

    def trial(i):
        return SimpleNamespace(trial_id=f"t{i}")

    kwargs = dict(
        state_file=tmp_path / "asha.pkl",
        time_attr="flops_cumulative",
        metric="exact_accuracy",
        mode="max",
        max_t=100.0,
        grace_period=10.0,
        reduction_factor=2,
        brackets=1,
        stop_last_trials=False,
    )
    asha = SweepASHA(**kwargs)
    as_pickled_at_start = copy.deepcopy(asha)
    for i, acc in enumerate([0.7, 0.8, 0.9]):
        asha.on_trial_add(None, trial(i))
        assert (
            asha.on_trial_result(None, trial(i), {"flops_cumulative": 10.0, "exact_accuracy": acc})
            == TrialScheduler.CONTINUE
        )
    resumed = as_pickled_at_start  # what Tuner.restore hands back
    resumed.on_trial_add(None, trial(3))
    action = resumed.on_trial_result(None, trial(3), {"flops_cumulative": 10.0, "exact_accuracy": 0.1})
    assert action == TrialScheduler.STOP


# ---------------------------------------------------------------------------------------------
# The console


def test_console_prints_one_line_per_trial_event_and_the_progress(tmp_path):
    import io
    from types import SimpleNamespace

    from harness.sweep.console import ConsoleReporter

    out = io.StringIO()
    con = ConsoleReporter(sweep_dir=str(tmp_path), total=2, metric="exact_accuracy", mode="max", out=out)
    a = SimpleNamespace(
        trial_id="a",
        config={"family": "trm", "seed": 0, "params": {"model.n": 2}, "_rbench": {"number": 0}},
        last_result=None,
    )
    b = SimpleNamespace(
        trial_id="b",
        config={"family": "transformer", "seed": 0, "params": {}, "_rbench": {"number": 1}},
        last_result=None,
    )
    con.on_trial_start(0, [], a)
    con.on_trial_start(0, [], b)
    con.on_trial_result(0, [], a, {"step": 10, "exact_accuracy": 0.25})
    con.on_trial_result(0, [], a, {"step": 10, "exact_accuracy": 0.25})  # same report again
    a.last_result = TrialOutcome(
        status="finished", step=20, metrics={"exact_accuracy": 0.5}, flops=3e9
    ).to_report()
    con.on_trial_complete(0, [], a)
    b.last_result = TrialOutcome.failed("TrainingDiverged: loss is nan", step=3).to_report()
    con.on_trial_complete(0, [], b)
    lines = out.getvalue().splitlines()
    assert [line.split()[:2] for line in lines if line.startswith("#")] == [
        ["#0", "started"],
        ["#1", "started"],
        ["#0", "evaluated"],
        ["#0", "finished"],
        ["#1", "failed"],
    ]
    assert "model.n=2" in lines[0] and "trm" in lines[0]
    bars = [line for line in lines if line.startswith("[")]
    assert len(bars) == 2 and "1/2 trials" in bars[0] and "ETA" in bars[0]
    assert "2/2 trials" in bars[1] and "best exact_accuracy 0.5000 (#0)" in bars[1]
    assert "TrainingDiverged: loss is nan" in lines[-2]
