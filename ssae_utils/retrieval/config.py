"""``RetrievalConfig``: every knob of the data-selection (retrieval) stage.

Token budgets are in language-model tokens (the caller counts them with the LM tokenizer).
The paper retrieves 13.9M tokens (physics) and 5.25M tokens (toxicity) from OpenWebText; the
embedded profile's budgets (set in ssae_utils/config.py) are scaled to what 2 CPU cores can
cache at the hooked layer (~1 ms per token). The planted known positives are a few dozen to a
few hundred documents, so recall against them is measurable and precision is bounded above
by positives/selected: quality.py reports both.

SAE-TracIn (stage 02) reranks a *prefilter*: the top documents of a first-stage retriever up
to ``prefilter_budget_multiple`` x the token budget. The paper prefilters 1% of OpenWebText
(~90M of ~9B tokens, ~6.5x the physics budget). The knobs ``tracin_*`` are documented where
they are declared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ssae_utils.validation import from_dict_strict
from ssae_utils.validation import require as _require

BM25_BACKENDS = ("sparse", "rank_bm25", "bm25s", "streaming")
BM25_QUERY_MODES = ("concatenated", "per_seed_sum", "per_seed_max")
DENSE_QUERY_MODES = ("mean", "per_seed_max")
EMBED_DTYPES = ("auto", "float32", "bfloat16")
EMBEDDING_DTYPES = ("float32", "float16")
DENSE_BACKENDS = ("auto", "faiss", "blockwise")
TRACIN_L1_WEIGHTINGS = ("decoder_norm", "none")
TRACIN_PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")


@dataclass
class RetrievalConfig:
    # --- BM25 (Okapi, rank-bm25's BM25Okapi formula: k1, b, epsilon floor on negative idf)
    # "sparse": our scipy-sparse implementation, identical scores to rank-bm25 (tested to
    # 1e-6) and ~100x+ faster per query (bench/bench_retrieval.py); "rank_bm25": the
    # reference (a Python loop over documents per query term: seconds per seed query);
    # "bm25s": the bm25s package (optional; its own idf variant, so scores differ);
    # "streaming" (paper preset): the same scores as rank-bm25 (tested to 1e-9 relative)
    # computed in passes over batches of documents, never holding the corpus as token lists
    # (memory ~4 bytes per document + 8 per document per result; bm25_stream.py): an
    # OpenWebText-sized pool (~8M documents) on one box. Two passes for the first query
    # set, one per later request; every domain and query mode of stage 01 share one pass.
    bm25_backend: str = "sparse"
    # Documents per batch of the "streaming" backend (RAM: one batch's token lists, ~10 MB
    # per 1,000 OpenWebText documents); other backends ignore it. Does not change scores.
    bm25_stream_batch_docs: int = 8192
    # How the seed set becomes a query. "concatenated": all seed tokens as one query (the
    # paper: "we use the seed dataset as a query"); a term repeated in the seeds counts as
    # many times. "per_seed_sum" gives exactly the same scores (BM25 is additive over query
    # tokens; kept as a tested identity), "per_seed_max": each document's best match to any
    # single seed document (rewards closeness to one seed rather than to the whole set).
    bm25_query: str = "concatenated"
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    bm25_epsilon: float = 0.25
    # --- dense retrieval
    embedder: str = "minilm"          # registry name: "hashing", "minilm", "contriever"
    embed_batch_size: int = 64
    # Documents are truncated to this many *embedder* tokens (word pieces) before embedding
    # (BM25 and the selected training data are never truncated). all-MiniLM-L6-v2 was trained
    # with 256 (its max_seq_length) and Contriever with 512. A pool document has at most
    # ~300 words (~390 word pieces), so a minority of long documents are embedded from
    # their first 256 word pieces; the count is reported by the embedder.
    max_embed_tokens: int = 256
    # Precision of the embedder's forward pass. "auto": bfloat16 on a CPU with native bf16
    # (AVX512-BF16/AMX; 2.2x faster than float32 for MiniLM on this project's 2-core box,
    # cosine to the float32 embedding 0.9999 mean / 0.996 min over 800 pool documents) or a
    # CUDA GPU, float32 otherwise (emulated bf16 would be slower). Recorded in the embedder
    # identity, so switching it never reuses cached vectors.
    embed_dtype: str = "auto"
    hashing_dim: int = 256            # dimension of the "hashing" embedder
    # "mean": the normalized mean of the seed embeddings as a single query (the seed set's
    # centroid; one faiss search); "per_seed_max": each document's max cosine to any seed.
    dense_query: str = "mean"
    # Storage of the pool embeddings. "float32": one in-memory .npy (embed_cached; smoke and
    # embedded, unchanged). "float16" (paper preset): memory-mapped shards of
    # ``embedding_shard_docs`` rows (emb_shards.py; 8M x 768 Contriever vectors: 12 GB on
    # disk instead of 25 GB in RAM; a cosine moves by <= ~1e-3), searched blockwise.
    embedding_dtype: str = "float32"
    embedding_shard_docs: int = 262_144
    # Exact search engine. "auto": faiss IndexFlatIP whenever faiss can serve the request
    # (float32 rows in memory, and k <= 2048 when faiss runs on a GPU -- faiss-gpu's limit;
    # faiss-cpu serves any k), else the blockwise torch top-k (topk.py; cuda when present).
    # Stage 01 ranks the whole pool (k = pool size), so on a GPU box or with float16 shards
    # it is blockwise. "faiss": faiss only (an error where it cannot serve); "blockwise":
    # always blockwise. Ties: score descending, then pool index ascending, in both.
    dense_backend: str = "auto"
    dense_block_rows: int = 65_536    # rows per block of the blockwise search (device memory ~10 bytes x dim each)
    # --- SAE-TracIn (stage 02)
    # Candidate pool per retriever: its top documents until this multiple of the token budget
    # is reached (a multiple <= 1 would leave TracIn nothing to choose from).
    prefilter_budget_multiple: float = 6.5
    # Each candidate document is scored from its first this-many LM tokens (None: the whole
    # document). The score is a mean over the document's tokens, so a prefix estimates it;
    # on CPU caching candidates at the hooked layer is the stage's whole cost.
    tracin_max_doc_tokens: int | None = None
    # The SAE loss whose gradient TracIn takes: "decoder_norm" (SAELens' L1 weighted by
    # decoder row norms, what the GSAE was trained with) or "none" (the paper's plain L1).
    tracin_l1_weighting: str = "decoder_norm"
    # lambda of that loss, in the units of the raw activations; None: the GSAE's own training
    # lambda divided by its norm-scaling factor (stage 00 folds that factor into the weights,
    # so lambda/s is the same loss up to a constant factor, which does not change a ranking).
    tracin_l1_coefficient: float | None = None
    tracin_params: tuple[str, ...] = TRACIN_PARAMS  # GSAE parameters the gradients are over
    # Tokens whose residual norm exceeds the GSAE's outlier threshold (stage 00) are left out
    # of both gradients, as they were left out of GSAE training: one such token can outweigh
    # a document's every other token by orders of magnitude.
    tracin_drop_outliers: bool = True
    tracin_batch_tokens: int = 4096
    # False: candidate activations are cached on disk like every other activation (reused by
    # reruns). True: computed by the LM chunk by chunk, scored and dropped, never cached; only
    # the per-document scores are kept. The paper's candidate pools (~90M tokens x 2048 x 2
    # bytes ~ 370 GB) fit neither in memory nor on the 500 GB disk next to everything else.
    tracin_stream: bool = False
    # --- selection (each domain's token budget is ``Domain.token_budget``)
    seed_passes: int = 10             # seed-only "Validation" baseline: passes over the seeds
    # A budget larger than what the ranking holds raises ValueError unless this is True, in
    # which case everything is taken and the shortfall is logged and recorded in the Selection.
    allow_short_budget: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.bm25_backend in BM25_BACKENDS,
                 f"retrieval.bm25_backend must be one of {BM25_BACKENDS}, not {self.bm25_backend!r}")
        _require(self.bm25_query in BM25_QUERY_MODES,
                 f"retrieval.bm25_query must be one of {BM25_QUERY_MODES}, not {self.bm25_query!r}")
        _require(isinstance(self.bm25_stream_batch_docs, int) and self.bm25_stream_batch_docs >= 1,
                 f"retrieval.bm25_stream_batch_docs must be an int >= 1, not {self.bm25_stream_batch_docs!r}")
        _require(self.embedding_dtype in EMBEDDING_DTYPES,
                 f"retrieval.embedding_dtype must be one of {EMBEDDING_DTYPES}, not {self.embedding_dtype!r}")
        _require(isinstance(self.embedding_shard_docs, int) and self.embedding_shard_docs >= 1,
                 f"retrieval.embedding_shard_docs must be an int >= 1, not {self.embedding_shard_docs!r}")
        _require(self.dense_backend in DENSE_BACKENDS,
                 f"retrieval.dense_backend must be one of {DENSE_BACKENDS}, not {self.dense_backend!r}")
        _require(not (self.dense_backend == "faiss" and self.embedding_dtype == "float16"),
                 "retrieval.dense_backend='faiss' needs float32 embeddings in memory, but "
                 "retrieval.embedding_dtype='float16' stores memory-mapped shards: set "
                 "retrieval.dense_backend='auto' (or 'blockwise'), or retrieval.embedding_dtype='float32'")
        _require(isinstance(self.dense_block_rows, int) and self.dense_block_rows >= 1,
                 f"retrieval.dense_block_rows must be an int >= 1, not {self.dense_block_rows!r}")
        _require(self.dense_query in DENSE_QUERY_MODES,
                 f"retrieval.dense_query must be one of {DENSE_QUERY_MODES}, not {self.dense_query!r}")
        from ssae_utils.retrieval.embedders import available_embedders

        _require(self.embedder in available_embedders(),
                 f"retrieval.embedder must be one of {available_embedders()}, not {self.embedder!r}")
        _require(self.bm25_k1 >= 0 and 0 <= self.bm25_b <= 1,
                 "retrieval.bm25_k1 must be >= 0 and retrieval.bm25_b in [0, 1]")
        _require(self.embed_batch_size >= 1, "retrieval.embed_batch_size must be >= 1")
        _require(self.max_embed_tokens >= 2, "retrieval.max_embed_tokens must be >= 2")
        _require(self.hashing_dim >= 2, "retrieval.hashing_dim must be >= 2")
        _require(self.embed_dtype in EMBED_DTYPES,
                 f"retrieval.embed_dtype must be one of {EMBED_DTYPES}, not {self.embed_dtype!r}")
        _require(self.prefilter_budget_multiple > 1,
                 "retrieval.prefilter_budget_multiple must be > 1 (the TracIn candidates must "
                 "hold more tokens than the budget, or there is nothing to rerank)")
        _require(self.tracin_max_doc_tokens is None or self.tracin_max_doc_tokens >= 1,
                 "retrieval.tracin_max_doc_tokens must be None (whole documents) or >= 1")
        _require(self.tracin_l1_weighting in TRACIN_L1_WEIGHTINGS,
                 f"retrieval.tracin_l1_weighting must be one of {TRACIN_L1_WEIGHTINGS}, "
                 f"not {self.tracin_l1_weighting!r}")
        _require(self.tracin_l1_coefficient is None or self.tracin_l1_coefficient >= 0,
                 "retrieval.tracin_l1_coefficient must be None (from the GSAE) or >= 0")
        self.tracin_params = tuple(self.tracin_params)
        unknown = [p for p in self.tracin_params if p not in TRACIN_PARAMS]
        _require(self.tracin_params and not unknown,
                 f"retrieval.tracin_params must be a non-empty subset of {TRACIN_PARAMS}")
        _require(self.tracin_batch_tokens >= 1, "retrieval.tracin_batch_tokens must be >= 1")
        _require(self.seed_passes >= 1, "retrieval.seed_passes must be >= 1")

    # --- serialisation
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RetrievalConfig":
        return from_dict_strict(cls, data)

    # --- presets
    @classmethod
    def smoke(cls, **overrides: Any) -> "RetrievalConfig":
        """Hashing embedder, tiny budgets: the synthetic smoke corpora in milliseconds."""
        base = dict(embedder="hashing", hashing_dim=64, embed_batch_size=32,
                    prefilter_budget_multiple=3.0, tracin_max_doc_tokens=24, seed_passes=3)
        return cls(**{**base, **overrides})

    @classmethod
    def embedded(cls, **overrides: Any) -> "RetrievalConfig":
        """all-MiniLM-L6-v2 from PyPI (budgets, scaled to the ~6.5M-token embedded pool: ``ssae_utils.domains``)."""
        # Every selected or TracIn-candidate token is cached at the hooked layer at ~1 ms
        # (2 cores), and notebooks 01+02 must finish in 10 min. TracIn candidates: 3x the
        # budget per retriever, each scored from its first 64 tokens (union over both
        # retrievers and domains ~165k tokens, ~3 min). MiniLM reads the first 128 word pieces
        # of a document (bf16 on this CPU: 96 docs/s vs 43 in float32, on 800 pool documents).
        base = dict(max_embed_tokens=128, prefilter_budget_multiple=3.0, tracin_max_doc_tokens=64)
        return cls(**{**base, **overrides})

    @classmethod
    def paper(cls, **overrides: Any) -> "RetrievalConfig":
        """Contriever (GPU box); whole documents for TracIn and a candidate pool of ~1% of
        OpenWebText for physics (6.5x its budget; budgets: ``ssae_utils.domains``). At
        OpenWebText size (~8M documents): streaming BM25 and float16 embedding shards
        searched blockwise on the GPU (dense_backend "auto"); TracIn candidates streamed."""
        base = dict(embedder="contriever", max_embed_tokens=512, embed_batch_size=256,
                    bm25_backend="streaming", embedding_dtype="float16", tracin_stream=True)
        return cls(**{**base, **overrides})
