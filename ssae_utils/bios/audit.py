"""Make the selected features auditable: what tokens each one fires on.

For each feature: the token strings carrying most of its activation mass on the given
documents (sum of activations, with the count and the largest single activation), and the
context around its strongest activation. A reader can check whether a "gender feature" is
about pronouns, gendered nouns or names, or something else.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ssae_utils.bios.pooling import DocTokens
from ssae_utils.sae.handle import as_handle


@torch.no_grad()
def encode_subset(sae: Any, acts: torch.Tensor, features: Sequence[int]) -> torch.Tensor:
    """Activations of only ``features`` [n_tokens, len(features)]: features do not depend on
    each other, so encoding the selected ones alone costs len(features) / d_sae of a full pass."""
    return as_handle(sae).select(list(features)).encode(acts)


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids))


@torch.no_grad()
def top_tokens(sae: Any, tokens: DocTokens, features: Sequence[int], tokenizer: Any, k: int = 8,
               context: int = 6, batch_tokens: int = 8192) -> dict[int, dict[str, Any]]:
    """{feature: {"tokens": [{"token", "mass", "count", "max"}...], "top_context": str, "max_act": float}}."""
    features = [int(i) for i in features]
    if not features:
        return {}
    acts = torch.cat([encode_subset(sae, tokens.acts[s:s + batch_tokens], features)
                      for s in range(0, tokens.acts.shape[0], batch_tokens)])
    out: dict[int, dict[str, Any]] = {}
    ids = tokens.token_ids
    vocab = int(ids.max()) + 1 if len(ids) else 1
    for j, feat in enumerate(features):
        column = acts[:, j]
        fired = torch.nonzero(column > 0).flatten()
        values, fired_ids = column[fired].double(), ids[fired]
        mass = torch.zeros(vocab, dtype=torch.float64).index_add_(0, fired_ids, values)
        count = torch.bincount(fired_ids, minlength=vocab)
        peak = torch.zeros(vocab, dtype=torch.float64).scatter_reduce_(0, fired_ids, values, reduce="amax")
        ranked = [int(i) for i in torch.argsort(mass, descending=True, stable=True)[:k] if mass[i] > 0]
        entry: dict[str, Any] = {
            "tokens": [{"token": _decode(tokenizer, [tid]), "mass": round(float(mass[tid]), 3), "count": int(count[tid]),
                        "max": round(float(peak[tid]), 3)} for tid in ranked],
            "fired_tokens": int(len(fired)),
            "max_act": float(column.max()) if len(column) else 0.0,
            "top_context": "",
        }
        if len(fired):
            best = int(torch.argmax(column))
            doc = tokens.doc_index[best]
            lo = best
            while lo > 0 and best - lo < context and tokens.doc_index[lo - 1] == doc:
                lo -= 1
            hi = best
            while hi + 1 < len(ids) and hi - best < context and tokens.doc_index[hi + 1] == doc:
                hi += 1
            entry["top_context"] = (_decode(tokenizer, ids[lo:best].tolist()) + "<<" + _decode(tokenizer, [int(ids[best])])
                                    + ">>" + _decode(tokenizer, ids[best + 1:hi + 1].tolist()))
        out[feat] = entry
    return out
