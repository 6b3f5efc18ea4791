"""Ray fixtures for the distributed tests: ONE simulated two-node cluster per test session.

`ray.cluster_utils.Cluster` starts a head node and a second node (separate raylets, one machine),
each with 1 logical CPU, so a 2-worker job or two 1-worker trials must use both nodes. Starting Ray
costs ~15-30 s on 2 cores, hence session scope; every test writes under its own run folder.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# A tiny experiment: TRM width 32 on generated 4x4 sudoku, ~15 steps/s per worker on one core.
TINY_EXPERIMENT = {
    "name": "tiny",
    "seed": 0,
    "model": {
        "arch": "trm",
        "hidden": 32,
        "heads": 2,
        "T": 1,
        "n": 1,
        "layers": 1,
        "halt_max_steps": 2,
        "puzzle_emb_len": 0,
    },
    "task": {"name": "sudoku-4x4", "train_size": 256, "test_size": 64},
    "train": {
        "steps": 20,
        "batch_size": 16,
        "lr": 3e-3,
        "log_every": 5,
        "eval_examples": 32,
        "checkpoint_every": 10,
    },
    "engine": {"threads": 1},
}


def write_experiment(path: Path, runs_dir: Path, **sections) -> Path:
    """Write the tiny experiment (with `sections` merged in) as YAML; returns its path."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_EXPERIMENT.items()}
    for key, value in sections.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    data["runs_dir"] = str(runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def experiment_file():
    """`experiment_file(path, runs_dir, **sections)` writes the tiny experiment YAML."""
    return write_experiment


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A two-node Ray cluster for the whole session; this process is connected as its driver."""
    import ray
    from ray.cluster_utils import Cluster

    # Ray's session files go under the test's temporary folder (short enough for Ray's unix
    # sockets); ray_current_cluster is written under RAY_TMPDIR too, not /tmp/ray.
    tmp = tmp_path_factory.mktemp("ray")
    os.environ["RAY_TMPDIR"] = str(tmp)
    # Workers import harness/, models/, benchmarks/ from the checkout even when not pip-installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if ray.is_initialized():  # e.g. a local Ray another test started in this process
        ray.shutdown()
    t0 = time.time()
    # Trial drivers (Tune actors) ask for `driver_slot`, which only the head offers, so they never
    # hold a CPU that a training worker needs (Ray's "driver on a safe node" pattern).
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"driver_slot": 8}})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level="WARNING")
    cluster.wait_for_nodes()
    print(f"[ray_cluster] two nodes up in {time.time() - t0:.1f}s")
    yield cluster
    ray.shutdown()
    cluster.shutdown()
