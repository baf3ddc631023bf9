"""A subdomain is a value: ``Domain`` says where its documents come from and how every stage
treats it (selection budget, finetuning steps and strategies, L0 window, which figures).

``ProfileConfig.domains`` maps a name to a ``Domain``; every stage iterates over it and no
stage names a domain. The presets below give the paper's two subdomains (physics with an
out-of-distribution test set, toxicity) at each profile's scale. Add your own from the
command line (JSON inline, or ``@file.json``)::

    python run_all.py --set 'domains.biology={"seed_source": "data/bio_seed/", "test_source": "data/bio_test.jsonl"}'
    python run_all.py --set domains.biology=@biology.json      # the same, from a file
    python run_all.py --set domains.toxicity=null              # drop a preset domain
    python run_all.py --set domains.physics.token_budget=80000 # change one knob

A document source is a registered source name (``ssae_utils.data.sources``), a folder of
``.txt`` files (one document each), a ``.jsonl`` / ``.csv`` / ``.parquet`` file with a text
column, or ``hf:owner/name`` (a Hugging Face dataset; paper profile). Options of a source
(text column, split, row cap) go in ``data.source_options[<source>]``.
"""

from __future__ import annotations

import dataclasses

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from ssae_utils.validation import from_dict_strict
from ssae_utils.validation import require as _require

STRATEGIES = ("general", "seed_only", "bm25", "dense", "bm25_tracin", "dense_tracin")
FIGURE_SPLITS = ("val", "test", "ood_test")
FIGURE_KINDS = ("erm", "term")


@dataclass
class FigureSpec:
    """One Pareto figure of a domain: which split, relative to the GSAE or absolute, and which
    curves ("erm": every strategy with ERM; "term": TERM vs ERM on the TERM strategy)."""

    split: str = "test"
    relative: bool = True
    kind: str = "erm"

    def __post_init__(self) -> None:
        _require(self.split in FIGURE_SPLITS, f"figure split must be one of {FIGURE_SPLITS}, not {self.split!r}")
        _require(self.kind in FIGURE_KINDS, f"figure kind must be one of {FIGURE_KINDS}, not {self.kind!r}")


