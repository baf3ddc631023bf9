"""Residual-stream activation cache: per-document, sharded, memory-mappable, resumable.

Layout (one folder per model fingerprint x hook x context length x dtype)::

    .cache/activations/<store-key>/
        <shard-key>.acts.npy     float [n_real_tokens, d_model]  (flat: padding never stored)
        <shard-key>.tokens.npy   int32 [n_contexts, context_length] (padded with BOS)
        <shard-key>.json         manifest: documents, context lengths, checksum

A shard's key is the hash of the store key and the content hashes of its documents, so a
document that several selections share is computed once and later requests only index it.
The manifest is written last (atomically), so a shard without a manifest never counts as
done: a killed run resumes by recomputing only shards that have none. A truncated or corrupt
shard is detected (shape, size, optional SHA-256) and recomputed.

Tokenization: each document is tokenized on its own (no special tokens) and cut into pieces
of ``context_length - 1`` tokens; every context starts with BOS, as Gemma expects. The last
piece of a document is kept if it has at least ``min_tokens`` tokens and is padded; padded
positions are never run through the SAE or stored (the model is causal, so padding at the
end does not change earlier positions).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Protocol, Sequence

import numpy as np
import torch
from ssae_utils.progress import tqdm

from ssae_utils.validation import require as _require
from ssae_utils.integrity import CorruptCacheError, file_digest, verify_file
from ssae_utils.io import atomic_path, stable_hash, write_json_atomic
from ssae_utils.paths import cache_dir

log = logging.getLogger(__name__)

STORE_FORMAT = 1


class HookedModel(Protocol):
    """The part of ``ssae_utils.model`` the cache needs."""

    tokenizer: Any
    bos_token_id: int
    context_length: int  # tokens per context, BOS included (model.context_length)
    d_model: int
    hook_name: str
    fingerprint: str

    def resid_at_hook(self, tokens: torch.Tensor) -> torch.Tensor: ...


@dataclass
class ActivationConfig:
    """How residual-stream activations are computed and cached."""

    batch_size: int = 16  # contexts per forward pass
    dtype: Literal["float32", "float16"] = "float32"  # storage dtype on disk
    shard_contexts: int = 256  # contexts per on-disk shard (the unit of resumption)

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "activations.batch_size must be >= 1")
        _require(self.shard_contexts >= 1, "activations.shard_contexts must be >= 1")

    # --- presets (one per profile, like every config section)
    @classmethod
    def smoke(cls, **overrides: Any) -> "ActivationConfig":
        return cls(**{"batch_size": 8, "shard_contexts": 16, **overrides})

    @classmethod
    def embedded(cls, **overrides: Any) -> "ActivationConfig":
        return cls(**{"batch_size": 16, "shard_contexts": 128, **overrides})

    @classmethod
    def paper(cls, **overrides: Any) -> "ActivationConfig":
        # float16 on disk: half of float32's bytes (the selection samples of stage 03 are
        # ~17 GB each instead of ~34 GB); the residual stream of Gemma-2b at layer 12 has norms
        # of ~100 and per-coordinate values well inside float16's range (max 65504), and the
        # relative rounding (~5e-4) is far below the SAEs' reconstruction error (FVU ~0.1).
        return cls(**{"batch_size": 32, "shard_contexts": 512, "dtype": "float16", **overrides})



class CorruptShardError(RuntimeError):
    pass


def document_hash(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"documents must be str, got {type(text).__name__}; decode bytes as UTF-8 first")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def document_key(text: str, max_doc_tokens: int | None = None) -> str:
    """Cache key of a document, or of its first ``max_doc_tokens`` tokens (a prefix is a
    different cached item from the whole document)."""
    h = document_hash(text)
    if max_doc_tokens is None:
        return h
    if not isinstance(max_doc_tokens, int) or max_doc_tokens < 1:
        raise ValueError(f"max_doc_tokens must be None or a positive int, not {max_doc_tokens!r}")
    return f"{h}:first{max_doc_tokens}"


def chunk_token_ids(token_ids: Sequence[int], bos_id: int, context_length: int, min_tokens: int = 8) -> list[list[int]]:
    """Cut one document's tokens into BOS-prefixed contexts of at most ``context_length``."""
    body = context_length - 1
    pieces = []
    for start in range(0, len(token_ids), body):
        piece = list(token_ids[start : start + body])
        if len(piece) >= min_tokens or (start == 0 and len(piece) > 0):
            pieces.append([bos_id] + piece)
    return pieces


