"""``RetrievalConfig``: every knob of the data-selection (retrieval) stage.

Token budgets are in language-model tokens (the caller counts them with the LM tokenizer).
The paper retrieves 13.9M tokens (physics) and 5.25M tokens (toxicity) from OpenWebText; the
embedded pool holds ~6.5M tokens (30.5k documents), so the embedded budgets are scaled down
to 500k / 250k tokens (~7.7% / ~3.8% of the pool), which also keeps SSAE finetuning within
the CPU budget. The planted known positives are far fewer than that (a few hundred
documents), so recall against them is measurable and precision is bounded above by
positives/selected: quality.py reports both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ssae_utils.validation import from_dict_strict
from ssae_utils.validation import require as _require

BM25_BACKENDS = ("sparse", "rank_bm25", "bm25s")
BM25_QUERY_MODES = ("concatenated", "per_seed_sum", "per_seed_max")
DENSE_QUERY_MODES = ("mean", "per_seed_max")


@dataclass
class RetrievalConfig:
    # --- BM25 (Okapi, rank-bm25's BM25Okapi formula: k1, b, epsilon floor on negative idf)
    # "sparse": our scipy-sparse implementation, identical scores to rank-bm25 (tested to
    # 1e-6) and ~100x+ faster per query (bench/bench_retrieval.py); "rank_bm25": the
    # reference (a Python loop over documents per query term: seconds per seed query);
    # "bm25s": the bm25s package (optional; its own idf variant, so scores differ).
    bm25_backend: str = "sparse"
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
    hashing_dim: int = 256            # dimension of the "hashing" embedder
    # "mean": the normalized mean of the seed embeddings as a single query (the seed set's
    # centroid; one faiss search); "per_seed_max": each document's max cosine to any seed.
    dense_query: str = "mean"
    # --- TracIn candidate pool: top fraction of the pool by the first-stage retriever
    prefilter_fraction: float = 0.01
    # --- selection
    token_budget_physics: int = 500_000
    token_budget_toxicity: int = 250_000
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
        _require(0 < self.prefilter_fraction <= 1, "retrieval.prefilter_fraction must be in (0, 1]")
        _require(self.token_budget_physics >= 1 and self.token_budget_toxicity >= 1,
                 "retrieval token budgets must be >= 1")
        _require(self.seed_passes >= 1, "retrieval.seed_passes must be >= 1")

    def token_budget(self, domain: str) -> int:
        budgets = {"physics": self.token_budget_physics, "toxicity": self.token_budget_toxicity}
        if domain not in budgets:
            raise ValueError(f"unknown domain {domain!r}; domains: {sorted(budgets)}")
        return budgets[domain]

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
                    prefilter_fraction=0.1, token_budget_physics=2_000,
                    token_budget_toxicity=1_000, seed_passes=3)
        return cls(**{**base, **overrides})

    @classmethod
    def embedded(cls, **overrides: Any) -> "RetrievalConfig":
        """all-MiniLM-L6-v2 from PyPI; budgets scaled to the ~6.5M-token embedded pool."""
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides: Any) -> "RetrievalConfig":
        """Contriever, the paper's 13.9M / 5.25M-token budgets (GPU box)."""
        base = dict(embedder="contriever", max_embed_tokens=512, embed_batch_size=256,
                    token_budget_physics=13_900_000, token_budget_toxicity=5_250_000)
        return cls(**{**base, **overrides})
