"""A second tiny architecture: a GPT-2-style TransformerLens model built in code (offline).

GPT-2's block, not Gemma's: LayerNorm (with centring and a bias) instead of RMSNorm, learned
absolute positional embeddings instead of RoPE, a plain GELU MLP instead of a gated one,
full multi-head attention (no GQA, no sliding window, no q/k norms, no soft-caps), and an
unembedding with a bias. It exists to show (and test) that nothing downstream of
``HookedLM`` assumes Gemma.

The model is a ``HookedTransformer`` built directly from a ``HookedTransformerConfig``: there
is no Hugging Face twin, so ``ssae_utils.model.reference.compare_with_hf`` skips it (with a
reason). Weights: TransformerLens's GPT-2 initialisation under ``torch.manual_seed(spec.seed)``,
then ``TinySpec.train_steps`` steps of next-token training on the same toy corpus and
tokenizer as ``tiny-random-gemma3``; saved once to the cache (keyed by the spec), so every
notebook of a run sees identical weights.

Of ``TinySpec`` this model uses d_model, n_layers, n_heads, d_head, d_mlp, vocab_size,
train_steps and seed; the Gemma-only knobs (n_kv_heads, sliding_window, global_every,
final_logit_softcap) are ignored.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from ssae_utils.io import sha256_file, stable_hash
from ssae_utils.model.backends.base import Backend
from ssae_utils.model.backends.toy_text import toy_corpus, toy_tokenizer
from ssae_utils.model.config import ModelConfig, TinySpec
from ssae_utils.model.contexts import pack_contexts
from ssae_utils.model.convert import offline_hooked_transformer, single_threaded
from ssae_utils.model.hooked import HookedLM
from ssae_utils.model.registry import register_backend
from ssae_utils.model.storage import atomic_dir, read_meta, write_meta
from ssae_utils.paths import cache_dir

log = logging.getLogger(__name__)

NAME = "tiny-random-gpt2"
TINY_GPT2_BUILD_VERSION = 1  # bump when the build or training recipe changes
N_CTX = 512  # learned positions: contexts longer than this are refused by HookedLM
WEIGHTS_FILE = "model.safetensors"
_TRAIN_CONTEXT = 32
_TRAIN_BATCH = 16
# Lower than the tiny Gemma's 3e-3: without Gemma's q/k norms the GPT-2 block trains worse at
# 3e-3 (higher final loss, and so overconfident on the smoke corpora that zero-ablating the
# residual after block 1 *lowered* their loss); at 1e-3 ablation hurts at every layer.
_LR = 1e-3


def tiny_gpt2_config(spec: TinySpec, *, dtype: torch.dtype = torch.float32, device: str = "cpu",
                     init_weights: bool = False) -> HookedTransformerConfig:
    return HookedTransformerConfig(
        model_name=NAME,
        original_architecture="GPT2LMHeadModel",
        d_model=spec.d_model,
        d_head=spec.d_head,
        n_heads=spec.n_heads,
        d_mlp=spec.d_mlp,
        n_layers=spec.n_layers,
        n_ctx=N_CTX,
        d_vocab=spec.vocab_size,
        act_fn="gelu_new",
        normalization_type="LN",
        positional_embedding_type="standard",
        eps=1e-5,
        init_mode="gpt2",
        initializer_range=0.02,
        init_weights=init_weights,
        default_prepend_bos=True,
        seed=None,  # a seed here would reseed every global RNG; the build seeds a forked one
        dtype=dtype,
        device=device,
    )


def _train(model: HookedTransformer, tokenizer, spec: TinySpec) -> float:
    contexts = pack_contexts(tokenizer, toy_corpus(seed=spec.seed), _TRAIN_CONTEXT, tokenizer.bos_token_id,
                             tokenizer.eos_token_id).tokens
    gen = torch.Generator().manual_seed(spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=_LR, weight_decay=0.0)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(spec.train_steps):
        batch = contexts[torch.randint(len(contexts), (_TRAIN_BATCH,), generator=gen)]
        loss = model(batch, return_type="loss")
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def build_tiny_gpt2_checkpoint(spec: TinySpec) -> Path:
    """Build (and cache) the tiny GPT-2-style model; returns its folder."""
    key = stable_hash({"spec": dataclasses.asdict(spec), "version": TINY_GPT2_BUILD_VERSION})
    folder = cache_dir("models", NAME) / key
    if read_meta(folder) is not None:
        return folder
    tokenizer = toy_tokenizer(spec.vocab_size, seed=spec.seed)
    # the caller's RNG state is left untouched; one thread makes the build repeatable
    with torch.random.fork_rng(devices=[]), single_threaded():
        torch.manual_seed(spec.seed)
        model = offline_hooked_transformer(tiny_gpt2_config(spec, init_weights=True), tokenizer, NAME)
        final_loss = _train(model, tokenizer, spec) if spec.train_steps else float("nan")
    with atomic_dir(folder) as tmp:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp / WEIGHTS_FILE)
        write_meta(tmp, {"weights_sha256": sha256_file(tmp / WEIGHTS_FILE), "final_train_loss": final_loss,
                         "spec": dataclasses.asdict(spec)})
    log.info("built tiny GPT-2 model %s (final train loss %.3f)", folder, final_loss)
    return folder


@register_backend(NAME)
class TinyGPT2Backend(Backend):
    """GPT-2-style tiny model (LayerNorm, learned positions, GELU MLP), no HF twin."""

    hf_reference_skip_reason = "built directly in TransformerLens; there is no Hugging Face twin to compare with"

    def load(self, cfg: ModelConfig) -> HookedLM:
        folder = build_tiny_gpt2_checkpoint(cfg.tiny)
        tokenizer = toy_tokenizer(cfg.tiny.vocab_size, seed=cfg.tiny.seed)
        device = cfg.resolved_device
        model = offline_hooked_transformer(tiny_gpt2_config(cfg.tiny, dtype=cfg.torch_dtype, device=device), tokenizer, NAME)
        model.load_state_dict(load_file(folder / WEIGHTS_FILE), strict=True)  # cast to cfg's dtype in place
        model = model.to(device, print_details=False)
        return HookedLM(
            model,
            model.tokenizer,
            name=self.name,
            hook_layer=cfg.hook_layer,
            fingerprint=self.fingerprint(cfg, read_meta(folder)["weights_sha256"]),
            ce_chunk_tokens=cfg.ce_chunk_tokens,
            context_length=cfg.context_length,
        )
