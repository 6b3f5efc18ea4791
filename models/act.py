"""What every model shares: the input/output ends of the network, and the deep-supervision (ACT)
wrapper that the engine talks to.

`Core` is the base of each architecture's "inner" module (HRM, TRM, transformer, looped). It owns
the token embedding, the puzzle-embedding prefix, rotary tables, fixed initial latents, `lm_head`
and `q_head`; a subclass implements only its recursion:

    forward(latents, batch, need_logits, noise) -> (new latents (detached), logits [B, L, V] | None,
                                                    q_logits [B, 2] = (halt, continue))
    segment_flops(grad) / effective_depth()

`noise` (test time only, default None = no cost) is a `LatentNoise`: Gaussian noise on the
reasoning latent once per recursion (TRM: z before each of the T recursions; HRM: z_L before each
of the H cycles; looped / transformer: z before each loop), with a scale relative to the state's RMS.

`ACTModel` wraps a Core and implements the engine contract (see models/__init__.py): the carry,
halting with exploration, replacing halted rows by fresh data, the losses and the metrics.

Losses per row (then the mean over rows):
    lm        = mean over labelled tokens of stablemax (or softmax) cross-entropy
    q_halt    = BCE(q_halt_logit, answer exactly correct)
    q_continue (HRM only) = BCE(q_continue_logit, sigmoid(target)), target from an extra no-grad
                pass: next q_halt at the last step, else max(next q_halt, next q_continue)
    total     = lm + 0.5 * (q_halt + q_continue)        (no q terms when `act: false`)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator
from torch import nn

from benchmarks.dataset import IGNORE_LABEL_ID, DatasetMeta
from models.layers import Embedding, Linear, Rotary, trunc_normal_
from models.losses import LOSSES
from models.puzzle_emb import PuzzleEmbedding

DATA_KEYS = ("inputs", "labels", "puzzle_identifiers")


@dataclass
class LatentNoise:
    """z -> z + std * rms(z) * eps,  eps ~ N(0, I) drawn from `generator`, rms per example over
    [S, d]. Breadth at test time: K copies of a puzzle with different noise follow different
    trajectories of the same trained model."""

    std: float
    generator: torch.Generator | None = None
    rows: torch.Tensor | None = None  # [B] bool: only these rows are perturbed (None: all)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        zf = z.float()
        rms = zf.pow(2).mean(dim=tuple(range(1, z.dim())), keepdim=True).sqrt()  # [B, 1, 1]
        g = self.generator
        eps = torch.randn(
            z.shape, generator=g, device=g.device if g is not None else z.device, dtype=torch.float32
        ).to(z.device)
        scale = self.std * rms
        if self.rows is not None:
            scale = scale * self.rows.view(-1, *([1] * (z.dim() - 1))).to(scale)
        return (zf + scale * eps).to(z.dtype)


def perturb(z: torch.Tensor, noise: LatentNoise | None) -> torch.Tensor:
    """`noise(z)`, or z itself (no work) when there is no noise."""
    return z if noise is None or noise.std == 0 else noise(z)


class CoreConfig(BaseModel):
    """What every architecture's config shares (the keys `Core` and the ACT wrapper read).

    Each architecture's config subclasses this beside its model (models/trm.py: TRMConfig, ...),
    sets `arch: Literal["name"]` and is listed once in models/registry.py. Strict and frozen: an
    unknown key, or one of another architecture, fails at load time with its dotted path.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: PositiveInt = 512
    heads: PositiveInt = 8
    expansion: float = Field(4.0, gt=0)
    ffn_multiple: PositiveInt = 256  # SwiGLU inner size rounded up to a multiple of this
    rope_theta: float = Field(10000.0, gt=0)
    norm_eps: float = Field(1e-5, gt=0)
    pos_encoding: Literal["rope", "learned", "none"] = "rope"  # learned: added, sum / sqrt(2)
    puzzle_emb_len: int = Field(0, ge=0)  # prefix positions holding the puzzle embedding
    halt_max_steps: PositiveInt = 16  # supervision segments per example
    halt_exploration_prob: float = Field(0.1, ge=0, le=1)
    act: bool = True  # learn to halt early in training (Q head);
    # false: always halt_max_steps segments, no Q loss
    loss: Literal["stablemax", "softmax"] = "stablemax"

    @model_validator(mode="after")
    def _heads_divide_hidden(self):
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.pos_encoding == "rope" and (self.hidden // self.heads) % 2:
            raise ValueError(
                f"rotary embeddings need an even head size (hidden / heads = {self.hidden // self.heads})"
            )
        return self

    def shape(self) -> str:
        """The recursion / depth knobs in one line (`rbench model summary`)."""
        raise NotImplementedError


class Core(nn.Module):
    """Input embedding, heads and fixed initial latents shared by all architectures.

    Subclasses set `latent_names` and call `super().__init__` before building their stacks.
    """

    latent_names: tuple[str, ...] = ()
    answer_latent: str = ""  # the latent the heads read (its fixed-point residual is reported)

    def __init__(self, cfg, meta: DatasetMeta):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.hidden, self.vocab_size = d, meta.vocab_size
        self.P, self.L = cfg.puzzle_emb_len, meta.seq_len
        self.S = self.P + self.L  # positions seen by the blocks
        self.embed_scale = math.sqrt(d)
        # std 1/sqrt(d), then * sqrt(d): unit-scale inputs, so the injection x is not drowned by z
        self.embed_tokens = Embedding(meta.vocab_size, d, init_std=1.0 / math.sqrt(d))
        self.puzzle_emb = PuzzleEmbedding(meta.num_puzzle_identifiers, d, self.P) if self.P > 0 else None
        mlp_t = getattr(cfg, "mlp_t", False)
        use_rope = cfg.pos_encoding == "rope" and not mlp_t
        self.rotary = Rotary(d // cfg.heads, self.S, cfg.rope_theta) if use_rope else None
        # learned absolute positions over all S positions (prefix included), std 1/sqrt(d)
        self.embed_pos = (
            Embedding(self.S, d, init_std=1.0 / math.sqrt(d))
            if cfg.pos_encoding == "learned" and not mlp_t
            else None
        )
        self.lm_head = Linear(d, meta.vocab_size)
        self.q_head = Linear(d, 2, bias=True)
        with torch.no_grad():  # start by never halting early: sigmoid(-5) = 0.007
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)
        for name in self.latent_names:  # fixed (not learned) initial states, one vector each
            self.register_buffer(f"{name}_init", trunc_normal_(torch.empty(d), std=1.0))

    def block_kw(self) -> dict:
        c = self.cfg
        return dict(
            hidden=c.hidden,
            heads=c.heads,
            expansion=c.expansion,
            eps=c.norm_eps,
            multiple=c.ffn_multiple,
            token_mixer_seq=self.S if getattr(c, "mlp_t", False) else None,
        )

    # -- ends of the network ----------------------------------------------------------------------

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """x = sqrt(d) * [puzzle prefix ; token embeddings]   [B, S, d]

        With learned positions (as the reference): x = sqrt(d) * (e + pos) / sqrt(2), the sum
        scaled back to the variance of one term."""
        x = self.embed_tokens(batch["inputs"])  # [B, L, d]
        if self.puzzle_emb is not None:
            prefix = self.puzzle_emb(batch["puzzle_identifiers"], x.dtype)  # [B, P, d]
            x = torch.cat((prefix, x), dim=1)
        if self.embed_pos is not None:
            x = (x + self.embed_pos.weight.to(x.dtype)) * (1.0 / math.sqrt(2))  # + [S, d]
        return self.embed_scale * x

    def heads(self, z: torch.Tensor, need_logits: bool = True):
        """z [B, S, d] -> logits [B, L, V] from the answer positions, q [B, 2] from position 0."""
        logits = self.lm_head(z[:, self.P :]) if need_logits else None
        q = self.q_head(z[:, 0]).float()
        return logits, q

    def heads_macs(self) -> tuple[int, int]:
        return self.lm_head.macs(self.L), self.q_head.macs(1)

    # -- latents ----------------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype = the parameters' (DeepSpeed bf16 casts parameters, not buffers)."""
        return self.embed_tokens.weight.dtype

    def init_latents(self, batch_size: int, device=None) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.latent_names:
            init = getattr(self, f"{name}_init")
            out[name] = (
                init.to(device=device or init.device, dtype=self.dtype)
                .expand(batch_size, self.S, self.hidden)
                .clone()
            )
        return out

    def reset_latents(self, latents: dict[str, torch.Tensor], reset: torch.Tensor):
        """Rows where `reset` [B] is true go back to the fixed initial state (compute dtype)."""
        m = reset.view(-1, 1, 1)
        return {
            n: torch.where(m, getattr(self, f"{n}_init").to(self.dtype), z.to(self.dtype))
            for n, z in latents.items()
        }

    # -- to implement -----------------------------------------------------------------------------

    def forward(self, latents, batch, need_logits: bool = True, noise: LatentNoise | None = None):
        raise NotImplementedError

    def segment_flops(self, grad: bool, q_grad: bool = True, need_logits: bool = True) -> float:
        """FLOPs per example of one `forward` (grad=True: incl. its backward) — see each model."""
        raise NotImplementedError

    def effective_depth(self) -> int:
        raise NotImplementedError

    def _heads_flops(self, grad: bool, q_grad: bool, need_logits: bool) -> float:
        lm, q = self.heads_macs()
        return ((6 if grad else 2) * lm if need_logits else 0) + (6 if grad and q_grad else 2) * q


class ACTModel(nn.Module):
    """Deep supervision with adaptive halting around a `Core`; the module the engine trains."""

    def __init__(self, cfg, core: Core, q_continue: bool = False):
        super().__init__()
        self.cfg, self.core = cfg, core
        self.q_continue = q_continue and cfg.act  # HRM's Q-learning continue target
        if not cfg.act:  # no loss reaches the halting head: frozen, so no optimizer (ZeRO's flat
            core.q_head.requires_grad_(False)  # one included) weight-decays it
        self.loss_fn = LOSSES[cfg.loss]

    # -- engine contract --------------------------------------------------------------------------

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every row starts halted, so the first forward loads its data and resets its latents."""
        B = batch["inputs"].shape[0]
        device = batch["inputs"].device
        carry = self.core.init_latents(B, device)
        carry["steps"] = torch.zeros(B, dtype=torch.int32, device=device)
        carry["halted"] = torch.ones(B, dtype=torch.bool, device=device)
        for k in DATA_KEYS:
            carry[k] = torch.zeros_like(batch[k])
        return carry

    def forward(
        self,
        carry: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
    ):
        """One supervision segment for the whole batch. Returns (carry, loss, metrics, outputs)."""
        cfg, core = self.cfg, self.core
        halted = carry["halted"]
        B = halted.shape[0]
        # halted rows: fresh example from `batch`, latents back to their initial state
        latents = core.reset_latents({n: carry[n] for n in core.latent_names}, halted)
        data = {
            k: torch.where(halted.view(-1, *([1] * (batch[k].dim() - 1))), batch[k], carry[k])
            for k in DATA_KEYS
        }
        steps = torch.where(halted, 0, carry["steps"]) + 1

        latents, logits, q = core(latents, data)  # logits [B, L, V], q [B, 2]
        q_halt, q_cont = q[:, 0], q[:, 1]

        with torch.no_grad():
            is_last = steps >= cfg.halt_max_steps
            new_halted = is_last
            if self.training and cfg.act and cfg.halt_max_steps > 1:
                new_halted = new_halted | ((q_halt > q_cont) if self.q_continue else (q_halt > 0))
                # exploration: with prob p, force a random minimum of 2..halt_max_steps segments
                explore = _rand(B, generator, q.device) < cfg.halt_exploration_prob
                min_steps = _randint(2, cfg.halt_max_steps + 1, B, generator, q.device)
                new_halted = new_halted & (steps >= torch.where(explore, min_steps, 0))
            # eval mode, or `act: false`: every example runs exactly halt_max_steps segments

        labels = data["labels"]
        mask = labels != IGNORE_LABEL_ID  # [B, L]
        count = mask.sum(-1)  # [B]
        token_loss = self.loss_fn(logits, labels)  # [B, L], fp32/fp64
        lm_loss = (token_loss.sum(-1) / count.clamp(min=1)).mean()
        with torch.no_grad():
            preds = logits.argmax(-1)
            right = mask & (preds == labels)
            seq_correct = (count > 0) & (right.sum(-1) == count)
        q_halt_loss = F.binary_cross_entropy_with_logits(q_halt, seq_correct.float())
        loss = lm_loss.float()
        metrics = {"lm_loss": lm_loss.detach().float(), "q_halt_loss": q_halt_loss.detach()}
        if cfg.act:
            q_cont_loss = torch.zeros((), device=q.device)
            if self.q_continue and self.training and cfg.halt_max_steps > 1:
                with torch.no_grad():  # the extra forward pass for the Q-learning target
                    _, _, q_next = core(latents, data, need_logits=False)
                    target = torch.where(is_last, q_next[:, 0], torch.maximum(q_next[:, 0], q_next[:, 1]))
                q_cont_loss = F.binary_cross_entropy_with_logits(q_cont, torch.sigmoid(target))
                metrics["q_continue_loss"] = q_cont_loss.detach()
            loss = loss + 0.5 * (q_halt_loss + q_cont_loss)

        with torch.no_grad():
            n_tok = count.sum().clamp(min=1)
            has = (count > 0).float()
            metrics.update(
                token_accuracy=right.sum().float() / n_tok,
                exact_accuracy=(seq_correct.float().sum() / has.sum().clamp(min=1)),
                q_halt_accuracy=((q_halt > 0) == seq_correct).float().mean(),
                steps=steps.float().mean(),
                halt_rate=new_halted.float().mean(),
            )
        new_carry = {n: z.detach() for n, z in latents.items()}
        new_carry.update(steps=steps.to(torch.int32), halted=new_halted, **data)
        outputs = {"preds": preds, "q_halt_logits": q_halt.detach(), "q_continue_logits": q_cont.detach()}
        return new_carry, loss, metrics, outputs

    @torch.no_grad()
    def predict(
        self,
        batch: dict[str, torch.Tensor],
        steps: int | None = None,
        noise: LatentNoise | None = None,
        residuals: list | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`steps` segments (default halt_max_steps), no early halt. -> (preds [B, L], q_halt [B]).

        Test time: `noise` perturbs the reasoning latent at each recursion (see `LatentNoise`);
        `residuals`, when given, receives per segment k the fixed-point residual of the answer
        latent per row, ||y_k - y_{k-1}|| over [S, d] (fp32, [B]), y_0 the initial state.
        """
        core = self.core
        latents = core.init_latents(batch["inputs"].shape[0], batch["inputs"].device)
        for _ in range(self.cfg.halt_max_steps if steps is None else steps):
            new, logits, q = core(latents, batch, noise=noise)
            if residuals is not None:
                a = core.answer_latent
                residuals.append((new[a].float() - latents[a].float()).flatten(1).norm(dim=1))
            latents = new
        return logits.argmax(-1), q[:, 0]

    def num_parameters(self) -> int:
        """Trainable parameters; the puzzle-embedding table is a buffer and is not counted."""
        return int(sum(getattr(p, "ds_numel", p.numel()) for p in self.parameters()))

    def puzzle_embedding_shape(self) -> tuple[int, int]:
        """(rows, dim) of the puzzle-embedding table, (0, 0) without one. Not in num_parameters:
        it is trained by its own sparse optimizer, and for ARC it is far larger than the model."""
        pe = self.core.puzzle_emb
        return (int(pe.weights.shape[0]), int(pe.weights.shape[1])) if pe is not None else (0, 0)

    def puzzle_embedding_entries(self) -> int:
        rows, dim = self.puzzle_embedding_shape()
        return rows * dim

    def effective_depth(self) -> int:
        """Blocks applied in sequence per supervision step."""
        return int(self.core.effective_depth())

    def flops_per_example(self, mode: str = "train") -> float:
        """Analytic matmul FLOPs per example per supervision step (2 per MAC forward, 6 fwd+bwd).

        "train": the segment's forward + backward (no-grad calls forward only) + HRM's extra no-grad
        target pass (q head only). "eval": one segment's forward.
        """
        core = self.core
        if mode == "train":
            flops = core.segment_flops(grad=True, q_grad=self.cfg.act)
            if self.q_continue and self.cfg.halt_max_steps > 1:
                flops += core.segment_flops(grad=False, need_logits=False)
            return float(flops)
        if mode == "eval":
            return float(core.segment_flops(grad=False))
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")

    def puzzle_emb_step(self, lr: float, weight_decay: float) -> None:
        """Sign-SGD on the puzzle-embedding rows used since the last call (no-op without a table)."""
        if self.core.puzzle_emb is not None:
            self.core.puzzle_emb.step(lr, weight_decay)


def _rand(n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    dev = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=dev).to(device)


def _randint(low: int, high: int, n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    dev = generator.device if generator is not None else device
    return torch.randint(low, high, (n,), generator=generator, device=dev).to(device)