@dataclass
class Domain:
    """One subdomain of the study.

    Documents. ``source`` yields the domain's documents; they are shuffled, a ``pool_share``
    of them is planted (labelled) in the general pool so retrieval precision and recall can
    be measured, and the rest fill the seed, validation and test splits, in that order, by
    word budgets. ``seed_source`` / ``val_source`` / ``test_source`` give a split its own
    documents instead (that split's budget then applies to them alone). Without ``source``,
    ``test_source`` plays its part: the planted share and any split without a source of its
    own (e.g. validation) are carved from it first. ``ood_source`` is an optional
    out-of-distribution test set. Every domain document is removed from the general pool
    by content hash (the data card counts the removals).
    """

    name: str
    source: str | None = None
    seed_source: str | None = None
    val_source: str | None = None
    test_source: str | None = None
    ood_source: str | None = None
    # A meta field that marks in-domain documents of a labelled source (e.g. "toxic"); the
    # others are negatives, which join the general text when ``negatives_to_pool``.
    label_field: str | None = None
    negatives_to_pool: bool = False
    # General-pool documents whose ``topic`` equals this are labelled as belonging to the
    # domain (retrieval precision/recall count them, like the planted share).
    pool_label_topic: str | None = None
    pool_share: float = 0.1
    seed_words: int = 7_000
    val_words: int = 3_000
    test_words: int | None = None         # None: every remaining document
    ood_words: int | None = None
    # Salts of the seeded shuffles (None: derived from the name). The presets keep the
    # values of earlier releases so their splits, and so every result, stay the same.
    shuffle_salt: str | None = None
    ood_shuffle_salt: str | None = None
    # --- data selection (stages 01-02): LM tokens per strategy
    token_budget: int = 500_000
    # --- finetuning (stage 03)
    steps: int = 1000
    strategies: tuple[str, ...] = STRATEGIES
    # strategies that also train ``finetune.extra_seeds`` (their spread measures training noise)
    extra_seed_strategies: tuple[str, ...] = ()
    term: bool = False                    # train the TERM arm (finetune.term_*) here
    l0_window: tuple[float, float] = (60.0, 140.0)
    # --- Pareto figures (stage 04): name -> spec; empty: "<name>_test" (and "<name>_ood_test")
    figures: dict[str, FigureSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(bool(self.name) and self.name.replace("_", "").isalnum(),
                 f"a domain name must be letters, digits and '_', not {self.name!r} (it names splits and results)")
        _require(self.name not in ("general", "bios"), f"{self.name!r} is reserved for the general pool / Bias in Bios")
        self.strategies = tuple(self.strategies)
        self.extra_seed_strategies = tuple(self.extra_seed_strategies)
        self.l0_window = tuple(float(x) for x in self.l0_window)
        self.figures = {k: v if isinstance(v, FigureSpec) else from_dict_strict(FigureSpec, dict(v))
                        for k, v in dict(self.figures).items()}
        _require(self.source is not None or self.test_source is not None,
                 f"domain {self.name!r}: give 'source' (split into seed/val/test) or at least 'test_source' "
                 f"(and 'seed_source'; a split without a source of its own is carved from the test documents)")
        _require(0.0 <= self.pool_share < 1.0, f"domains.{self.name}.pool_share must be in [0, 1)")
        for knob in ("seed_words", "val_words"):
            _require(getattr(self, knob) >= 0, f"domains.{self.name}.{knob} must be >= 0")
        for knob in ("test_words", "ood_words"):
            value = getattr(self, knob)
            _require(value is None or value > 0, f"domains.{self.name}.{knob} must be positive or None")
        _require(self.token_budget >= 1 and self.steps >= 1, f"domains.{self.name}: token_budget and steps must be >= 1")
        for knob in ("strategies", "extra_seed_strategies"):
            unknown = [s for s in getattr(self, knob) if s not in STRATEGIES]
            _require(not unknown, f"domains.{self.name}.{knob} has unknown strategies {unknown}; known: {STRATEGIES}")
        _require(len(self.strategies) >= 1, f"domains.{self.name}.strategies must not be empty")
        lo, hi = self.l0_window
        _require(math.isfinite(lo) and math.isfinite(hi) and lo < hi,
                 f"domains.{self.name}.l0_window must be (lo, hi) with lo < hi")
        for fig, spec in self.figures.items():
            _require(spec.split != "ood_test" or self.ood_source is not None,
                     f"domains.{self.name}.figures.{fig} uses the ood_test split, but the domain has no ood_source")

    # --- what the stages ask of a domain
    @property
    def eval_splits(self) -> tuple[str, ...]:
        """The splits every SSAE of this domain is evaluated on (stage 03)."""
        return ("val", "test", "ood_test") if self.ood_source is not None else ("val", "test")

    def split(self, part: str) -> str:
        """Corpora split name of ``part`` (seed, val, test, ood_test)."""
        return f"{self.name}_{part}"

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(self.split(p) for p in ("seed", "val", "test", *(("ood_test",) if self.ood_source else ())))

    def figure_specs(self) -> dict[str, FigureSpec]:
        if self.figures:
            return dict(self.figures)
        out = {f"{self.name}_test": FigureSpec("test", True, "erm")}
        if self.ood_source is not None:
            out[f"{self.name}_ood_test"] = FigureSpec("ood_test", True, "erm")
        if self.term:
            out[f"{self.name}_term"] = FigureSpec("test", True, "term")
        return out

    def data_key(self) -> dict[str, Any]:
        """The fields that decide the corpora (the others are read by later stages)."""
        data_fields = ("name", "source", "seed_source", "val_source", "test_source", "ood_source", "label_field",
                       "negatives_to_pool", "pool_label_topic", "pool_share", "seed_words", "val_words",
                       "test_words", "ood_words", "shuffle_salt", "ood_shuffle_salt")
        return {k: getattr(self, k) for k in data_fields}

    def sources(self) -> list[str]:
        return [s for s in (self.source, self.seed_source, self.val_source, self.test_source, self.ood_source) if s]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["strategies"] = list(self.strategies)
        out["extra_seed_strategies"] = list(self.extra_seed_strategies)
        out["l0_window"] = list(self.l0_window)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Domain":
        return from_dict_strict(cls, dict(data))


DomainMap = dict[str, Domain]


def domain_from_value(name: str, value: Any, current: Domain | None = None) -> Domain:
    """A Domain from an override value: a mapping of fields (merged onto ``current`` when the
    domain exists, so ``domains.physics={"steps": 10}`` changes one knob) or a Domain."""
    if isinstance(value, Domain):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"domains.{name} must be a JSON object of Domain fields (or null to drop it), not {value!r}; "
                         f"fields: {[f.name for f in fields(Domain)]}")
    data = {**(current.to_dict() if current is not None else {}), **dict(value)}
    if data.setdefault("name", name) != name:
        raise ValueError(f"domains.{name} has name {data['name']!r}: the key and the name must agree")
    return Domain.from_dict(data)


