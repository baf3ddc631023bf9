"""Smoke profile: a tiny Gemma 3 (HF ``Gemma3ForCausalLM``) built offline in seconds.

Random init, then ``TinySpec.train_steps`` steps of next-token training on the toy corpus;
saved once to the cache (keyed by the spec) so every notebook of a run sees identical
weights. It is converted to TransformerLens by the same code as the embedded 270M model.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

from ssae_utils.io import sha256_file, stable_hash
from ssae_utils.model.backends.base import HFGemma3Backend, HFSource
from ssae_utils.model.backends.toy_text import toy_corpus, toy_tokenizer
from ssae_utils.model.config import ModelConfig, TinySpec
from ssae_utils.model.contexts import pack_contexts
from ssae_utils.model.convert import single_threaded
from ssae_utils.model.registry import register_backend
from ssae_utils.model.storage import atomic_dir, read_meta, write_meta
from ssae_utils.paths import cache_dir

log = logging.getLogger(__name__)

TINY_BUILD_VERSION = 1  # bump when the build or training recipe changes
_TRAIN_CONTEXT = 32
_TRAIN_BATCH = 16


def tiny_hf_config(spec: TinySpec) -> Gemma3TextConfig:
    layer_types = [
        "full_attention" if (i + 1) % spec.global_every == 0 else "sliding_attention" for i in range(spec.n_layers)
    ]
    return Gemma3TextConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.d_model,
        intermediate_size=spec.d_mlp,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.n_kv_heads,
        head_dim=spec.d_head,
        query_pre_attn_scalar=spec.d_head,
        max_position_embeddings=512,
        sliding_window=spec.sliding_window,
        layer_types=layer_types,
        final_logit_softcapping=spec.final_logit_softcap,
        initializer_range=0.02,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=True,
    )


def _train(model: Gemma3ForCausalLM, tokenizer, spec: TinySpec) -> float:
    contexts = pack_contexts(tokenizer, toy_corpus(seed=spec.seed), _TRAIN_CONTEXT, 2, 1).tokens
    gen = torch.Generator().manual_seed(spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(spec.train_steps):
        batch = contexts[torch.randint(len(contexts), (_TRAIN_BATCH,), generator=gen)]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def build_tiny_checkpoint(spec: TinySpec):
    """Build (and cache) the tiny model; returns its folder."""
    key = stable_hash({"spec": dataclasses.asdict(spec), "version": TINY_BUILD_VERSION})
    folder = cache_dir("models", "tiny-random-gemma3") / key
    if read_meta(folder) is not None:
        return folder
    tokenizer = toy_tokenizer(spec.vocab_size, seed=spec.seed)
    # the caller's RNG state is left untouched; one thread makes the build repeatable
    with torch.random.fork_rng(devices=[]), single_threaded():
        torch.manual_seed(spec.seed)
        model = Gemma3ForCausalLM(tiny_hf_config(spec)).float()
        final_loss = _train(model, tokenizer, spec) if spec.train_steps else float("nan")
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        write_meta(tmp, {"weights_sha256": sha256_file(tmp / "model.safetensors"), "final_train_loss": final_loss,
                         "spec": dataclasses.asdict(spec)})
    log.info("built tiny model %s (final train loss %.3f)", folder, final_loss)
    return folder


@register_backend("tiny-random-gemma3")
class TinyGemma3Backend(HFGemma3Backend):
    def load_hf(self, cfg: ModelConfig) -> HFSource:
        folder = build_tiny_checkpoint(cfg.tiny)
        model = Gemma3ForCausalLM.from_pretrained(folder, dtype=cfg.torch_dtype, local_files_only=True)
        model.eval()
        tokenizer = toy_tokenizer(cfg.tiny.vocab_size, seed=cfg.tiny.seed)
        return HFSource(model=model, tokenizer=tokenizer, weights_id=read_meta(folder)["weights_sha256"])
