"""Learning-rate schedules mean what they say: cosine decays (to 0 unless a floor is given), and a
cosine that could not decay is refused."""

from __future__ import annotations

import math

import pytest

from harness.engine import Hooks, train
from harness.errors import ConfigError
from test_engine import make_cfg


@pytest.mark.parametrize("floor", [None, 0.1])
def test_cosine_decays_to_its_floor_in_the_logged_lr(runs_dir, floor):
    steps, warm, lr = 8, 2, 1e-3
    over = dict(
        train__steps=steps,
        train__lr=lr,
        train__lr_warmup_steps=warm,
        train__log_every=1,
        train__lr_schedule="cosine",
    )
    if floor is not None:
        over["train__lr_min_ratio"] = floor
    logged: dict[int, float] = {}
    train(
        make_cfg(runs_dir, **over),
        runs_dir / "cos",
        progress=False,
        hooks=Hooks(on_log=lambda step, m: logged.__setitem__(step, m["lr"])),
    )
    assert sorted(logged) == list(range(1, steps + 1))
    lo = (floor or 0.0) * lr
    assert logged[1] == pytest.approx(lr / warm) and logged[warm] == pytest.approx(lr)  # warm-up
    after = [logged[s] for s in range(warm, steps + 1)]
    assert all(a > b for a, b in zip(after, after[1:])), after  # strictly decreasing
    assert logged[steps] == pytest.approx(lo, abs=1e-12)  # the floor, at the last step
    mid = warm + (steps - warm) // 2  # half-way: the mean
    assert logged[mid] == pytest.approx(lo + (lr - lo) * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_a_cosine_that_cannot_decay_is_refused(runs_dir):
    with pytest.raises(ConfigError) as ei:
        make_cfg(runs_dir, train__lr_schedule="cosine", train__lr_min_ratio=1.0)
    assert ei.value.key == "train.lr_min_ratio" and "constant" in str(ei.value)
    with pytest.raises(ConfigError) as ei:  # a floor without a decay is a mistake too
        make_cfg(runs_dir, train__lr_schedule="constant", train__lr_min_ratio=0.1)
    assert ei.value.key == "train.lr_min_ratio"
    make_cfg(runs_dir, train__lr_schedule="constant", train__lr_min_ratio=1.0)  # the reference's
    assert make_cfg(runs_dir, train__lr_schedule="cosine").train.lr_min_ratio is None
