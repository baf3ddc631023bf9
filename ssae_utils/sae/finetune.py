"""Finetune the GSAE into SSAEs: a whole lambda grid at once, with ERM or TERM (paper §2.1-2.4).

Every SSAE starts from the GSAE's weights and trains on the same activations; only lambda
differs inside a grid. So the K SAEs of a grid are stacked ([K, d_in, d_sae] weights) and
trained together: each batch is read once and goes through K SAEs with batched matmuls.
Adam is elementwise, so one Adam over the stack is exactly K independent Adams.

Units. The GSAE was trained on activations scaled by ``act_scale`` (SAELens'
expected_average_only_in: mean norm sqrt(d_in)) and saved with that factor folded in. We
train in the same scaled space, so lambda means what it meant for the GSAE (lambda = 1 is
the GSAE's own), and fold the factor back in when saving: every saved SSAE reads raw
activations, like the GSAE.

Decoder. ``decoder="unit_norm"`` (the paper's setting): decoder rows are kept at unit norm
(the gradient component along each row is removed and rows are renormalised after every
step) and the penalty is the plain L1 of f. ``decoder="weighted_l1"`` (SAELens v6): rows are
free and the penalty is sum_i f_i ||W_dec[i]||. The GSAE is first rescaled so its rows have
unit norm (f_i ||d_i|| and d_i / ||d_i|| describe the same reconstruction), which makes both
penalties equal at step 0: the two options start from the same loss.

Schedule (paper): Adam, an optional linear warm-up (``lr_warm_up_steps``), constant lr with linear decay to 0 over the last ``lr_decay_steps``
steps; batches come from a shuffling buffer of ``shuffle_buffer_batches`` batches (None: a
full shuffle per pass over the data).

Precision (``compute_dtype``): float32, or the encoder and decoder matmuls in bfloat16 under
autocast (the weights, Adam's state, the losses and the tilt stay float32). On a CPU with
native bf16 a training step of the embedded grid (3 x 640 x 4096, batch 1024) takes 0.20 s
instead of 0.76 s (a whole grid 4.2x faster); ``bench/bench_train_dtype.py`` measures what it
changes in the trained SSAEs: less than a sixth of what another training seed changes.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import torch
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
from ssae_utils.progress import tqdm

from ssae_utils.sae.handle import as_handle
from ssae_utils.sae.term import TiltConfig, sae_objective

if TYPE_CHECKING:
    from ssae_utils.activations import ShardedActivations
from ssae_utils.validation import from_dict_strict
from ssae_utils.validation import require as _require

log = logging.getLogger(__name__)

DECODER_MODES = ("unit_norm", "weighted_l1")
COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclass
class FinetuneConfig:
    l1_coefficients: tuple[float, ...] = (1.0,)  # the lambda grid trained together
    steps: int = 1000
    batch_size: int = 4096
    lr: float = 5e-5
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_decay_steps: int = 1000          # linear decay to 0 over the last this-many steps
    # linear warm-up from lr / warm-up steps over the first this-many steps: Adam's first
    # steps move every weight by ~lr whatever its gradient, which knocks a trained GSAE off
    # its optimum before the moment estimates settle
    lr_warm_up_steps: int = 0
    shuffle_buffer_batches: int | None = 4
    decoder: str = "unit_norm"
    tilt: TiltConfig = field(default_factory=TiltConfig)
    log_every: int = 50                 # steps between recorded losses / L0
    seed: int = 0
    # Earlier steps whose weights are kept as well (the final step always is), so the
    # validation split can pick the best checkpoint per lambda (paper §3.1). They do not
    # change training, so they are left out of ``training_key``.
    checkpoint_steps: tuple[int, ...] = ()
    # Matmul dtype of the SAE forward and backward: "bfloat16" runs them under autocast (weights,
    # Adam state, losses and the tilt stay float32); resolved already ("auto" is the sweep's
    # setting, ``ssae_utils.device.resolve_train_dtype``), so the training key says what ran.
    compute_dtype: str = "float32"

    def __post_init__(self) -> None:
        self.l1_coefficients = tuple(float(x) for x in self.l1_coefficients)
        self.adam_betas = tuple(self.adam_betas)
        if isinstance(self.tilt, dict):
            self.tilt = TiltConfig.from_dict(self.tilt)
        _require(len(self.l1_coefficients) >= 1 and all(x >= 0 and math.isfinite(x) for x in self.l1_coefficients),
                 "finetune.l1_coefficients must be a non-empty list of finite values >= 0")
        _require(self.steps >= 1 and self.batch_size >= 1, "finetune.steps and finetune.batch_size must be >= 1")
        _require(self.lr > 0, "finetune.lr must be > 0")
        _require(self.lr_decay_steps >= 0, "finetune.lr_decay_steps must be >= 0")
        _require(0 <= self.lr_warm_up_steps < self.steps,
                 f"finetune.lr_warm_up_steps must be in [0, steps) = [0, {self.steps}), got {self.lr_warm_up_steps}")
        _require(self.shuffle_buffer_batches is None or self.shuffle_buffer_batches >= 1,
                 "finetune.shuffle_buffer_batches must be None (full shuffle) or >= 1")
        _require(self.decoder in DECODER_MODES, f"finetune.decoder must be one of {DECODER_MODES}, not {self.decoder!r}")
        _require(self.log_every >= 1, "finetune.log_every must be >= 1")
        _require(self.compute_dtype in COMPUTE_DTYPES,
                 f"compute_dtype must be one of {COMPUTE_DTYPES} (resolve 'auto' first), not {self.compute_dtype!r}")
        self.checkpoint_steps = tuple(sorted({int(x) for x in self.checkpoint_steps}))
        _require(all(1 <= x < self.steps for x in self.checkpoint_steps),
                 f"finetune.checkpoint_steps must lie in [1, steps) = [1, {self.steps}), got {list(self.checkpoint_steps)}")

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based): linear warm-up, constant, then linear decay to 0."""
        warm = 1.0 if step >= self.lr_warm_up_steps else (step + 1) / self.lr_warm_up_steps
        remaining = self.steps - step
        if self.lr_decay_steps == 0 or remaining > self.lr_decay_steps:
            return self.lr * warm
        return self.lr * warm * remaining / self.lr_decay_steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def training_key(self) -> dict[str, Any]:
        """Everything that determines the trained weights (not which checkpoints are kept).
        Without a warm-up, in float32, the key is the one earlier releases wrote, so their SSAEs
        stay valid."""
        return {k: v for k, v in self.to_dict().items()
                if k != "checkpoint_steps" and not (k == "lr_warm_up_steps" and v == 0)
                and not (k == "compute_dtype" and v == "float32")}

    @property
    def kept_steps(self) -> tuple[int, ...]:
        """Steps (number of optimiser steps done) whose weights the result holds."""
        return (*self.checkpoint_steps, self.steps)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FinetuneConfig":
        return from_dict_strict(cls, data)