def encode(tokenizer: Any, text: str) -> list[int]:
    if not isinstance(text, str):
        raise TypeError(f"documents must be str, got {type(text).__name__}")
    return list(tokenizer.encode(text, add_special_tokens=False))


@dataclass
class ActivationSet:
    """Activations of a set of documents, one row per real (unpadded) token."""

    acts: torch.Tensor  # [n_tokens, d_model]
    token_ids: torch.Tensor  # [n_tokens]
    positions: torch.Tensor  # [n_tokens] position within its context (0 = BOS)
    doc_index: torch.Tensor  # [n_tokens] index into the requested documents

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    def without_bos(self) -> "ActivationSet":
        keep = self.positions > 0
        return ActivationSet(self.acts[keep], self.token_ids[keep], self.positions[keep], self.doc_index[keep])


@dataclass
class ShardedActivations:
    """Token activations left in the memory-mapped shards, read on demand (``x[idx]``).

    ``ActivationStore.load`` concatenates everything in memory, which is fine for the
    embedded profile but not for the paper's 13.9M selected tokens x d_model 2048 (~114 GB of
    float32). This view holds only the row index (12 bytes a token); SAE finetuning reads its
    batches through it, in the same row order as ``load`` gives.
    """

    arrays: list[np.ndarray]   # one memory-mapped [rows, d_model] array per shard
    shard: torch.Tensor        # [n] which array each row lives in
    row: torch.Tensor          # [n] its row in that array
    doc_index: torch.Tensor    # [n] index into the requested documents

    def __len__(self) -> int:
        return int(self.row.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), int(self.arrays[0].shape[1]) if self.arrays else 0)

    @property
    def ndim(self) -> int:
        return 2

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(idx, dtype=torch.long)
        shard, row = self.shard[idx].numpy(), self.row[idx].numpy()
        out = np.empty((len(idx), self.shape[1]), dtype=np.float32)
        for k in np.unique(shard):
            here = shard == k
            rows = row[here]
            order = np.argsort(rows, kind="stable")   # ascending reads are kind to the page cache
            block = np.empty((len(rows), self.shape[1]), dtype=np.float32)
            block[order] = self.arrays[int(k)][rows[order]]
            out[here] = block
        return torch.from_numpy(out)

    def subset(self, keep: torch.Tensor) -> "ShardedActivations":
        return ShardedActivations(self.arrays, self.shard[keep], self.row[keep], self.doc_index[keep])

    def norms(self, chunk_rows: int = 65_536) -> torch.Tensor:
        """L2 norm of every row, streamed in chunks (for outlier filtering)."""
        out = [self[torch.arange(a, min(a + chunk_rows, len(self)))].norm(dim=-1) for a in range(0, len(self), chunk_rows)]
        return torch.cat(out) if out else torch.zeros(0)


@dataclass
class _Shard:
    key: str
    manifest: dict[str, Any]
    folder: Path

    @property
    def acts_path(self) -> Path:
        return self.folder / f"{self.key}.acts.npy"

    @property
    def tokens_path(self) -> Path:
        return self.folder / f"{self.key}.tokens.npy"

    @property
    def manifest_path(self) -> Path:
        return self.folder / f"{self.key}.json"


