"""Mean-pooled residuals and SAE features per document (what the probes read).

A probe reads the mean of a document's residuals at the SAE's hook over the tokens the SAE
reads: BOS and outlier-norm tokens are left out (the SAE was not trained on them and splices
pass them through; see ``ssae_utils.sae.outliers``). Because pooling is linear, zero-ablating
features token by token and then pooling equals subtracting the pooled features' decoder
contributions from the pooled residual (``shift.ablate_pooled``), so each SAE is encoded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from ssae_utils.progress import tqdm


@dataclass
class DocTokens:
    """Residuals of the tokens the probes read, with the document each token belongs to."""

    acts: torch.Tensor          # float [n_tokens, d_model]
    token_ids: torch.Tensor     # long [n_tokens]
    doc_index: torch.Tensor     # long [n_tokens], 0..n_docs-1
    n_docs: int

    def __post_init__(self) -> None:
        n = self.acts.shape[0]
        if self.acts.ndim != 2 or self.token_ids.shape != (n,) or self.doc_index.shape != (n,):
            raise ValueError(f"DocTokens: acts {tuple(self.acts.shape)}, token_ids {tuple(self.token_ids.shape)}, "
                             f"doc_index {tuple(self.doc_index.shape)} do not line up")
        counts = self.token_counts()
        if (counts == 0).any():
            first = int(torch.nonzero(counts == 0)[0])
            raise ValueError(f"document {first} has no token the SAE reads (all BOS or outlier-norm); "
                             "drop it from the study sets")

    def token_counts(self) -> torch.Tensor:
        return torch.bincount(self.doc_index, minlength=self.n_docs)

    def select_docs(self, rows: torch.Tensor) -> "DocTokens":
        """The tokens of documents ``rows`` (distinct), renumbered 0..len(rows)-1 in that order."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        if len(torch.unique(rows)) != len(rows):
            raise ValueError("select_docs needs distinct document rows")
        new_index = torch.full((self.n_docs,), -1, dtype=torch.long)
        new_index[rows] = torch.arange(len(rows))
        mapped = new_index[self.doc_index]
        keep = mapped >= 0
        return DocTokens(self.acts[keep], self.token_ids[keep], mapped[keep], len(rows))

    @classmethod
    def from_activation_set(cls, act_set: Any, n_docs: int, keep: torch.Tensor | None = None) -> "DocTokens":
        """From an ``ActivationSet`` (BOS already excluded); ``keep`` masks tokens (e.g. inliers)."""
        keep = torch.ones(len(act_set.acts), dtype=torch.bool) if keep is None else keep
        return cls(act_set.acts[keep].float(), act_set.token_ids[keep], act_set.doc_index[keep].long(), n_docs)


def mean_by_doc(values: torch.Tensor, doc_index: torch.Tensor, n_docs: int) -> torch.Tensor:
    """Per-document mean of the rows of ``values`` [n_tokens, k] -> [n_docs, k] (float64 sums)."""
    sums = torch.zeros(n_docs, values.shape[1], dtype=torch.float64)
    sums.index_add_(0, doc_index, values.double())
    counts = torch.bincount(doc_index, minlength=n_docs).clamp_min(1).double()
    return (sums / counts[:, None]).float()


def pooled_residuals(tokens: DocTokens) -> torch.Tensor:
    return mean_by_doc(tokens.acts, tokens.doc_index, tokens.n_docs)


@torch.no_grad()
def pooled_features(sae: Any, tokens: DocTokens, batch_tokens: int = 4096, desc: str = "encoding") -> torch.Tensor:
    """Per-document mean of the SAE's feature activations [n_docs, d_sae]."""
    d_sae = int(sae.cfg.d_sae)
    sums = torch.zeros(tokens.n_docs, d_sae, dtype=torch.float64)
    for start in tqdm(range(0, tokens.acts.shape[0], batch_tokens), desc=desc, leave=False):
        f = sae.encode(tokens.acts[start:start + batch_tokens])
        sums.index_add_(0, tokens.doc_index[start:start + batch_tokens], f.double())
    return (sums / tokens.token_counts().clamp_min(1).double()[:, None]).float()