# --------------------------------------------------------------------------- data
def batches(n_tokens: int, cfg: FinetuneConfig, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches forever: passes over 0..n-1 in storage order, shuffled within buffers
    of ``shuffle_buffer_batches`` batches (or fully when None), reshuffled every pass."""
    buffer = n_tokens if cfg.shuffle_buffer_batches is None else cfg.shuffle_buffer_batches * cfg.batch_size
    carry = torch.empty(0, dtype=torch.long)
    while True:
        for start in range(0, n_tokens, buffer):
            idx = torch.arange(start, min(start + buffer, n_tokens))
            idx = torch.cat([carry, idx[torch.randperm(len(idx), generator=generator)]])
            full = len(idx) // cfg.batch_size * cfg.batch_size
            if full:   # (split of an empty tensor would yield one empty batch)
                yield from idx[:full].split(cfg.batch_size)
            carry = idx[full:]


# --------------------------------------------------------------------------- the stack
class SAEStack(torch.nn.Module):
    """K ReLU SAEs with shared input, stacked along dim 0 (all in the scaled space)."""

    def __init__(self, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor, b_dec: torch.Tensor):
        super().__init__()
        self.W_enc = torch.nn.Parameter(W_enc)  # [K, d_in, d_sae]
        self.b_enc = torch.nn.Parameter(b_enc)  # [K, d_sae]
        self.W_dec = torch.nn.Parameter(W_dec)  # [K, d_sae, d_in]
        self.b_dec = torch.nn.Parameter(b_dec)  # [K, d_in]

    @classmethod
    def from_sae(cls, sae: Any, k: int, act_scale: float) -> "SAEStack":
        """K copies of a raw-activation SAE (a handle or a SAELens SAE), moved to the scaled
        space with unit-norm decoder rows (the same reconstruction, see the module docstring).

        The weights come from its ``SAEHandle``: it refuses normalised inputs and folds
        apply_b_dec_to_input=False into b_enc, the form the stack's forward assumes.
        """
        handle = as_handle(sae)
        _require(handle.architecture == "standard",
                 f"SAEStack trains ReLU SAEs (SAELens 'standard'), not {handle.architecture!r}")
        with torch.no_grad():
            W_enc = handle.W_enc.float() / act_scale
            W_dec = handle.W_dec.float() * act_scale
            b_dec = handle.b_dec.float() * act_scale
            b_enc = handle.b_enc.float().clone()
            norms = W_dec.norm(dim=1).clamp_min(1e-12)
            W_enc, b_enc, W_dec = W_enc * norms, b_enc * norms, W_dec / norms[:, None]
        rep = lambda t: t.unsqueeze(0).repeat(k, *([1] * t.ndim)).contiguous()  # noqa: E731
        return cls(rep(W_enc), rep(b_enc), rep(W_dec), rep(b_dec))

    @property
    def k(self) -> int:
        return int(self.W_enc.shape[0])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, d_in] -> (features [K, B, d_sae], reconstruction [K, B, d_in])."""
        u = x.unsqueeze(0) - self.b_dec.unsqueeze(1)
        f = torch.relu(torch.baddbmm(self.b_enc.unsqueeze(1), u, self.W_enc))
        x_hat = torch.baddbmm(self.b_dec.unsqueeze(1), f, self.W_dec)
        return f, x_hat

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the gradient component parallel to each (unit) decoder row."""
        if self.W_dec.grad is not None:
            along = (self.W_dec.grad * self.W_dec).sum(-1, keepdim=True)
            self.W_dec.grad -= along * self.W_dec

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def to_saelens(self, i: int, act_scale: float, hook_name: str = "", model_name: str = "") -> StandardSAE:
        """SSAE ``i`` as a SAELens StandardSAE that reads raw activations."""
        d_in, d_sae = self.W_enc.shape[1], self.W_enc.shape[2]
        cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=True, dtype="float32", device=str(self.W_enc.device))
        cfg.metadata.hook_name = hook_name
        cfg.metadata.model_name = model_name
        sae = StandardSAE(cfg)
        with torch.no_grad():
            sae.W_enc.copy_(self.W_enc[i] * act_scale)
            sae.b_enc.copy_(self.b_enc[i])
            sae.W_dec.copy_(self.W_dec[i] / act_scale)
            sae.b_dec.copy_(self.b_dec[i] / act_scale)
        return sae.eval()


# --------------------------------------------------------------------------- training
def stack_losses(stack: SAEStack, x: torch.Tensor, lambdas: torch.Tensor, decoder: str,
                 compute_dtype: str = "float32") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token reconstruction error and lambda-weighted penalty [K, B], and features.
    With ``compute_dtype="bfloat16"`` only the two matmuls run in bf16 (autocast); the
    error, the penalty and everything after them are float32."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=compute_dtype == "bfloat16"):
        f, x_hat = stack(x)
    f, x_hat = f.float(), x_hat.float()
    mse = ((x_hat - x.unsqueeze(0)) ** 2).sum(-1)
    if decoder == "weighted_l1":
        penalty = torch.bmm(f, stack.W_dec.norm(dim=-1).unsqueeze(-1)).squeeze(-1)
    else:
        penalty = f.sum(-1)
    return mse, lambdas[:, None] * penalty, f


@dataclass
class FinetuneResult:
    stack: SAEStack
    act_scale: float
    history: list[dict[str, Any]]        # every log_every steps: step, lr, loss/mse/l0 per lambda
    config: FinetuneConfig
    checkpoints: dict[int, SAEStack] = field(default_factory=dict)  # step -> stack after that many steps

    def saes(self, hook_name: str = "", model_name: str = "", step: int | None = None) -> list[StandardSAE]:
        """The K SSAEs after ``step`` optimiser steps (None: the final ones)."""
        stack = self.stack if step is None or step == self.config.steps else self.checkpoints[step]
        return [stack.to_saelens(i, self.act_scale, hook_name, model_name) for i in range(stack.k)]


def finetune(
    gsae: Any,
    acts: "torch.Tensor | ShardedActivations",
    cfg: FinetuneConfig,
    act_scale: float,
    sequence_ids: torch.Tensor | None = None,
    progress: bool = True,
) -> FinetuneResult:
    """Train one SSAE per lambda in ``cfg.l1_coefficients`` from the GSAE on ``acts``
    [n_tokens, d_in] (raw activations; outliers already removed), in memory or left in the
    memory-mapped activation shards (``ActivationStore.rows``): only the batches are read. ``sequence_ids`` [n_tokens]
    are needed for a tilt over sequences."""
    gsae = as_handle(gsae)  # built once: the stack and the checks below read the same weights
    d_in = gsae.d_in
    shape = tuple(getattr(acts, "shape", ()))
    _require(len(shape) == 2 and hasattr(acts, "__getitem__"),
             f"activations must be [n_tokens, d_in] (a tensor or ShardedActivations), got {shape or type(acts)}")
    _require(shape[1] == d_in, f"activations have d_in={shape[1]} but the GSAE expects d_in={d_in}: "
             "activations from another model or hook than the GSAE's?")
    # Fewer tokens than one batch is allowed (seed-only at the paper's passes over a small seed
    # set, finetune.seed_only_passes): ``batches`` then joins consecutive shuffled passes, so
    # a batch holds each token once or twice and every pass is still seen in full.
    _require(shape[0] >= 1, "no training tokens: the selection is empty after the outlier filter")
    if shape[0] < cfg.batch_size:
        log.info("%d training tokens, fewer than one batch of %d: each batch spans consecutive passes",
                 shape[0], cfg.batch_size)
    _require(math.isfinite(act_scale) and act_scale > 0, f"act_scale must be a positive number, not {act_scale}")
    in_memory = isinstance(acts, torch.Tensor)
    if in_memory and not torch.isfinite(acts).all():  # on-disk activations are checked batch by batch
        raise FloatingPointError("training activations contain NaN/inf; recompute the activation cache")
    if cfg.tilt.over == "sequences" and not cfg.tilt.is_erm:
        _require(sequence_ids is not None and sequence_ids.shape == (shape[0],),
                 "a tilt over sequences needs sequence_ids [n_tokens]")

    # Batch order is drawn on the host, so it is the same on every device; the stack lives on
    # the GSAE's device (load it onto model.device) and each batch is copied there.
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = gsae.device
    lambdas = torch.tensor(cfg.l1_coefficients, dtype=torch.float32, device=device)
    stack = SAEStack.from_sae(gsae, len(cfg.l1_coefficients), act_scale)
    optimizer = torch.optim.Adam(stack.parameters(), lr=cfg.lr, betas=cfg.adam_betas)
    history: list[dict[str, Any]] = []
    stream = batches(shape[0], cfg, generator)
    checkpoints: dict[int, SAEStack] = {}
    desc = f"finetuning {stack.k} SSAE(s) ({cfg.tilt.label()}{', bf16' if cfg.compute_dtype == 'bfloat16' else ''})"
    for step in tqdm(range(cfg.steps), desc=desc, disable=not progress):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr_at(step)
        idx = next(stream)
        x = acts[idx].to(device).float() * act_scale
        if not in_memory and not torch.isfinite(x).all():
            raise FloatingPointError(f"training activations read at step {step} contain NaN/inf; recompute the activation cache")
        mse, penalty, f = stack_losses(stack, x, lambdas, cfg.decoder, cfg.compute_dtype)
        seq = sequence_ids[idx].to(device) if sequence_ids is not None else None
        per_sae = sae_objective(mse, penalty, cfg.tilt, seq)          # [K]
        if not torch.isfinite(per_sae).all():
            bad = [cfg.l1_coefficients[i] for i in torch.nonzero(~torch.isfinite(per_sae)).flatten().tolist()]
            raise FloatingPointError(
                f"non-finite finetuning loss at step {step} for lambda {bad} with tilt t={cfg.tilt.t:g} "
                f"({cfg.tilt.over}, normalize={cfg.tilt.normalize}); lower the tilt or the learning rate")
        optimizer.zero_grad(set_to_none=True)
        per_sae.sum().backward()   # the K SAEs share no parameters: one backward trains all
        if cfg.decoder == "unit_norm":
            stack.project_decoder_grad()
        optimizer.step()
        if cfg.decoder == "unit_norm":
            stack.normalize_decoder()
        if step + 1 in cfg.checkpoint_steps:
            checkpoints[step + 1] = copy.deepcopy(stack).eval()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            with torch.no_grad():
                history.append({
                    "step": step, "lr": cfg.lr_at(step),
                    "objective": per_sae.tolist(),
                    "mse": mse.mean(-1).tolist(),
                    "l0": (f > 0).float().sum(-1).mean(-1).tolist(),
                })
    return FinetuneResult(stack.eval(), act_scale, history, cfg, checkpoints)


@torch.no_grad()
def validation_objective(sae: Any, acts: torch.Tensor, l1_coefficient: float, act_scale: float,
                         tilt: TiltConfig | None = None, sequence_ids: torch.Tensor | None = None) -> float:
    """The finetuning objective of a saved (raw-activation) SAE on held-out ``acts``.

    Computed in the training space (activations times ``act_scale``, decoder rows at unit
    norm, so the penalty is sum_i f_i ||d_i||, which is the plain L1 for a unit-norm
    SSAE and the weighted L1 otherwise), with the same tilt as training. Checkpoints of one
    lambda are compared by it: they optimise the same objective, whereas perplexity alone
    would always prefer the least sparse one.
    """
    tilt = tilt or TiltConfig()
    stack = SAEStack.from_sae(sae, 1, act_scale)
    device = stack.W_enc.device
    x = acts.to(device).float() * act_scale
    mse, penalty, _ = stack_losses(stack, x, torch.tensor([float(l1_coefficient)], device=device), "unit_norm")
    value = sae_objective(mse, penalty, tilt, None if sequence_ids is None else sequence_ids.to(device))[0]
    if not torch.isfinite(value):
        raise FloatingPointError(f"non-finite validation objective for lambda {l1_coefficient} (t={tilt.t:g})")
    return float(value)