def check_domains(domains: Mapping[str, Domain]) -> DomainMap:
    out = dict(domains)
    for key, dom in out.items():
        _require(isinstance(dom, Domain), f"domains.{key} must be a Domain")
        _require(dom.name == key, f"domains.{key} is named {dom.name!r}: the key and the name must agree")
    figs = [f for d in out.values() for f in d.figure_specs()]
    dupes = sorted({f for f in figs if figs.count(f) > 1})
    _require(not dupes, f"two domains claim the figures {dupes}: give each figure name to one domain")
    return out


# ------------------------------------------------------------------ presets: the paper's two subdomains
_PHYSICS_FIGURES = {"fig1a": FigureSpec("test", True, "erm"), "fig1b": FigureSpec("test", False, "erm"),
                    "fig4": FigureSpec("ood_test", True, "erm"), "fig6": FigureSpec("test", True, "term")}
_TOXICITY_FIGURES = {"fig5a": FigureSpec("test", True, "erm"), "fig5b": FigureSpec("test", False, "erm")}


def _physics(**kw: Any) -> Domain:
    base = dict(name="physics", ood_shuffle_salt="ood", term=True, figures=dict(_PHYSICS_FIGURES))
    return Domain(**{**base, **kw})


def _toxicity(**kw: Any) -> Domain:
    base = dict(name="toxicity", label_field="toxic", negatives_to_pool=True, shuffle_salt="tox",
                seed_words=3_100, figures=dict(_TOXICITY_FIGURES))
    return Domain(**{**base, **kw})


def smoke_domains() -> DomainMap:
    return {"physics": _physics(source="smoke_physics", ood_source="smoke_physics_ood", seed_words=400, val_words=200,
                                token_budget=2_000, steps=12, extra_seed_strategies=("dense",), l0_window=(2.0, 60.0)),
            "toxicity": _toxicity(source="smoke_toxicity", seed_words=150, val_words=100, token_budget=1_000, steps=8,
                                  strategies=("general", "dense", "dense_tracin"), l0_window=(2.0, 60.0))}


def embedded_domains() -> DomainMap:
    # Budgets are LM tokens: every selected or TracIn-candidate token is cached at the hooked
    # layer at ~1 ms (2 cores, float32; ~0.4 ms in bf16), so they are far below the paper's
    # 13.9M / 5.25M (physics : toxicity kept near the paper's 2.6 : 1). Every strategy of both
    # domains runs 3 seeds (finetune.seeds + extra_seeds).
    physics = _physics(source="wiki_physics", ood_source="sympy_physics_docs", token_budget=50_000, steps=60)
    toxicity = _toxicity(source="insults", token_budget=25_000, steps=40,
                         strategies=("general", "bm25", "dense", "dense_tracin"))
    return {"physics": dataclasses.replace(physics, extra_seed_strategies=physics.strategies),
            "toxicity": dataclasses.replace(toxicity, extra_seed_strategies=toxicity.strategies)}


def paper_domains() -> DomainMap:
    # The paper retrieves from OpenWebText alone: no known positives planted (pool_share 0).
    return {"physics": _physics(source="arxiv_physics", ood_source="physics_instruct", pool_share=0.0,
                                seed_words=7_000, val_words=7_000,
                                test_words=3_700_000,      # ~4.8M tokens
                                ood_words=540_000,         # ~700k tokens
                                token_budget=13_900_000, steps=1000),
            "toxicity": _toxicity(source="pile_toxicity", pool_share=0.0, negatives_to_pool=False,
                                  seed_words=3_100,         # ~4,072 tokens
                                  val_words=3_100,
                                  test_words=2_580_000,     # ~3.357M tokens
                                  token_budget=5_250_000, steps=500)}


PRESETS = {"smoke": smoke_domains, "embedded": embedded_domains, "paper": paper_domains}


def preset_domains(profile: str) -> DomainMap:
    if profile not in PRESETS:
        raise ValueError(f"no domain presets for profile {profile!r}; presets: {sorted(PRESETS)}")
    return PRESETS[profile]()
