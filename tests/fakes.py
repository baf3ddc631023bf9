"""Small stand-ins for the model, so cache and evaluation logic is tested in isolation."""

from __future__ import annotations

import hashlib

import torch


class WordTokenizer:
    """Whitespace tokenizer with stable ids (hash of the word), no special tokens."""

    def __init__(self, vocab_size: int = 97):
        self.vocab_size = vocab_size

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [2 + int(hashlib.md5(w.encode()).hexdigest(), 16) % (self.vocab_size - 2) for w in text.split()]


class CausalToyModel:
    """resid[t] = mean of token embeddings up to t: causal, deterministic, cheap."""

    def __init__(self, d_model: int = 8, vocab_size: int = 97):
        self.tokenizer = WordTokenizer(vocab_size)
        self.bos_token_id = 1
        self.d_model = d_model
        self.hook_name = "blocks.0.hook_resid_post"
        self.fingerprint = "causal-toy-v1"
        gen = torch.Generator().manual_seed(0)
        self.embed = torch.randn(vocab_size, d_model, generator=gen)
        # logits favour tokens already seen, so repetitive text is predicted better than uniform
        self.unembed = 4.0 * self.embed.T
        self.calls = 0
        self.tokens_seen = 0

    def resid_at_hook(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.tokens_seen += tokens.numel()
        e = self.embed[tokens]
        counts = torch.arange(1, tokens.shape[1] + 1).view(1, -1, 1)
        return e.cumsum(1) / counts

    def ce_from_resid(self, resid: torch.Tensor, tokens: torch.Tensor, per_token: bool = False,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
        logits = resid[:, :-1] @ self.unembed
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
        if valid is not None:
            ce = torch.where(valid, ce, torch.zeros_like(ce))
            return ce if per_token else ce[valid].mean()
        return ce if per_token else ce.mean()


class ContextStore:
    """``contexts()`` and ``load()`` like ``ActivationStore``'s, without a model: each text is
    chunked on its own into contexts of 6 (BOS = 1), ``load`` returns 20 fixed random 8-d rows."""

    key = "toy"

    def contexts(self, texts):
        rows, lengths = [], []
        for text in texts:
            ids = [1] + [2 + (ord(c) % 90) for c in text]
            for start in range(0, len(ids), 6):
                piece = ids[start:start + 6]
                rows.append(piece + [1] * (6 - len(piece)))
                lengths.append(len(piece))
        return torch.tensor(rows), torch.tensor(lengths)

    def load(self, texts, desc=""):
        return type("A", (), {"acts": torch.randn(20, 8, generator=torch.Generator().manual_seed(0))})()
