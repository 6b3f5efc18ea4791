"""Which data a run trains on: the published files, a local copy of them, or a generated stand-in.

A paper recipe (sweeps/experiments/paper/) names the published task and the task generated here
that stands in for it when the published files are not at hand:

    task: {name: sudoku-extreme, stand_in: sudoku-extreme-gen}

`choose_data(cfg, from_paths)`:
  - `--from FILE|DIR|train=F test=F` given: the published task reads those local files;
  - else, with `stand_in` set: the stand-in task (same family, so task overrides such as
    train_size apply to it as well); `task.stand_in=null` asks for the published source instead;
  - else: the task as configured (no tags added).
What was chosen goes into the run's tags (`rbench.data_source`, `rbench.data_task`,
`rbench.data_published`, `rbench.data_from`) through `tracking.tags`, so the MLflow run and the
run folder's config.yaml both say which data the numbers come from.
"""

from __future__ import annotations

from harness.config import ExperimentConfig, TaskConfig
from harness.errors import ConfigError

TAG_SOURCE, TAG_TASK, TAG_PUBLISHED, TAG_FROM = (
    "rbench.data_source",
    "rbench.data_task",
    "rbench.data_published",
    "rbench.data_from",
)


def choose_data(cfg: ExperimentConfig, from_paths: list[str] | None = None) -> ExperimentConfig:
    from benchmarks.registry import family_of, resolve

    task = cfg.task
    params = dict(task.params)
    tags: dict[str, str] = {}
    if from_paths:
        params.update(family_of(task.name).local_source(list(from_paths)))
        new = TaskConfig(name=task.name, **params)
        tags = {TAG_SOURCE: "local copy of the published data", TAG_FROM: " ".join(from_paths)}
    elif task.stand_in:
        new = TaskConfig(name=task.stand_in, **params)
        tags = {
            TAG_SOURCE: "generated stand-in (published data not given: pass --from)",
            TAG_PUBLISHED: task.name,
        }
    else:
        new = task  # the task as configured; nothing to record
    try:
        resolve(new)
    except ConfigError as e:
        if task.stand_in and not from_paths:
            raise ConfigError(e.key, f"{e.expected} (in the stand-in task {task.stand_in!r})") from None
        raise
    if not tags:
        return cfg
    tags[TAG_TASK] = new.name
    return cfg.model_copy(
        update={
            "task": new,
            "tracking": cfg.tracking.model_copy(update={"tags": {**cfg.tracking.tags, **tags}}),
        }
    )
