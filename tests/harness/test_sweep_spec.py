"""Sweep specs and the Optuna side of sweeps (no Ray cluster): validation with file/key/expected
errors, samplers, seed replicas, orphan adoption after a driver restart, and the FLOPs budget."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.sweep import FlopsBudget, load_spec, make_sampler, optuna_space, trial_config

REPO = Path(__file__).resolve().parents[2]


def write_spec(tmp_path: Path, experiment_file, **spec) -> Path:
    experiment_file(tmp_path / "experiments" / "tiny.yaml", tmp_path / "runs")
    data = {"name": "s1", "experiment": "experiments/tiny.yaml",
            "space": {"model.T": {"type": "categorical", "values": [1, 2]}}}
    data.update(spec)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_grid_spec_loads_and_counts_points_times_seeds(tmp_path, experiment_file):
    path = write_spec(tmp_path, experiment_file, seeds=3, space={
        "model.T": {"type": "categorical", "values": [1, 2]},
        "model.n": {"type": "int", "low": 1, "high": 3},
        "train.lr": {"type": "float", "low": 1e-3, "high": 3e-3, "step": 1e-3}})
    sw = load_spec(path)
    assert sw.spec.grid_points() == 2 * 3 * 3
    assert sw.num_trials == 18 * 3
    assert sw.sweep_dir == (tmp_path / "runs" / "sweeps" / "s1").resolve()
    assert sw.storage_url == f"sqlite:///{sw.sweep_dir / 'optuna.db'}"
    space = optuna_space(sw.spec)
    assert set(space) == {"model.T", "model.n", "train.lr", "seed"}
    cfg = trial_config(sw.base_data, {"model.T": 2, "model.n": 3, "train.lr": 0.002}, 5,
                       sweep_id="s1", number=7)
    assert (cfg.model.T, cfg.model.n, cfg.train.lr, cfg.seed) == (2, 3, 0.002, 5)
    assert cfg.name == "s1-t00007" and Path(cfg.runs_dir).is_absolute()


@pytest.mark.parametrize("spec, key, expected", [
    ({"space": {"model.depth": {"type": "categorical", "values": [1]}}},
     "space.model.depth", "unknown key"),
    ({"space": {"model.T": {"type": "categorical", "values": [0]}}},
     "space.model.T", "greater than 0"),
    ({"space": {"model.T": {"type": "int", "low": 4, "high": 2}}},
     "space.model.T", "must not exceed"),
    ({"space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}},
     "space.train.lr", "a grid needs finitely many values"),
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
])
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

    sw = load_spec(write_spec(tmp_path, experiment_file, sampler={"type": "nsga2", "seed": 3},
                              objectives=[{"metric": "exact_accuracy", "mode": "max"},
                                          {"metric": "flops", "mode": "min"}],
                              budget={"wall_time": "1.5h", "flops": 1e12},
                              space={"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2,
                                                  "log": True},
                                     "model.n": {"type": "int", "low": 1, "high": 8, "log": True}}))
    assert sw.spec.budget.wall_time == 5400
    assert sw.spec.multi_objective and sw.num_trials == -1
    assert isinstance(make_sampler(sw.spec), optuna.samplers.NSGAIISampler)
    space = optuna_space(sw.spec)
    assert space["train.lr"].log and space["model.n"].log and "seed" not in space


def test_example_specs_in_the_repository_are_valid():
    specs = sorted((REPO / "sweeps").glob("*.yaml"))
    assert specs, "sweeps/ should hold example sweep specs"
    for path in specs:
        sw = load_spec(path)
        assert sw.spec.name == path.stem


# ---------------------------------------------------------------------------------------------
# The searcher (Ray Tune's OptunaSearch on a persisted study), driven directly

def make_search(sw, storage_url):
    from harness.sweep import _study_search_class, open_storage

    spec = sw.spec
    return _study_search_class()(
        space=optuna_space(spec), metric=spec.objectives[0].metric, mode=spec.objectives[0].mode,
        sampler=make_sampler(spec), study_name=spec.name, storage=open_storage(storage_url),
        seeds=spec.seed_list, seed_in_space=spec.sampler.type == "grid")


def test_tpe_point_runs_once_per_seed_and_replicas_survive_a_restart(tmp_path, experiment_file):
    from harness.launch import FINAL_KEY

    sw = load_spec(write_spec(tmp_path, experiment_file, sampler={"type": "tpe"}, seeds=[0, 1, 2],
                              budget={"trials": 6},
                              space={"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2}}))
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
    assert first["train.lr"] == second["train.lr"] == third["train.lr"]
    assert len({c["_rbench"]["number"] for c in (first, second, third)}) == 3
    search2.on_trial_complete("b", result={"exact_accuracy": 0.5, FINAL_KEY: 1.0, "flops": 10.0})
    fourth = search2.suggest("d")            # a new point, its own seed 0
    assert fourth["seed"] == 0 and fourth["train.lr"] != first["train.lr"]
    study = search2._ot_study
    assert study.trials[1].state.name == "COMPLETE" and study.trials[1].user_attrs["flops"] == 10.0


def test_orphaned_running_trial_is_adopted_not_duplicated(tmp_path, experiment_file):
    """The driver asked Optuna for a trial, then died before Tune saved it: the next driver hands
    out that same Optuna trial (same number, same grid point) instead of asking a new one."""
    sw = load_spec(write_spec(tmp_path, experiment_file, seeds=[0]))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    lost = make_search(sw, url).suggest("lost")          # never recorded by Tune
    search = make_search(sw, url)                        # restarted driver, empty Tune state
    adopted = search.suggest("new")
    assert adopted["_rbench"] == lost["_rbench"] and adopted["model.T"] == lost["model.T"]
    other = search.suggest("next")
    assert other["model.T"] != lost["model.T"]          # the grid's other point, not a repeat
    assert len(search._ot_study.trials) == 2


def test_failures_and_early_stops_are_recorded_in_the_study(tmp_path, experiment_file):
    from harness.launch import FAILURE_KEY

    sw = load_spec(write_spec(tmp_path, experiment_file, seeds=[0]))
    search = make_search(sw, f"sqlite:///{tmp_path / 'optuna.db'}")
    search.suggest("a"), search.suggest("b")
    search.on_trial_result("a", {FAILURE_KEY: "TrainingDiverged: training diverged at step 1",
                                 "training_iteration": 1})
    search.on_trial_complete("a", error=True)
    search.on_trial_result("b", {"exact_accuracy": 0.25, "flops_cumulative": 5.0,
                                 "training_iteration": 1})
    search.on_trial_complete("b", result={"exact_accuracy": 0.25, "flops_cumulative": 5.0})
    a, b = search._ot_study.trials
    assert a.state.name == "FAIL" and "diverged" in a.user_attrs["failure_reason"]
    assert b.state.name == "PRUNED" and b.user_attrs["stopped_early"] is True
    assert b.value == 0.25          # ranked by its last intermediate value


def test_flops_budget_counts_each_trial_once():
    stop = FlopsBudget(100.0)
    stop("t1", {"flops_cumulative": 30.0})
    stop("t1", {"flops_cumulative": 60.0})     # cumulative: the latest value counts, not the sum
    stop("t2", {"loss": 1.0})
    assert not stop.stop_all()
    stop("t2", {"flops_cumulative": 40.0})
    assert stop.stop_all()
