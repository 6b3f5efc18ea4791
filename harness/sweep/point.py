"""One point of a sweep -> its experiment config: the base experiment, the family's fixed
overrides, the point's values and the seed.

`model.match_params: {family: F}` sizes the trial's transformer to family F's exact parameter
count: F's config is built from the base, F's `fixed` and the trial's SHARED values (F's own
space keeps the base's values), its parameters are counted on torch's meta device (no data, no
training: sizing.py), and the integer goes into model.match_params.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from harness.config import ExperimentConfig, apply_overrides, validate
from harness.sweep.spec import SweepSpec


def _model_keys(arch: str) -> set[str] | None:
    """The keys architecture `arch`'s model config accepts (None: not an architecture)."""
    import typing

    ann = ExperimentConfig.model_fields["model"].annotation
    while typing.get_origin(ann) is Annotated:
        ann = typing.get_args(ann)[0]
    for member in typing.get_args(ann) or (ann,):
        arch_field = getattr(member, "model_fields", {}).get("arch")
        if arch_field is not None and arch_field.default == arch:
            return set(member.model_fields)
    return None


def family_data(base_data: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """The base experiment with a family's fixed overrides (match_params by family left out).
    Switching `model.arch` keeps the model keys the new architecture shares with the base's
    (hidden, heads, halt_max_steps, ...) and drops the others (T, n, H_cycles, ...)."""
    data = base_data
    arch = fixed.get("model.arch")
    if arch is not None and arch != base_data["model"].get("arch"):
        keys = _model_keys(str(arch))
        if keys is not None:
            data = {**base_data, "model": {k: v for k, v in base_data["model"].items() if k in keys}}
    overrides = [
        f"{k}={json.dumps(v)}"
        for k, v in fixed.items()
        if not (k == "model.match_params" and isinstance(v, dict))
    ]
    return apply_overrides(data, overrides)


def trial_config(
    base_data: dict[str, Any],
    spec: SweepSpec,
    family: str,
    params: dict[str, Any],
    seed: int,
    *,
    sweep_id: str,
    number: int,
) -> ExperimentConfig:
    """The base experiment with `family`'s fixed overrides, one point of its space and one seed.
    `params` holds plain dotted keys (shared and the family's own)."""
    from harness.sweep.sizing import count_parameters

    fam = spec.family_specs[family]
    source = f"sweep {sweep_id} family {family} trial {number}"
    data = family_data(base_data, fam.fixed)
    ref = fam.fixed.get("model.match_params")
    overrides = [f"{k}={json.dumps(v)}" for k, v in params.items()]
    if isinstance(ref, dict):
        other = spec.family_specs[ref["family"]]
        shared = {k: v for k, v in params.items() if k in spec.space}
        ref_cfg = validate(
            apply_overrides(
                family_data(base_data, other.fixed), [f"{k}={json.dumps(v)}" for k, v in shared.items()]
            ),
            f"sweep {sweep_id} family {ref['family']} (sizing {family})",
        )
        overrides.append(f"model.match_params={count_parameters(ref_cfg)}")
    overrides += [
        f"seed={seed}",
        f"name={json.dumps(f'{sweep_id}-t{number:05d}')}",
        f"tracking.run_name={json.dumps(f'{sweep_id}/trial_{number:05d}')}",
    ]
    cfg = validate(apply_overrides(data, overrides), source)
    if isinstance(ref, dict):
        count_parameters(cfg)  # the sizing rule raises ConfigError when no size fits
    return cfg
