"""Hugging Face Gemma 3 (text) -> TransformerLens HookedTransformer, fully offline.

TransformerLens 3.9 hard-codes the configs of the named Gemma 3 checkpoints and fetches
nothing for them, but a custom (tiny) Gemma 3 has no name. So the HookedTransformerConfig is
built here from the HF config itself (the same mapping TransformerLens uses for
``google/gemma-3-270m``), and the weights go through TransformerLens's own
``convert_gemma_weights``. The smoke model and the embedded model thus share every line of
the conversion, and tests check it against the HF forward pass.
"""

from __future__ import annotations

import contextlib

import warnings
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.gemma import convert_gemma_weights
from transformer_lens.utilities.activation_functions import SOFTCAP_DISABLED

# TransformerLens precomputes rotary tables for n_ctx positions; contexts here are short.
MAX_N_CTX = 8192


def gemma3_hooked_config(hf_config: Any, *, dtype: torch.dtype, device: str, model_name: str) -> HookedTransformerConfig:
    """HookedTransformerConfig for a ``Gemma3TextConfig`` (Gemma3ForCausalLM)."""
    if getattr(hf_config, "model_type", None) != "gemma3_text":
        raise ValueError(f"expected a Gemma 3 text config (model_type 'gemma3_text'), got {getattr(hf_config, 'model_type', None)!r}")
    if getattr(hf_config, "use_bidirectional_attention", False):
        raise ValueError("bidirectional Gemma 3 (embedding) models are not causal LMs")
    rope = hf_config.rope_parameters
    global_rope, local_rope = rope["full_attention"], rope["sliding_attention"]
    for kind, params in (("full_attention", global_rope), ("sliding_attention", local_rope)):
        if params.get("rope_type", "default") not in ("default", "linear"):
            raise NotImplementedError(f"RoPE type {params['rope_type']!r} ({kind}) is not supported by this conversion")
    if local_rope.get("rope_type", "default") != "default":
        raise NotImplementedError("scaled RoPE on sliding-window layers is not supported by TransformerLens")
    layer_types = list(hf_config.layer_types)
    return HookedTransformerConfig(
        model_name=model_name,
        original_architecture="Gemma3ForCausalLM",
        d_model=hf_config.hidden_size,
        d_head=hf_config.head_dim,
        n_heads=hf_config.num_attention_heads,
        n_key_value_heads=hf_config.num_key_value_heads,
        d_mlp=hf_config.intermediate_size,
        n_layers=hf_config.num_hidden_layers,
        n_ctx=min(hf_config.max_position_embeddings, MAX_N_CTX),
        d_vocab=hf_config.vocab_size,
        eps=hf_config.rms_norm_eps,
        act_fn=hf_config.hidden_activation,
        initializer_range=hf_config.initializer_range,
        normalization_type="RMS",
        final_rms=True,
        gated_mlp=True,
        use_normalization_before_and_after=True,
        use_qk_norm=True,
        positional_embedding_type="rotary",
        rotary_base=global_rope["rope_theta"],
        rotary_base_local=local_rope["rope_theta"],
        rotary_scaling_factor=float(global_rope.get("factor", 1.0)) if global_rope.get("rope_type") == "linear" else 1.0,
        use_attn_scale=True,
        attn_scale=float(hf_config.query_pre_attn_scalar) ** 0.5,
        use_local_attn=True,
        window_size=hf_config.sliding_window,
        attn_types=["local" if t == "sliding_attention" else "global" for t in layer_types],
        attn_scores_soft_cap=hf_config.attn_logit_softcapping or SOFTCAP_DISABLED,
        output_logits_soft_cap=hf_config.final_logit_softcapping or SOFTCAP_DISABLED,
        tie_word_embeddings=bool(getattr(hf_config, "tie_word_embeddings", True)),
        default_prepend_bos=True,
        init_weights=False,
        dtype=dtype,
        device=device,
    )


def hooked_from_hf(hf_model: torch.nn.Module, tokenizer: Any, *, dtype: torch.dtype, device: str, model_name: str) -> HookedTransformer:
    """Wrap a loaded Gemma3ForCausalLM as a HookedTransformer without weight processing.

    No LayerNorm folding or weight centring ("no_processing"): Gemma's post-norms make folding
    invalid, and unprocessed weights keep the residual stream identical to the HF model's.
    """
    cfg = gemma3_hooked_config(hf_model.config, dtype=dtype, device=device, model_name=model_name)
    state_dict = convert_gemma_weights(hf_model, cfg)
    model = offline_hooked_transformer(cfg, tokenizer, model_name)
    model.load_and_process_state_dict(
        state_dict,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    return model.to(device, print_details=False)


def offline_hooked_transformer(cfg: HookedTransformerConfig, tokenizer: Any, model_name: str) -> HookedTransformer:
    """``HookedTransformer(cfg, tokenizer)`` on the CPU without any hub access (weights as cfg says).

    Shared by every backend that builds its TransformerLens model from a config: the HF
    conversion above and models built in code (``backends/tiny_gpt2.py``).
    """
    if not getattr(tokenizer, "add_bos_token", False):
        # TransformerLens would re-download the tokenizer with add_bos_token=True from the hub.
        raise ValueError(f"the tokenizer of {model_name} must add BOS (add_bos_token=True)")
    # TransformerLens reads this key (and only reloads the tokenizer when BOS is not added).
    tokenizer.init_kwargs.setdefault("name_or_path", model_name)
    with warnings.catch_warnings():
        # HookedTransformer is deprecated in favour of TL 4's bridge, which sae-lens 6 cannot use.
        warnings.simplefilter("ignore", DeprecationWarning)
        # Right padding: TL then builds no attention mask from pad ids (we never pad).
        return HookedTransformer(cfg, tokenizer, move_to_device=False, default_padding_side="right")


@contextlib.contextmanager
def single_threaded():
    """Run the block on one intra-op thread: a multi-threaded CPU reduction may sum in another
    order from run to run (seen on a loaded 2-core box), so a tiny model trained in code
    would not be the same model twice. Restores the caller's thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
