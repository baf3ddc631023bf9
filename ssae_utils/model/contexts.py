"""Documents -> fixed-length, BOS-prefixed token contexts (no padding anywhere).

Two layouts, both dropping only a final partial chunk (so nothing downstream needs masks):

* ``"stream"`` (default, loses at most ``context_length - 2`` tokens in all): every document
  is tokenized on its own, without special tokens; the documents are joined into one stream
  with the EOS token after each (Gemma's own end-of-document marker); the stream is cut into
  pieces of ``context_length - 1`` tokens and BOS is put in front of each piece, as Gemma
  expects at position 0. A context can therefore span two documents.
* ``"document"``: each document is cut on its own, so every context holds one document
  (useful for per-document caches); a document shorter than ``context_length - 1`` tokens,
  and each document's last partial piece, are dropped.

``doc_ids`` gives, for each token, the index of the document it came from (-1 for BOS and
the EOS separators).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch

PackMode = Literal["stream", "document"]


@dataclass
class Contexts:
    tokens: torch.Tensor  # long [n, context_length], tokens[:, 0] == BOS
    doc_ids: torch.Tensor  # long [n, context_length], -1 for BOS / separators

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def pack_contexts(
    tokenizer: Any,
    texts: Sequence[str],
    context_length: int,
    bos_token_id: int,
    eos_token_id: int | None,
    mode: PackMode = "stream",
) -> Contexts:
    _check_inputs(texts, context_length, mode)
    body = context_length - 1
    per_doc = [list(tokenizer.encode(text, add_special_tokens=False)) for text in texts]
    pieces: list[tuple[list[int], list[int]]] = []
    if mode == "stream":
        stream: list[int] = []
        owner: list[int] = []
        for index, ids in enumerate(per_doc):
            stream += ids
            owner += [index] * len(ids)
            if eos_token_id is not None:
                stream.append(eos_token_id)
                owner.append(-1)
        for start in range(0, len(stream) - body + 1, body):
            pieces.append((stream[start : start + body], owner[start : start + body]))
    else:
        for index, ids in enumerate(per_doc):
            for start in range(0, len(ids) - body + 1, body):
                pieces.append((ids[start : start + body], [index] * body))
    tokens = torch.tensor([[bos_token_id] + ids for ids, _ in pieces], dtype=torch.long).reshape(-1, context_length)
    doc_ids = torch.tensor([[-1] + own for _, own in pieces], dtype=torch.long).reshape(-1, context_length)
    return Contexts(tokens=tokens, doc_ids=doc_ids)


def _check_inputs(texts: Sequence[str], context_length: int, mode: str) -> None:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a list of str, not a single string (wrap it: [text])")
    if not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}")
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise TypeError(f"texts must all be str; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 2:
        raise ValueError(f"context_length must be an int >= 2 (BOS + one token), got {context_length!r}")
    if mode not in ("stream", "document"):
        raise ValueError(f"mode must be 'stream' or 'document', not {mode!r}")