class ActivationStore:
    """Compute-once cache of hook activations for documents, shared by every stage."""

    def __init__(self, model: HookedModel, cfg: ActivationConfig, root: Path | None = None, min_tokens: int = 8):
        self.model = model
        self.cfg = cfg
        self.context_length = int(model.context_length)
        if self.context_length < 2:
            raise ValueError("model.context_length must be >= 2 (BOS + one token)")
        self.min_tokens = min_tokens
        self.key = stable_hash(
            {
                "format": STORE_FORMAT,
                "model": model.fingerprint,
                "hook": model.hook_name,
                "context_length": self.context_length,
                "dtype": cfg.dtype,
                "min_tokens": min_tokens,
            }
        )
        self.root = Path(root) if root is not None else cache_dir("activations", self.key)
        self.root.mkdir(parents=True, exist_ok=True)
        self._np_dtype = np.dtype(cfg.dtype)

    # ------------------------------------------------------------------ index
    def _index(self) -> dict[str, _Shard]:
        """doc hash -> shard holding it, from the manifests on disk."""
        index: dict[str, _Shard] = {}
        for manifest_path in sorted(self.root.glob("*.json")):
            try:
                manifest = json.loads(manifest_path.read_text())
            except json.JSONDecodeError:
                log.warning("unreadable shard manifest %s: removing it, the shard will be recomputed", manifest_path)
                manifest_path.unlink(missing_ok=True)
                continue
            shard = _Shard(manifest["key"], manifest, self.root)
            for doc in manifest["docs"]:
                index[doc["hash"]] = shard
        return index

    def _check_shard(self, shard: _Shard, verify_checksum: bool) -> None:
        m = shard.manifest
        expected = (m["n_tokens"], m["d_model"])
        for path in (shard.acts_path, shard.tokens_path):
            if not path.exists():
                raise CorruptShardError(f"{path.name} is missing")
        try:
            acts = np.load(shard.acts_path, mmap_mode="r")
            tokens = np.load(shard.tokens_path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as err:
            raise CorruptShardError(f"{shard.acts_path.name} cannot be read ({err})") from err
        if acts.shape != expected or acts.dtype != np.dtype(m["dtype"]):
            raise CorruptShardError(f"{shard.acts_path.name} has shape {acts.shape}/{acts.dtype}, manifest says {expected}/{m['dtype']}")
        if tokens.shape != (m["n_contexts"], m["context_length"]):
            raise CorruptShardError(f"{shard.tokens_path.name} has shape {tokens.shape}")
        if verify_checksum:
            # new shards record xxh3-128 of both files; older ones the sha256 of the activations
            digests = [(shard.acts_path, m["acts_xxh3_128"], "xxh3_128"), (shard.tokens_path, m["tokens_xxh3_128"], "xxh3_128")] \
                if "acts_xxh3_128" in m else [(shard.acts_path, m["acts_sha256"], "sha256")]
            for path, digest, algo in digests:
                try:
                    verify_file(path, digest, algo)
                except CorruptCacheError as err:
                    raise CorruptShardError(str(err)) from err

    def _drop(self, shard: _Shard) -> None:
        for path in (shard.manifest_path, shard.acts_path, shard.tokens_path):
            path.unlink(missing_ok=True)

    # ---------------------------------------------------------------- compute
    def ensure(
        self,
        texts: Sequence[str],
        desc: str = "caching activations",
        verify_checksum: bool = True,
        on_shard_written: Callable[[str], None] | None = None,
        max_doc_tokens: int | None = None,
    ) -> None:
        """Make sure every document in ``texts`` is cached; compute only what is missing.

        ``max_doc_tokens``: cache only each document's first that-many tokens (a prefix,
        cached under its own key; BOS is added on top)."""
        if len(texts) == 0:
            raise ValueError("no documents to cache: the document list is empty")
        index = self._index()
        # Check the shards this call reads (each file is hashed once per process): a damaged
        # one is dropped and its documents recomputed below.
        keys = [document_key(text, max_doc_tokens) for text in texts]  # hashed once, used twice
        for shard in {id(index[h]): index[h] for h in set(keys) if h in index}.values():
            try:
                self._check_shard(shard, verify_checksum)
            except CorruptShardError as err:
                log.warning("corrupt activation shard %s (%s): recomputing it", shard.key, err)
                self._drop(shard)
        index = self._index()

        missing: list[tuple[str, str]] = []
        seen: set[str] = set()
        for text, h in zip(texts, keys):
            if h not in index and h not in seen:
                missing.append((h, text))
                seen.add(h)
        if not missing:
            return
        plans = list(self._plan_shards(missing, max_doc_tokens))
        total = sum(len(ctx) for _, ctx in plans)
        with tqdm(total=total, desc=desc, unit="ctx") as bar:
            for docs, contexts in plans:
                key = self._write_shard(docs, contexts, bar)
                if on_shard_written is not None:
                    on_shard_written(key)

    def _plan_shards(self, missing: list[tuple[str, str]], max_doc_tokens: int | None = None) -> Iterable[tuple[list[dict], list[list[int]]]]:
        docs: list[dict] = []
        contexts: list[list[int]] = []
        tok = self.model.tokenizer
        for h, text in missing:
            ids = encode(tok, text)
            if max_doc_tokens is not None:
                ids = ids[:max_doc_tokens]
            pieces = chunk_token_ids(ids, self.model.bos_token_id, self.context_length, self.min_tokens)
            docs.append({"hash": h, "ctx_start": len(contexts), "ctx_end": len(contexts) + len(pieces)})
            contexts.extend(pieces)
            if len(contexts) >= self.cfg.shard_contexts:
                yield docs, contexts
                docs, contexts = [], []
        if docs:
            yield docs, contexts

    @torch.no_grad()
    def _forward(self, contexts: list[list[int]], bar: tqdm | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(acts [n_real_tokens, d_model] in the storage dtype, tokens int32 [n, L] padded with
        BOS, lengths int64 [n]) of BOS-prefixed contexts: what a shard holds."""
        L = self.context_length
        lengths = np.array([len(c) for c in contexts], dtype=np.int64)
        tokens = np.full((len(contexts), L), self.model.bos_token_id, dtype=np.int32)
        for i, ctx in enumerate(contexts):
            tokens[i, : len(ctx)] = ctx
        n_tokens = int(lengths.sum())
        out = np.empty((n_tokens, self.model.d_model), dtype=self._np_dtype)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        # Longest contexts first, so each batch is padded to similar lengths (1.6x faster on
        # short documents such as comments); rows are written back in context order.
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(contexts), self.cfg.batch_size):
            idx = order[start : start + self.cfg.batch_size]
            batch = torch.from_numpy(tokens[idx].astype(np.int64))
            batch_len = lengths[idx]
            width = int(batch_len.max()) if len(batch_len) else 0
            resid = self.model.resid_at_hook(batch[:, :width])
            if resid.shape[:2] != (batch.shape[0], width) or resid.shape[-1] != self.model.d_model:
                raise RuntimeError(f"model returned activations of shape {tuple(resid.shape)}, expected ({batch.shape[0]}, {width}, {self.model.d_model})")
            if not torch.isfinite(resid).all():
                raise FloatingPointError("the model produced non-finite activations; check the model weights and dtype")
            resid = resid.detach().to("cpu", torch.float32).numpy()
            for j, (c, n) in enumerate(zip(idx, batch_len)):
                out[offsets[c] : offsets[c] + n] = resid[j, :n]
            if bar is not None:
                bar.update(len(batch_len))
        return out, tokens, lengths

    def _write_shard(self, docs: list[dict], contexts: list[list[int]], bar: tqdm) -> str:
        L = self.context_length
        key = stable_hash({"store": self.key, "docs": [d["hash"] for d in docs]})
        out, tokens, lengths = self._forward(contexts, bar)
        n_tokens = int(lengths.sum())
        shard = _Shard(key, {}, self.root)
        with atomic_path(shard.acts_path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, out)
        with atomic_path(shard.tokens_path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, tokens)
        manifest = {
            "key": key,
            "store": self.key,
            "docs": docs,
            "n_contexts": len(contexts),
            "context_length": L,
            "lengths": lengths.tolist(),
            "n_tokens": n_tokens,
            "d_model": self.model.d_model,
            "dtype": self._np_dtype.name,
            "acts_xxh3_128": file_digest(shard.acts_path),
            "tokens_xxh3_128": file_digest(shard.tokens_path),
        }
        # The manifest goes last: its presence is what marks the shard as complete.
        write_json_atomic(shard.manifest_path, manifest)
        return key

    # ------------------------------------------------------------------- read
    def load(
        self,
        texts: Sequence[str],
        exclude_bos: bool = True,
        desc: str = "caching activations",
        max_doc_tokens: int | None = None,
    ) -> ActivationSet:
        """Activations for ``texts`` (computed first if needed), in document order; with
        ``max_doc_tokens``, of each document's first that-many tokens only."""
        self.ensure(texts, desc=desc, max_doc_tokens=max_doc_tokens)
        index = self._index()
        acts, token_ids, positions, doc_index = [], [], [], []
        mmaps: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, dict]]] = {}
        for i, text in enumerate(texts):
            h = document_key(text, max_doc_tokens)
            shard = index[h]
            if shard.key not in mmaps:
                lengths = np.asarray(shard.manifest["lengths"], dtype=np.int64)
                mmaps[shard.key] = (
                    np.load(shard.acts_path, mmap_mode="r"),
                    np.load(shard.tokens_path, mmap_mode="r"),
                    np.concatenate([[0], np.cumsum(lengths)]),
                    {d["hash"]: d for d in shard.manifest["docs"]},
                )
            shard_acts, shard_tokens, offsets, shard_docs = mmaps[shard.key]
            doc = shard_docs[h]
            for c in range(doc["ctx_start"], doc["ctx_end"]):
                lo, hi = int(offsets[c]), int(offsets[c + 1])
                first = 1 if exclude_bos else 0
                acts.append(np.asarray(shard_acts[lo + first : hi], dtype=np.float32))
                n = hi - lo
                token_ids.append(np.asarray(shard_tokens[c, first:n], dtype=np.int64))
                positions.append(np.arange(first, n))
                doc_index.append(np.full(n - first, i))
        if not acts:
            raise ValueError("the documents produced no tokens to cache")
        return ActivationSet(
            acts=torch.from_numpy(np.concatenate(acts)),
            token_ids=torch.from_numpy(np.concatenate(token_ids)),
            positions=torch.from_numpy(np.concatenate(positions)),
            doc_index=torch.from_numpy(np.concatenate(doc_index)),
        )

    def rows(self, texts: Sequence[str], exclude_bos: bool = True, desc: str = "caching activations",
             max_doc_tokens: int | None = None) -> ShardedActivations:
        """Like ``load`` (same rows, same order), but the activations stay on disk."""
        self.ensure(texts, desc=desc, max_doc_tokens=max_doc_tokens)
        index = self._index()
        arrays: list[np.ndarray] = []
        opened: dict[str, tuple[int, np.ndarray, dict[str, dict]]] = {}
        shard_ids, rows, doc_index = [], [], []
        first = 1 if exclude_bos else 0
        for i, text in enumerate(texts):
            h = document_key(text, max_doc_tokens)
            shard = index[h]
            if shard.key not in opened:
                lengths = np.asarray(shard.manifest["lengths"], dtype=np.int64)
                arrays.append(np.load(shard.acts_path, mmap_mode="r"))
                opened[shard.key] = (len(arrays) - 1, np.concatenate([[0], np.cumsum(lengths)]),
                                     {d["hash"]: d for d in shard.manifest["docs"]})
            k, offsets, shard_docs = opened[shard.key]
            doc = shard_docs[h]
            for c in range(doc["ctx_start"], doc["ctx_end"]):
                lo, hi = int(offsets[c]) + first, int(offsets[c + 1])
                rows.append(np.arange(lo, hi))
                shard_ids.append(np.full(hi - lo, k, dtype=np.int32))
                doc_index.append(np.full(hi - lo, i))
        if not rows:
            raise ValueError("the documents produced no tokens to cache")
        return ShardedActivations(arrays, torch.from_numpy(np.concatenate(shard_ids)),
                                  torch.from_numpy(np.concatenate(rows)), torch.from_numpy(np.concatenate(doc_index)))

    def stream(self, texts: Sequence[str], exclude_bos: bool = True, max_doc_tokens: int | None = None,
               chunk_contexts: int | None = None, desc: str = "streaming activations",
               only: Callable[[int], bool] | None = None) -> Iterator[ActivationSet]:
        """The activations ``load`` would give, computed by the model and handed out in chunks of
        whole documents (about ``chunk_contexts`` contexts each; default the shard size), never
        written to disk: for one-pass consumers (TracIn scoring of the paper's ~90M candidate
        tokens) whose inputs would not fit in the cache. ``doc_index`` indexes ``texts``; a
        document that yields no context is simply absent. ``only(i)`` False skips chunk i (the
        model never runs on it): how torchrun ranks share one stream (``ssae_utils.dist``);
        the chunks are the same whatever is skipped."""
        if len(texts) == 0:
            raise ValueError("no documents to stream: the document list is empty")
        limit = chunk_contexts or self.cfg.shard_contexts
        tok = self.model.tokenizer
        first = 1 if exclude_bos else 0

        def chunks() -> Iterator[tuple[list[int], list[list[int]]]]:
            owners: list[int] = []
            contexts: list[list[int]] = []
            for i, text in enumerate(texts):
                ids = encode(tok, text)
                if max_doc_tokens is not None:
                    ids = ids[:max_doc_tokens]
                pieces = chunk_token_ids(ids, self.model.bos_token_id, self.context_length, self.min_tokens)
                owners.extend([i] * len(pieces))
                contexts.extend(pieces)
                if len(contexts) >= limit:
                    yield owners, contexts
                    owners, contexts = [], []
            if contexts:
                yield owners, contexts

        with tqdm(total=len(texts), desc=desc, unit="doc") as bar:
            done = 0
            for index, (owners, contexts) in enumerate(chunks()):
                if only is not None and not only(index):
                    bar.update(owners[-1] + 1 - done)
                    done = owners[-1] + 1
                    continue
                out, tokens, lengths = self._forward(contexts)
                offsets = np.concatenate([[0], np.cumsum(lengths)])
                rows = np.concatenate([np.arange(offsets[c] + first, offsets[c + 1]) for c in range(len(contexts))])
                doc_index = np.concatenate([np.full(int(n) - first, owners[c]) for c, n in enumerate(lengths)])
                token_ids = np.concatenate([tokens[c, first:int(n)] for c, n in enumerate(lengths)]).astype(np.int64)
                positions = np.concatenate([np.arange(first, int(n)) for n in lengths])
                yield ActivationSet(torch.from_numpy(np.asarray(out[rows], dtype=np.float32)), torch.from_numpy(token_ids),
                                    torch.from_numpy(positions), torch.from_numpy(doc_index))
                bar.update(owners[-1] + 1 - done)
                done = owners[-1] + 1

    def contexts(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token contexts [n, L] and their lengths for ``texts`` (no model run)."""
        rows, lengths = [], []
        for text in texts:
            for piece in chunk_token_ids(encode(self.model.tokenizer, text), self.model.bos_token_id, self.context_length, self.min_tokens):
                rows.append(piece + [self.model.bos_token_id] * (self.context_length - len(piece)))
                lengths.append(len(piece))
        if not rows:
            raise ValueError("the documents produced no tokens")
        return torch.tensor(rows, dtype=torch.long), torch.tensor(lengths, dtype=torch.long)
