"""`rbench model summary CONFIG [key=value ...] [--json]`: size a model without training.

Prints the parameter count (puzzle embeddings excluded), effective depth per supervision step and
the analytic training / inference FLOPs per example per supervision step, for the model the config
would build on its task. Nothing is allocated: the model is built on torch's "meta" device, and
the task's shape (seq_len, vocab_size, puzzle identifiers) comes from `benchmarks.registry.resolve`
without building any data. `--seq-len/--vocab-size/--puzzle-identifiers` override those facts
(e.g. to size a model for a task that is not registered).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from harness.errors import ConfigError, UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "model", help="inspect models without training", description="Inspect models without training."
    )
    msub = p.add_subparsers(dest="model_command", required=True, metavar="SUBCOMMAND")
    s = msub.add_parser(
        "summary",
        help="parameters, effective depth and FLOPs of a config's model",
        description="Parameters, effective depth and analytic FLOPs per example per "
        "supervision step of the model CONFIG builds, without training. "
        "e.g. `rbench model summary exp.yaml model.n=4 --json`",
    )
    s.add_argument("config", help="experiment YAML file")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--seq-len", type=int, help="override the task's sequence length")
    s.add_argument("--vocab-size", type=int, help="override the task's vocabulary size")
    s.add_argument("--puzzle-identifiers", type=int, help="override the number of puzzle identifiers")
    s.set_defaults(func=summary_main)


def task_meta(cfg, source: str, args: argparse.Namespace | None = None):
    """DatasetMeta of the config's task from the registry (nothing built), with CLI overrides."""
    from benchmarks.dataset import DatasetMeta

    o = {k: getattr(args, k, None) for k in ("seq_len", "vocab_size", "puzzle_identifiers")}
    for k, v in o.items():
        if v is not None and v < 1:
            raise UserError(f"--{k.replace('_', '-')}: expected a positive integer, got {v}")
    if o["seq_len"] is not None and o["vocab_size"] is not None:
        # the shape is fully given: no need for the registry (or for the task to be registered)
        return DatasetMeta(
            task=cfg.task.name,
            seq_len=o["seq_len"],
            vocab_size=o["vocab_size"],
            num_puzzle_identifiers=o["puzzle_identifiers"] or 1,
        )
    try:
        from benchmarks.registry import resolve
    except ModuleNotFoundError as e:
        if e.name not in ("benchmarks.registry", "benchmarks"):
            raise
        raise UserError(
            "the task registry (benchmarks.registry) is not installed: give the "
            "task's shape with --seq-len and --vocab-size [--puzzle-identifiers]"
        ) from None
    try:
        meta = resolve(cfg.task).meta
    except ConfigError as e:
        raise e.with_source(source) from None
    update = {
        "seq_len": o["seq_len"],
        "vocab_size": o["vocab_size"],
        "num_puzzle_identifiers": o["puzzle_identifiers"],
    }
    return replace(meta, **{k: v for k, v in update.items() if v is not None})


def summarize(model_cfg, meta) -> dict:
    """The figures `rbench model summary` prints, for a model config on a task of shape `meta`."""
    import torch

    from models import build_model

    with torch.device("meta"):
        model = build_model(model_cfg, meta)
    core = model.core
    resolved = core.cfg
    train, infer = model.flops_per_example("train"), model.flops_per_example("eval")
    rows, dim = model.puzzle_embedding_shape()
    out = {
        "arch": resolved.arch,
        "task": meta.task,
        "seq_len": meta.seq_len,
        "prefix_len": core.P,
        "vocab_size": meta.vocab_size,
        "model": resolved.model_dump(mode="json"),
        "parameters": model.num_parameters(),
        "puzzle_embedding_entries": rows * dim,
        "puzzle_embedding_rows": rows,
        "puzzle_embedding_dim": dim,
        "effective_depth": model.effective_depth(),
        "halt_max_steps": resolved.halt_max_steps,
        "train_flops_per_example_per_step": train,
        "inference_flops_per_example_per_step": infer,
        "inference_flops_per_example_all_steps": infer * resolved.halt_max_steps,
    }
    out["shape"] = resolved.shape()
    if getattr(resolved, "match_params", None) is not None:
        target = round(resolved.match_params * resolved.match_multiple)
        out["match_target_parameters"] = target
        out["match_ratio"] = out["parameters"] / target
    return out


def _fmt_flops(x: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.4g} {unit}FLOP"
    return f"{x:.4g} FLOP"


def render(s: dict) -> str:
    m = s["model"]
    lines = [
        f"model:            {s['arch']}  {s['shape']}  hidden={m['hidden']} heads={m['heads']}",
        f"task:             {s['task']}  seq_len={s['seq_len']} (+{s['prefix_len']} prefix) "
        f"vocab={s['vocab_size']}",
        f"parameters:       {s['parameters']:,}"
        + (
            f"  (+ puzzle-embedding table {s['puzzle_embedding_rows']:,} x "
            f"{s['puzzle_embedding_dim']} = {s['puzzle_embedding_entries']:,} entries, not counted)"
            if s["puzzle_embedding_entries"]
            else ""
        ),
    ]
    if "match_target_parameters" in s:
        lines.append(
            f"matched to:       {s['match_target_parameters']:,} "
            f"(x{m['match_multiple']:g} of {m['match_params']:,}; "
            f"by {m['size_by']}; ratio {s['match_ratio']:.3f})"
        )
    lines += [
        f"effective depth:  {s['effective_depth']} blocks per supervision step "
        f"(up to {s['halt_max_steps']} steps)",
        f"train FLOPs:      {_fmt_flops(s['train_flops_per_example_per_step'])} per example per step",
        f"inference FLOPs:  {_fmt_flops(s['inference_flops_per_example_per_step'])} per example per "
        f"step ({_fmt_flops(s['inference_flops_per_example_all_steps'])} for all "
        f"{s['halt_max_steps']} steps)",
    ]
    return "\n".join(lines)


def summary_main(args: argparse.Namespace) -> int:
    from harness.config import load_experiment

    cfg = load_experiment(args.config, args.overrides)
    source = str(args.config) + (" + overrides" if args.overrides else "")
    meta = task_meta(cfg, source, args)
    try:
        s = summarize(cfg.model, meta)
    except ConfigError as e:
        raise e.with_source(source) from None
    print(json.dumps(s, indent=2) if args.json else render(s))
    return 0
