"""HookedLM: the one interface every stage uses to read and patch the residual stream.

It wraps a TransformerLens ``HookedTransformer`` whose weights are frozen. Three pieces of
one forward pass are exposed so callers never pay for more than they need:

    tokens --resid_at_hook--> resid at blocks.L.hook_resid_post      (layers 0..L only)
    resid  --run_from_hook--> final residual                          (layers L+1..end)
    final  --ce_from_final--> next-token cross-entropy   (unembedding in position chunks x vocab blocks)

``ce_loss(tokens, splice)`` chains them; ``ce_from_resid`` lets a caller compute the clean
prefix once and evaluate many splices (SAE reconstructions) on it.

Weights never require grad, so no autograd graph is built unless the caller passes a
residual that requires grad (e.g. through an SAE it is training): then gradients flow.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.autograd.function import once_differentiable
from transformer_lens import HookedTransformer
from transformer_lens.components import LayerNorm, LayerNormPre
from transformer_lens.utilities.activation_functions import softcap_enabled

from ssae_utils.model.contexts import Contexts, PackMode, pack_contexts

Splice = Callable[[torch.Tensor], torch.Tensor]

# Vocabulary columns unembedded at a time by ``ce_from_final``: per position chunk the largest
# temporary is [ce_chunk_tokens, UNEMBED_BLOCK] float32 (16 MB at 512 x 8192, cache-sized)
# instead of the full [512, 262144] logits plus F.cross_entropy's log-softmax (1 GB). Measured
# on the embedded model (Gemma 3 270M, 2 CPU cores, bench/bench_blocked_ce.py ->
# bench/results/blocked_ce.json): unembedding + CE 1.33-1.36x faster than the materialising
# path under glibc's default malloc (which maps and zero-fills those buffers afresh per chunk),
# 1.02-1.08x under run_all.py's ALLOCATOR_ENV (buffers reused from the heap); ~93% of the time
# is now the block matmuls. The CE is also more exact: within 1.7e-6 nats/token of a float64
# logsumexp of the same logits, where F.cross_entropy was off by up to 6.7e-5.
# Block sizes 1024-8192 measured the same. W_U is read in place, as [d_model, block] column
# slices of the [d_model, vocab] matrix: a vocabulary-major contiguous copy (W_U.T.contiguous(),
# so that each block is contiguous) measured 1.00-1.01x in the same runs, within the repeats'
# spread, and would double the unembedding's memory (+671 MB for the embedded model, +2 GB
# bf16 / 4 GB fp32 for Gemma-2b's 256k x 2048), so it is not made.
UNEMBED_BLOCK = 8192


def _block_logits(h: torch.Tensor, W_U: torch.Tensor, b_U: torch.Tensor | None, cap: float | None,
                  lo: int, hi: int) -> torch.Tensor:
    """Float32 logits of vocabulary columns lo:hi, computed exactly as ``logits_from_final``
    computes them (unembed and bias in the model dtype, then float32, then the soft-cap)."""
    logits = h @ W_U[:, lo:hi]
    if b_U is not None:
        logits += b_U[lo:hi]
    logits = logits.float()
    if cap is not None:  # in place on a fresh block: the same ops as cap * tanh(logits / cap)
        logits = logits.div_(cap).tanh_().mul_(cap)
    return logits


class _BlockedCE(torch.autograd.Function):
    """Per-token CE of normed final residuals h [n, d]: an online logsumexp over vocabulary
    blocks, never the [n, vocab] logits. Backward recomputes each block (memory stays
    [n, block]); the gradient goes to h only, since the unembedding is frozen."""

    @staticmethod
    def forward(ctx, h, W_U, b_U, targets, cap, block):  # noqa: ANN001, ANN205
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            raise NotImplementedError("ce_from_final gives no gradient to the unembedding (the model is frozen)")
        n, vocab = h.shape[0], W_U.shape[1]
        m = h.new_full((n,), float("-inf"), dtype=torch.float32)  # running max
        s = h.new_zeros((n,), dtype=torch.float32)                 # running sum of exp(logit - m)
        target_logit = h.new_zeros((n,), dtype=torch.float32)
        for lo in range(0, vocab, block):
            hi = min(lo + block, vocab)
            logits = _block_logits(h, W_U, b_U, cap, lo, hi)
            # the target's logit, read from the very block the logsumexp sums (same rounding)
            here = (targets >= lo) & (targets < hi)
            picked = logits.gather(1, (targets - lo).clamp(0, hi - lo - 1).unsqueeze(1)).squeeze(1)
            target_logit = torch.where(here, picked, target_logit)
            m_new = torch.maximum(m, logits.amax(1))
            s = s * torch.exp(m - m_new) + logits.sub_(m_new.unsqueeze(1)).exp_().sum(1)
            m = m_new
        lse = m + torch.log(s)
        ctx.cap, ctx.block, ctx.has_bias = cap, block, b_U is not None
        ctx.save_for_backward(h, W_U, *([b_U] if b_U is not None else []), targets, lse, target_logit)
        return lse - target_logit

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        if ctx.has_bias:
            h, W_U, b_U, targets, lse, target_logit = ctx.saved_tensors
        else:
            (h, W_U, targets, lse, target_logit), b_U = ctx.saved_tensors, None
        cap, g = ctx.cap, grad.float()
        grad_h = torch.zeros_like(h, dtype=torch.float32)
        for lo in range(0, W_U.shape[1], ctx.block):
            hi = min(lo + ctx.block, W_U.shape[1])
            logits = _block_logits(h, W_U, b_U, cap, lo, hi)
            # d CE / d raw logit = (softmax - onehot) * d softcap; the onehot part comes after
            d = (logits - lse.unsqueeze(1)).exp_()
            if cap is not None:
                d.mul_(1 - (logits / cap) ** 2)
            d.mul_(g.unsqueeze(1))
            grad_h += (d.to(h.dtype) @ W_U[:, lo:hi].T).float()
        d_target = g if cap is None else g * (1 - (target_logit / cap) ** 2)
        grad_h -= d_target.unsqueeze(1) * W_U[:, targets].T.float()
        return grad_h.to(h.dtype), None, None, None, None, None


class HookedLM:
    """A frozen causal LM with a residual-stream hook after block ``hook_layer``."""

    def __init__(
        self,
        model: HookedTransformer,
        tokenizer: Any,
        *,
        name: str,
        hook_layer: int,
        fingerprint: str,
        ce_chunk_tokens: int = 512,
        context_length: int = 128,
    ) -> None:
        n_layers = model.cfg.n_layers
        if not 0 <= hook_layer < n_layers:
            raise ValueError(f"hook_layer={hook_layer} is outside this model's layers 0..{n_layers - 1} ({name})")
        if tokenizer.bos_token_id is None:
            raise ValueError(f"the tokenizer of {name} has no BOS token; contexts must start with BOS")
        model.eval()
        model.requires_grad_(False)
        self.tl = model  # escape hatch: TransformerLens hooks, run_with_cache, ...
        self.tokenizer = tokenizer
        self.name = name
        self.hook_layer = hook_layer
        self.fingerprint = fingerprint
        self.ce_chunk_tokens = ce_chunk_tokens
        self.context_length = context_length
        self.bos_token_id: int = int(tokenizer.bos_token_id)
        self.eos_token_id: int | None = None if tokenizer.eos_token_id is None else int(tokenizer.eos_token_id)
        self._has_unembed_bias = bool(model.b_U.detach().abs().max() > 0)

    # Shapes and names ------------------------------------------------------------------
    @property
    def d_model(self) -> int:
        return int(self.tl.cfg.d_model)

    @property
    def n_layers(self) -> int:
        return int(self.tl.cfg.n_layers)

    @property
    def vocab_size(self) -> int:
        return int(self.tl.cfg.d_vocab)

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.hook_layer}.hook_resid_post"

    @property
    def device(self) -> torch.device:
        return self.tl.W_E.device

    @property
    def dtype(self) -> torch.dtype:
        return self.tl.W_E.dtype

    def with_hook_layer(self, hook_layer: int) -> "HookedLM":
        """The same model (weights shared, nothing copied) hooked after another block."""
        return HookedLM(
            self.tl,
            self.tokenizer,
            name=self.name,
            hook_layer=hook_layer,
            fingerprint=self.fingerprint,
            ce_chunk_tokens=self.ce_chunk_tokens,
            context_length=self.context_length,
        )

    def __repr__(self) -> str:
        return (
            f"HookedLM({self.name}, hook={self.hook_name}, d_model={self.d_model}, n_layers={self.n_layers}, "
            f"vocab={self.vocab_size}, device={self.device}, fingerprint={self.fingerprint})"
        )

    # Tokenization ----------------------------------------------------------------------
    def pack_contexts(self, texts: Sequence[str], context_length: int | None = None, mode: PackMode = "stream") -> Contexts:
        """Contexts and per-token document ids; see ``ssae_utils.model.contexts``."""
        length = self.context_length if context_length is None else context_length
        return pack_contexts(self.tokenizer, texts, length, self.bos_token_id, self.eos_token_id, mode)

    def tokenize_contexts(self, texts: Sequence[str], context_length: int | None = None, mode: PackMode = "stream") -> torch.Tensor:
        """Long tensor [n, context_length], each row starting with BOS (no padding)."""
        return self.pack_contexts(texts, context_length, mode).tokens

    # Forward pieces --------------------------------------------------------------------
    def resid_at_hook(self, tokens: torch.Tensor) -> torch.Tensor:
        """Residual stream after block ``hook_layer`` [b, s, d_model]; later blocks never run."""
        tokens = self._check_tokens(tokens, min_len=1)
        with torch.no_grad():
            return self.tl(tokens, stop_at_layer=self.hook_layer + 1)

    def run_from_hook(self, resid: torch.Tensor) -> torch.Tensor:
        """Blocks ``hook_layer+1 ..`` on a (possibly patched) hook residual -> final residual (pre-norm)."""
        self._check_resid(resid)
        return self.tl(resid.to(self.device, self.dtype), start_at_layer=self.hook_layer + 1, stop_at_layer=self.n_layers)

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        """The final norm (ln_final) applied before the unembedding: RMSNorm for Gemma,
        LayerNorm for GPT-2-style models (whatever module TransformerLens built); identity for
        a model without one (``normalization_type=None``)."""
        ln_final = getattr(self.tl, "ln_final", None)
        return x if ln_final is None else ln_final(x)

    @property
    def final_norm_centres(self) -> bool:
        """Whether the final norm subtracts the mean over d_model (LayerNorm does, RMSNorm not).

        The logit lens of a direction ``d`` must then read ``g * (d - mean(d))``, not ``g * d``.
        Decided by the module, not the config's normalization_type: TL's ``final_rms`` makes
        ln_final an RMSNorm inside an otherwise LayerNorm model."""
        return isinstance(getattr(self.tl, "ln_final", None), (LayerNorm, LayerNormPre))

    @property
    def final_norm_scale(self) -> torch.Tensor | None:
        """The learned per-dimension scale ``g`` of the final norm, float32 on the CPU, or None.

        RMSNorm (Gemma): ``ln_final.w`` (already ``1 + weight``). LayerNorm (GPT-2): its weight
        ``ln_final.w``; its bias ``ln_final.b`` adds the same vector to every input, so it is no
        part of a direction's readout (the logit lens drops it, as it drops ``b_U``). Folded
        norms (LNPre/RMSPre) and models without a final norm have no scale."""
        w = getattr(getattr(self.tl, "ln_final", None), "w", None)
        return None if w is None else w.detach().to("cpu", torch.float32)

    @property
    def W_U(self) -> torch.Tensor:
        """Unembedding [d_model, vocab] (for the logit lens)."""
        return self.tl.W_U

    @property
    def b_U(self) -> torch.Tensor:
        return self.tl.b_U

    def logits_from_final(self, final_resid: torch.Tensor) -> torch.Tensor:
        """Logits of final-residual vectors [..., d] -> float32 [..., vocab] (norm, unembed, soft-cap).

        Materializes the full vocabulary dimension: call it on small inputs only.
        """
        logits = self.final_norm(final_resid) @ self.W_U
        if self._has_unembed_bias:  # Gemma has none; skipping the add saves a pass over the logits
            logits += self.b_U
        logits = logits.float()
        cap = self.tl.cfg.output_logits_soft_cap
        if softcap_enabled(cap):
            logits = cap * torch.tanh(logits / cap)
        return logits

    # Losses ----------------------------------------------------------------------------
    def ce_from_final(self, final_resid: torch.Tensor, tokens: torch.Tensor, per_token: bool = False,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token CE from the final residual, the unembedding computed in position chunks
        (``ce_chunk_tokens``) and, within each, in vocabulary blocks (``UNEMBED_BLOCK``) with an
        online logsumexp in float32: the full-vocabulary logits are never materialised. Equal
        to ``F.cross_entropy(logits_from_final(x), targets)`` up to float32 summation order.

        Returns the mean over all [b, s-1] predictions (nats/token), or [b, s-1] if per_token.
        With ``valid`` [b, s-1] (bool), only those predictions are computed (padding costs no
        unembedding, which dominates the cost at a 262k vocabulary): the mean is over them,
        and per-token values elsewhere are 0.
        """
        tokens = self._check_tokens(tokens)
        b, s = tokens.shape
        if final_resid.shape[:2] != (b, s):
            raise ValueError(f"residual {tuple(final_resid.shape)} does not match tokens {tuple(tokens.shape)}")
        x = final_resid[:, :-1].reshape(-1, final_resid.shape[-1])
        targets = tokens[:, 1:].reshape(-1)
        rows = None
        if valid is not None:
            if valid.shape != (b, s - 1):
                raise ValueError(f"valid mask {tuple(valid.shape)} must be [batch, seq-1] = {(b, s - 1)}")
            rows = valid.to(x.device).reshape(-1).nonzero().squeeze(1)
            x, targets = x[rows], targets[rows]
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= self.W_U.shape[1]):
            # F.cross_entropy refused these; the blocked CE would silently read a 0 target logit
            raise IndexError(f"target token ids must lie in [0, {self.W_U.shape[1]}), got "
                             f"{int(targets.min())}..{int(targets.max())}")
        cap = self.tl.cfg.output_logits_soft_cap
        cap = float(cap) if softcap_enabled(cap) else None
        bias = self.b_U if self._has_unembed_bias else None  # Gemma has none: skip the add
        losses = [x.new_zeros(0, dtype=torch.float32)]
        for start in range(0, x.shape[0], self.ce_chunk_tokens):
            stop = start + self.ce_chunk_tokens
            # logits_from_final's computation, one [chunk, UNEMBED_BLOCK] block at a time
            losses.append(_BlockedCE.apply(self.final_norm(x[start:stop]), self.W_U, bias, targets[start:stop],
                                           cap, UNEMBED_BLOCK))
        flat = torch.cat(losses)
        if rows is None:
            ce = flat.reshape(b, s - 1)
            return ce if per_token else ce.mean()
        if not per_token:
            return flat.mean()
        ce = flat.new_zeros(b * (s - 1))
        ce[rows] = flat
        return ce.reshape(b, s - 1)

    def ce_from_resid(self, resid: torch.Tensor, tokens: torch.Tensor, per_token: bool = False,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
        """CE when ``resid`` (clean or patched) is the residual at the hook."""
        return self.ce_from_final(self.run_from_hook(resid), tokens, per_token=per_token, valid=valid)

    def ce_loss(self, tokens: torch.Tensor, splice: Splice | None = None, per_token: bool = False) -> torch.Tensor:
        """Next-token CE; with ``splice``, the hook residual is replaced by ``splice(resid)``.

        The splice sees every position, BOS included; leave BOS unchanged inside the splice if
        the SAE was not trained on it.
        """
        resid = self.resid_at_hook(tokens)
        if splice is not None:
            patched = splice(resid)
            if patched.shape != resid.shape:
                raise ValueError(f"splice returned shape {tuple(patched.shape)}, expected {tuple(resid.shape)}")
            resid = patched
        return self.ce_from_resid(resid, tokens, per_token=per_token)

    def sanity_checks(self, texts: Sequence[str], context_length: int | None = None) -> dict[str, float]:
        """CE, splice sanity, residual-norm outliers and speed on a few texts (flat dict)."""
        from ssae_utils.model.sanity import sanity_checks

        return sanity_checks(self, texts, context_length)

    # Checks ----------------------------------------------------------------------------
    def _check_tokens(self, tokens: torch.Tensor, min_len: int = 2) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(f"tokens must be a torch.LongTensor [batch, seq], got {type(tokens).__name__}")
        if tokens.ndim != 2 or tokens.shape[1] < min_len:
            raise ValueError(f"tokens must be [batch, seq] with seq >= {min_len}, got shape {tuple(tokens.shape)}")
        if tokens.dtype not in (torch.long, torch.int32, torch.int64):
            raise TypeError(f"tokens must hold integer ids, got dtype {tokens.dtype}")
        if tokens.shape[1] > self.tl.cfg.n_ctx:  # learned positions (GPT-2) stop at n_ctx
            raise ValueError(f"contexts of {tokens.shape[1]} tokens exceed {self.name}'s n_ctx={self.tl.cfg.n_ctx}")
        return tokens.to(self.device, torch.long)

    def _check_resid(self, resid: torch.Tensor) -> None:
        if not isinstance(resid, torch.Tensor) or resid.ndim != 3 or resid.shape[-1] != self.d_model:
            shape = tuple(resid.shape) if isinstance(resid, torch.Tensor) else type(resid).__name__
            raise ValueError(f"residual must be [batch, seq, {self.d_model}], got {shape}")
