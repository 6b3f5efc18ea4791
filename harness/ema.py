"""EMA of the parameters in fp32 (TRM evaluates and checkpoints these weights).

    ema <- decay * ema + (1 - decay) * w        after every optimizer step, ema_0 = w_0

The averaging step is torch's `get_ema_multi_avg_fn(decay)` (one fused foreach lerp). The wrapper
`AveragedModel` does not fit: its `update_parameters` re-copies every buffer of the model on every
step, and the buffers include the puzzle-embedding table (hundreds of MB for ARC). What this
module adds is WHICH weights it averages and in which precision:

- The shadow is copied from the module BEFORE DeepSpeed casts it (`EMA(model, decay)` ahead of
  `deepspeed.initialize`), so it is fp32 and starts at the exact fp32 initial weights. A bf16 shadow
  cannot hold the (1 - decay) = 0.001 update (bf16 keeps 8 significant bits) and would stay near
  its initial value: the bug this module fixes.
- Each update averages the fp32 *master* weights that DeepSpeed's mixed-precision optimizer steps
  (`master_weights`), not the bf16 module copy it computes with: the masters are the weights the
  optimizer actually moves; the bf16 copy is a rounding of them that would add its rounding noise
  to the average. Which master exists depends on DeepSpeed's wrapper:
    * ZeRO 1/2 and DeepSpeed's BF16_Optimizer: every parameter has `_hp_mapping`, a view of this
      rank's fp32 partition; partitions are assembled with ONE all_reduce over a flat buffer.
    * bf16 at ZeRO stage 0 with a torch optimizer (FP16_UnfusedOptimizer): per-parameter fp32
      copies in `optimizer.fp32_groups`, parallel to `optimizer.fp16_groups`.
    * fp32 training: the module's parameters are the master weights.
- Evaluation runs the average in the compute dtype (`eval_model(dtype)`: a bf16 copy refreshed
  from the fp32 shadow), as the reference computes in bf16 from fp32 weights.
- `state_dict()` is fp32 (checkpointed as is); `load_state_dict` restores it bit for bit.
"""

from __future__ import annotations

import copy
import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn


def master_weights(optimizer, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    """The fp32 weights DeepSpeed's optimizer steps, one full tensor per entry of `params`."""
    import torch.distributed as dist

    if all(p.dtype == torch.float32 for p in params):
        return [p.detach() for p in params]
    copies: dict[int, torch.Tensor] = {}
    for lp_group, hp_group in zip(
        getattr(optimizer, "fp16_groups", []) or [], getattr(optimizer, "fp32_groups", []) or []
    ):
        if isinstance(lp_group, (list, tuple)) and isinstance(hp_group, (list, tuple)):
            copies.update({id(lp): hp for lp, hp in zip(lp_group, hp_group)})
    if all(id(p) in copies for p in params):
        return [copies[id(p)].detach().view_as(p) for p in params]
    if all(hasattr(p, "_hp_mapping") for p in params):
        out, partial = [], False
        for p in params:
            m = p._hp_mapping
            whole = m is not None and m.lp_fragment_address.numel == p.numel()
            out.append(m.get_hp_fragment().detach().view_as(p) if whole else None)
            partial |= not whole
        if not partial:
            return out
        # partitioned (ZeRO 1/2 on several workers): each rank fills its fragments, one all_reduce
        offsets = [0]
        for p in params:
            offsets.append(offsets[-1] + p.numel())
        flat = torch.zeros(offsets[-1], dtype=torch.float32, device=params[0].device)
        for p, start in zip(params, offsets):
            m = p._hp_mapping
            if m is not None:
                a = m.lp_fragment_address
                flat.narrow(0, start + a.start, a.numel).copy_(m.get_hp_fragment().detach().flatten())
        group = getattr(params[0], "_dp_group", None)
        dist.all_reduce(flat, group=group)
        return [flat.narrow(0, s, p.numel()).view_as(p) for p, s in zip(params, offsets)]
    raise RuntimeError(f"cannot find the fp32 master weights of {type(optimizer).__name__}")


class EMA:
    """fp32 exponential moving average of `module`'s parameters. Build it before DeepSpeed."""

    def __init__(self, module: torch.nn.Module, decay: float, device: torch.device | None = None):
        self.decay = decay
        self.module = module  # the module being trained
        self.shadow = _copy_without_buffers(module).to(device).float().eval().requires_grad_(False)
        self._avg = get_ema_multi_avg_fn(decay)
        self.n_averaged = 1  # ema_0 = w_0: the copy above
        self._eval: torch.nn.Module | None = None

    @torch.no_grad()
    def update(self, weights: list[torch.Tensor]) -> None:
        """Average in `weights` (fp32, in the order of module.parameters()): `master_weights`."""
        shadow = [p.detach() for p in self.shadow.parameters()]
        if len(weights) != len(shadow):
            raise ValueError(f"EMA.update got {len(weights)} tensors for {len(shadow)} parameters")
        self._avg(
            shadow, [w.to(s.device, s.dtype) for w, s in zip(weights, shadow)], torch.tensor(self.n_averaged)
        )
        self.n_averaged += 1

    @torch.no_grad()
    def eval_model(self, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        """The averaged model in the compute dtype, with the trained module's current buffers
        (e.g. the puzzle-embedding table: shared, never copied; for ARC it is GBs)."""
        target = self.shadow
        if dtype != torch.float32:
            if self._eval is None:
                self._eval = _copy_without_buffers(self.shadow).to(dtype)
            for e, s in zip(self._eval.parameters(), self.shadow.parameters()):
                e.copy_(s)
            target = self._eval
        _share_buffers(target, self.module)
        return target

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {n: p.detach() for n, p in self.shadow.named_parameters()}
        out["n_averaged"] = torch.tensor(self.n_averaged)
        return out

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for n, p in self.shadow.named_parameters():
            p.copy_(state[n])
        if "n_averaged" in state:
            self.n_averaged = int(state["n_averaged"])


def _copy_without_buffers(module: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of `module` whose buffers are the original's tensors (not copies)."""
    return copy.deepcopy(module, memo={id(b): b for b in module.buffers()})


def _share_buffers(target: torch.nn.Module, source: torch.nn.Module) -> None:
    """Point each buffer of `target` at the same-named buffer tensor of `source`."""
    for name, b in source.named_buffers():
        owner_name, _, attr = name.rpartition(".")
        owner = target.get_submodule(owner_name) if owner_name else target
        owner._buffers[attr] = b
