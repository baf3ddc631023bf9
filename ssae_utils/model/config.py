"""Which language model to load, where to hook it, and how to run it: one typed dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

from ssae_utils.validation import from_dict_strict
from ssae_utils.validation import require as _require

Dtype = Literal["float32", "bfloat16", "float16", "auto"]
Device = Literal["cpu", "cuda", "auto"]

DTYPES = ("float32", "bfloat16", "float16", "auto")


@dataclass
class TinySpec:
    """Shape of the smoke profile's tiny Gemma 3 model (built and briefly trained offline).

    ``train_steps`` steps of next-token training on a generated toy corpus make the model a
    real (if tiny) language model, so that zero-ablating its residual measurably hurts the loss
    as it does for a real model; 0 keeps it purely random.

    ``tiny-random-gpt2`` reads the same spec but uses only d_model, n_layers, n_heads, d_head,
    d_mlp, vocab_size, train_steps and seed (the other knobs are Gemma 3 features).
    """

    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 2
    n_kv_heads: int = 1
    d_head: int = 32
    d_mlp: int = 128
    vocab_size: int = 512
    # Small window so that tests exercise Gemma 3's sliding-window (local) attention.
    sliding_window: int = 8
    # Gemma 3 alternates local and global layers; every 2nd layer is global here.
    global_every: int = 2
    final_logit_softcap: float | None = None
    train_steps: int = 150
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.d_model >= 8 and self.n_layers >= 1, "tiny model needs d_model >= 8 and n_layers >= 1")
        _require(self.n_heads % self.n_kv_heads == 0, "tiny.n_heads must be a multiple of tiny.n_kv_heads")
        _require(self.vocab_size >= 300, "tiny.vocab_size must be >= 300 (256 bytes + special tokens + merges)")
        _require(self.sliding_window >= 1 and self.global_every >= 1, "tiny.sliding_window and tiny.global_every must be >= 1")
        _require(self.train_steps >= 0, "tiny.train_steps must be >= 0")
        if self.final_logit_softcap is not None:
            _require(self.final_logit_softcap > 0, "tiny.final_logit_softcap must be positive or None")


@dataclass
class ModelConfig:
    """A registered language model and the residual-stream hook the SAEs read.

    ``name`` is a key of the model registry (``ssae_utils.model.available_models()``);
    ``hook_name`` is derived from ``hook_layer`` (TransformerLens naming).
    """

    name: str = "tiny-random-gemma3"
    hook_layer: int = 2
    # The LM forward's dtype (the SAEs stay float32; activations are cached as activations.dtype).
    # float32 by default. bfloat16 measured against float32 on the same 32 held-out contexts of
    # the embedded profile (bench/bench_lm_dtype.py, bench/results/lm_dtype_embedded.json):
    # clean CE +0.0049 nats, patched CE +0.0054 (0.5% perplexity), patched-minus-clean
    # +0.0004 nats (what relative perplexity is made of: 0.04%), 3.1x faster on a CPU with
    # native bf16. Within the 0.01-nat tolerance; not yet measured on Gemma-2b.
    # "auto": bfloat16 on CUDA or on a CPU with native bf16 matmuls (AVX512-BF16 / AMX), else
    # float32 (emulated bf16 is slower than float32). The config keeps "auto", so committed
    # results stay readable on either kind of machine; the dtype used is ``resolved_dtype``,
    # which keys the activation caches (model fingerprint) and is recorded in 00_setup.json.
    dtype: Dtype = "float32"
    # "cpu", "cuda" or "auto" (CUDA when present): every heavy step runs here (ssae_utils.device).
    device: Device = "cpu"
    # Tokens per context, BOS included. None means "the pretrained GSAE's": the context size
    # it was trained at (SAELens cfg ``context_size``), filled in when the profile is loaded
    # (``ssae_utils.config.load_profile``); only valid with gsae.source="pretrained".
    context_length: int | None = 128
    # Token positions per chunk of the 262k-vocabulary unembedding in the loss: the logits of
    # a whole 32x128 batch would be 4.3 GB, a 512-position chunk 540 MB; each chunk is then
    # unembedded in vocabulary blocks (hooked.UNEMBED_BLOCK), so its largest temporary is
    # 512 x 8192 float32 (16 MB).
    ce_chunk_tokens: int = 512
    tiny: TinySpec = field(default_factory=TinySpec)

    def __post_init__(self) -> None:
        if isinstance(self.tiny, dict):  # from_dict / JSON round trip
            self.tiny = TinySpec(**self.tiny)
        from ssae_utils.model.registry import available_models  # lazy: the registry imports this module

        names = available_models()
        _require(self.name in names, f"unknown model {self.name!r}; registered models: {', '.join(names)}")
        _require(isinstance(self.hook_layer, int) and self.hook_layer >= 0, "model.hook_layer must be an int >= 0")
        _require(self.dtype in DTYPES, f"model.dtype must be one of {list(DTYPES)}, not {self.dtype!r}")
        _require(self.device in ("cpu", "cuda", "auto"), f"model.device must be 'cpu', 'cuda' or 'auto', not {self.device!r}")
        _require(self.context_length is None or (not isinstance(self.context_length, bool) and self.context_length >= 2),
                 "model.context_length must be >= 2 (BOS + one token), or None for the pretrained GSAE's")
        _require(self.ce_chunk_tokens >= 1, "model.ce_chunk_tokens must be >= 1")

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.hook_layer}.hook_resid_post"

    @property
    def torch_dtype(self) -> "torch.dtype":
        import torch  # lazy: configs are built and validated without importing torch

        return getattr(torch, self.resolved_dtype)

    @property
    def resolved_dtype(self) -> str:
        """The dtype the LM runs in here ("auto" resolved for this machine)."""
        from ssae_utils.device import resolve_lm_dtype

        return resolve_lm_dtype(self.dtype, self.device)

    @property
    def resolved_device(self) -> str:
        """The device every heavy step runs on: 'auto' means CUDA when this machine has it,
        else the CPU (``ssae_utils.device``; on CUDA it also turns TF32 matmuls on)."""
        from ssae_utils.device import resolve_device

        return resolve_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return from_dict_strict(cls, data)

    # Presets ---------------------------------------------------------------------------
    @classmethod
    def smoke(cls) -> "ModelConfig":
        return cls(name="tiny-random-gemma3", hook_layer=2, device="cpu", context_length=32)

    @classmethod
    def embedded(cls) -> "ModelConfig":
        # Layer 12 of 18, as the paper's blocks.12 of Gemma-2b (also 18 layers).
        # dtype "auto": bfloat16 where the CPU multiplies it natively (what makes 3 seeds per
        # strategy and 4,096 evaluation tokens per split fit the 60-min budget), else float32.
        return cls(name="gemma-3-270m-gguf", hook_layer=12, device="cpu", context_length=128, dtype="auto")

    @classmethod
    def paper(cls) -> "ModelConfig":
        # None: the GSAE's context size (1024 for gemma-2b-res-jb, from its cfg.json)
        return cls(name="gemma-2b", hook_layer=12, device="auto", context_length=None)
