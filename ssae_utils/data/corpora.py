"""Build the named splits every later stage reads, and cache them on disk: as JSONL (lists
of Documents; ``data.storage="jsonl"``, the default) or as memory-mapped Arrow tables
(``DocumentTable``; ``data.storage="arrow"``, the paper profile: see ``arrow_build``).

Splits (``split_names(domains)``):

- ``general_pool``       the general corpus: GSAE training text and the retrieval pool. It
                         also holds a *known* share of each subdomain's documents, tagged
                         ``meta["known_domain"]``, so retrieval precision/recall can be
                         measured; no other document of a subdomain or of bios is in it.
- ``general_heldout``    general text never in the pool (evaluates the GSAE).
- ``<domain>_seed``, ``<domain>_val``, ``<domain>_test`` for every ``Domain`` of the
  profile, and ``<domain>_ood_test`` where the domain has an out-of-distribution source.
- ``bios_train``, ``bios_test``   biographies, ``meta["profession"]`` and ``meta["gender"]``;
                         the test split is stratified by (profession, gender) and not yet
                         balanced: see ``bios.balance_with_pronoun_swaps``.

Every split is exactly de-duplicated and all splits are disjoint by exact text: a document
a subdomain uses is removed from the general text by content hash, and the removals are
counted per domain (``Corpora.pool_removals``, shown in the data card). Splits are decided on
whole documents, then long documents are chunked (so pieces of one article never straddle
two splits). Order inside each split is a seeded hash shuffle.

Cache integrity: the manifest (written last) records each split file's xxh3-128 digest, and a
load checks them (once per process; xxh3 reads at several GB/s, far under a JSONL parse). A
split file that does not match is rebuilt with a warning (``build_corpora(force=True)``); if
the rebuild itself fails, the error names the file and the command that rebuilds it. A
manifest without digests (older entries) is accepted as it is (its JSONL still has to parse),
and its digests are recorded then, so later damage is caught.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ssae_utils.data import artifacts as _artifacts
from ssae_utils.data.chunking import chunk_document
from ssae_utils.data.config import DataConfig
from ssae_utils.data.documents import Document, load_jsonl, save_jsonl, text_hash
from ssae_utils.data.hf import is_local
from ssae_utils.data.sources import get_source
from ssae_utils.data.splitting import dedup, hash_order, stratified_share, take_share, take_words
from ssae_utils.data.table import DocumentTable
from ssae_utils.domains import Domain, preset_domains
from ssae_utils.integrity import CorruptCacheError, file_digest, verify_file
from ssae_utils.io import read_json, sha256_file, stable_hash, write_json_atomic
from ssae_utils.paths import cache_dir

__all__ = ["Corpora", "DataConfig", "build_corpora", "corpora_key", "find_documents", "split_names"]

log = logging.getLogger(__name__)

# Bump when the building code changes what a given config produces (invalidates caches).
DATA_VERSION = 1

def _domains(cfg: DataConfig, domains: Any) -> list[Domain]:
    """The domains as a list; None: the presets of ``cfg.profile``."""
    if domains is None:
        domains = preset_domains(cfg.profile)
    return list(domains.values()) if isinstance(domains, Mapping) else list(domains)


def split_names(domains: Sequence[Domain]) -> tuple[str, ...]:
    """Every split, in the order the corpora hold them."""
    return ("general_pool", "general_heldout", *(s for d in domains for s in d.split_names), "bios_train", "bios_test")


def _priority(domains: Sequence[Domain]) -> tuple[str, ...]:
    """Which split keeps a text that two splits share: test sets first, the pool last."""
    per_domain = [d.split(p) for d in domains for p in (("ood_test",) if d.ood_source else ()) + ("test", "val", "seed")]
    return (*per_domain, "bios_test", "bios_train", "general_heldout", "general_pool")


@dataclass
class Corpora:
    config: DataConfig
    # lists (storage "jsonl") or memory-mapped DocumentTables (storage "arrow"): both are
    # Sequence[Document]; slices of a table are lists
    splits: dict[str, Sequence[Document]]
    key: str
    inputs: dict[str, Any]          # artifact / local-file digests the splits were built from
    path: Path | None = None
    # general documents dropped because a subdomain's split holds the same text, per domain
    pool_removals: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, split: str) -> Sequence[Document]:
        try:
            return self.splits[split]
        except KeyError:
            raise KeyError(f"unknown split {split!r}; splits: {list(self.splits)}") from None

    def __iter__(self):
        return iter(self.splits)

    def items(self):
        return self.splits.items()

    def texts(self, split: str) -> list[str]:
        docs = self[split]
        if isinstance(docs, DocumentTable):
            return docs.texts()           # from the text column, no Documents built
        return [d.text for d in docs]

    def known_positives(self, domain: str) -> list[Document]:
        """Pool documents labelled as belonging to ``domain`` (planted, or labelled by topic)."""
        pool = self["general_pool"]
        if isinstance(pool, DocumentTable):   # only the rows whose meta names a known domain
            return [d for d in pool.where_meta_has("known_domain") if d.meta["known_domain"] == domain]
        return [d for d in pool if d.meta.get("known_domain") == domain]


# --- cache key -----------------------------------------------------------------------------

def _input_digests(cfg: DataConfig, domains: Sequence[Domain]) -> dict[str, Any]:
    """SHA-256 of every pinned artifact and local data file the config reads."""
    digests: dict[str, Any] = {}
    for name in cfg.source_names() + [s for d in domains for s in d.sources()]:
        source = get_source(name)
        for art in source.artifacts:
            digests[f"artifact:{art}"] = _artifacts.get_artifact(art).sha256
        path = source.options(cfg.source_options.get(name)).get("path")
        if isinstance(path, str) and is_local(path):
            files = [Path(path)] if Path(path).is_file() else sorted(Path(path).rglob("*"))
            digests[f"file:{name}"] = {str(p): sha256_file(p) for p in files if p.is_file()}
    return digests


def corpora_key(cfg: DataConfig, domains: Any = None) -> str:
    doms = _domains(cfg, domains)
    return stable_hash({"config": cfg.to_dict(), "domains": [d.data_key() for d in doms],
                        "inputs": _input_digests(cfg, doms), "data_version": DATA_VERSION})


# --- build ---------------------------------------------------------------------------------

def build_corpora(cfg: DataConfig, domains: Any = None, force: bool = False) -> Corpora:
    """The splits for ``cfg`` and ``domains`` (a mapping or list of ``Domain``; None: the
    presets of ``cfg.profile``), read from the cache when present, else built and cached."""
    doms = _domains(cfg, domains)
    key = corpora_key(cfg, doms)
    folder = cache_dir("corpora", key)
    manifest = folder / "manifest.json"
    if manifest.exists() and not force:
        try:
            return _load(cfg, doms, key, folder)
        except CorruptCacheError as err:
            log.warning("damaged corpora cache entry: %s; rebuilding %s", err, folder)
            try:
                return build_corpora(cfg, doms, force=True)
            except Exception as rebuild_err:
                raise CorruptCacheError(
                    f"{err}; rebuilding it failed ({type(rebuild_err).__name__}: {rebuild_err}). Delete {folder} and "
                    f"run `python run_all.py --profile {cfg.profile} --from 00` where the sources can be read") from rebuild_err
    start = time.perf_counter()
    if cfg.storage == "arrow":
        stats, removals = _build_arrow(cfg, doms, folder)
        splits: dict[str, Sequence[Document]] = {n: DocumentTable(folder / f"{n}.arrow") for n in split_names(doms)}
    else:
        splits, removals = assemble_splits(cfg, doms)
        for name, docs in splits.items():
            save_jsonl(docs, folder / f"{name}.jsonl")
        stats = {n: {"docs": len(d), "words": sum(x.n_words for x in d)} for n, d in splits.items()}
    inputs = _input_digests(cfg, doms)
    suffix = ".arrow" if cfg.storage == "arrow" else ".jsonl"
    files = {f"{n}{suffix}": file_digest(folder / f"{n}{suffix}") for n in split_names(doms)}
    # The manifest is written last: its presence marks a complete cache entry.
    write_json_atomic(manifest, {
        "key": key, "data_version": DATA_VERSION, "config": cfg.to_dict(),
        "domains": [d.data_key() for d in doms], "inputs": inputs,
        "build_seconds": round(time.perf_counter() - start, 2), "pool_removals": removals,
        "splits": {n: stats[n] for n in split_names(doms)}, "xxh3_128": files})
    return Corpora(cfg, splits, key, inputs, folder, removals)


def _build_arrow(cfg: DataConfig, doms: Sequence[Domain], folder: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    from ssae_utils.data.arrow_build import build_arrow_splits

    labelled = _pool_labels(doms)
    return build_arrow_splits(cfg, doms, folder, _assign_non_general(cfg, doms), _priority(doms),
                              lambda name: _iter_role(cfg, name), lambda d: _label(d, labelled))


def _load(cfg: DataConfig, domains: Sequence[Domain], key: str, folder: Path) -> Corpora:
    try:
        manifest = read_json(folder / "manifest.json")
    except ValueError as err:  # a garbled manifest: the entry is rebuilt like a damaged split
        raise CorruptCacheError(str(err)) from err
    splits: dict[str, Sequence[Document]] = {}
    suffix = ".arrow" if cfg.storage == "arrow" else ".jsonl"
    digests = manifest.get("xxh3_128")
    for name in split_names(domains):
        path = folder / f"{name}{suffix}"
        if not path.exists():
            raise CorruptCacheError(f"{path} is missing from a complete cache entry")
        if digests is not None:
            if path.name not in digests:
                raise CorruptCacheError(f"{folder / 'manifest.json'} has no digest for {path.name}")
            verify_file(path, digests[path.name])
        try:
            # a table is memory-mapped: nothing is parsed until a row is read
            splits[name] = DocumentTable(path) if suffix == ".arrow" else load_jsonl(path)
        except ValueError as err:  # a JSONL line or Arrow file that does not parse
            raise CorruptCacheError(str(err)) from err
    if digests is None:  # an older entry: record its digests now, so that later damage is caught
        log.debug("%s has no split digests: recording them", folder)
        try:
            write_json_atomic(folder / "manifest.json", {**manifest, "xxh3_128": {
                f"{n}{suffix}": file_digest(folder / f"{n}{suffix}") for n in split_names(domains)}})
        except OSError as err:  # a read-only cache is still good to read
            log.debug("cannot record the digests in %s (%s)", folder, err)
    return Corpora(cfg, splits, key, manifest.get("inputs", {}), folder, manifest.get("pool_removals", {}))


def _iter_role(cfg: DataConfig, name: str):
    """A general source's documents one at a time (``min_words`` is applied by the caller)."""
    try:
        yield from get_source(name).iter(cfg.source_options.get(name))
    except KeyError as err:
        raise ValueError(f"source {name!r}: {err.args[0] if err.args else err}") from err


def _load_role(cfg: DataConfig, name: str, min_words: int) -> list[Document]:
    try:
        docs = get_source(name).load(cfg.source_options.get(name))
    except KeyError as err:
        raise ValueError(f"source {name!r}: {err.args[0] if err.args else err}") from err
    return [d for d in docs if d.n_words >= min_words]


@dataclass
class _DomainDocs:
    """One domain's documents after shuffling and de-duplication, before the word budgets."""

    domain: Domain
    main: list[Document]                 # split by shares / budgets (``source``, else ``test_source``)
    own: dict[str, list[Document]]       # splits with their own source: seed / val / test
    ood: list[Document]
    negatives: list[Document]            # labelled out-of-domain documents of ``source``


def _domain_docs(cfg: DataConfig, dom: Domain, claimed: set[str]) -> _DomainDocs:
    seed = cfg.split_seed
    salt = dom.shuffle_salt or dom.name
    load = lambda name: _load_role(cfg, name, cfg.min_words)  # noqa: E731
    ood = dedup(hash_order(load(dom.ood_source), seed, dom.ood_shuffle_salt or f"{dom.name}_ood"), claimed) \
        if dom.ood_source else []
    # Without ``source``, the test source plays its part (planted share, carved splits).
    main_source = dom.source or dom.test_source
    own = {}
    for part in ("test", "val", "seed"):
        name = getattr(dom, f"{part}_source")
        if name and not (part == "test" and dom.source is None):
            own[part] = dedup(hash_order(load(name), seed, f"{salt}_{part}"), claimed)
    docs = load(main_source)
    if dom.label_field:
        positives = [d for d in docs if d.meta.get(dom.label_field)]
        negatives = [d for d in docs if not d.meta.get(dom.label_field)]
    else:
        positives, negatives = docs, []
    main = dedup(hash_order(positives, seed, salt), claimed)
    return _DomainDocs(dom, main, own, ood, negatives)


@dataclass
class _Assigned:
    """Every split but the general ones, decided (not yet chunked), and what the general
    text needs from them."""

    splits: dict[str, list[Document]]
    planted: list[Document]              # the known domain share, planted in the pool
    extra_general: list[Document]        # labelled negatives a domain sends to the general text
    claimed: set[str]                    # texts (hashes) a domain or bios owns
    owner: dict[str, str]                # text hash -> the domain that owns it


def _assign_non_general(cfg: DataConfig, domains: Sequence[Domain]) -> _Assigned:
    seed = cfg.split_seed
    bios = _load_role(cfg, cfg.bios_source, cfg.min_words) if cfg.bios_source else []

    # Priority for texts that occur in several roles: each domain in order (its OOD test,
    # then its own splits, then its documents) > bios > general. ``claimed`` holds the
    # texts already owned by a higher-priority role; ``owner`` says which domain owns each.
    claimed: set[str] = set()
    per_domain: list[_DomainDocs] = []
    owner: dict[str, str] = {}
    for dom in domains:
        before = set(claimed)
        per_domain.append(_domain_docs(cfg, dom, claimed))
        owner.update({h: dom.name for h in claimed - before})
    bios = dedup(hash_order(bios, seed, "bios"), claimed)
    # Everything a domain source yields stays out of the general text, except what is
    # planted below and the labelled negatives a domain sends to the pool.
    extra_general = [d for dd in per_domain if dd.domain.negatives_to_pool for d in dd.negatives]

    splits: dict[str, list[Document]] = {}
    planted: list[Document] = []
    for dd in per_domain:
        dom = dd.domain
        known, rest = take_share(dd.main, dom.pool_share)
        for part, budget in (("seed", dom.seed_words), ("val", dom.val_words), ("test", dom.test_words)):
            if part in dd.own:
                splits[dom.split(part)], _ = take_words(dd.own[part], budget)
            else:
                splits[dom.split(part)], rest = take_words(rest, budget)
        if dom.ood_source:
            splits[dom.split("ood_test")], _ = take_words(dd.ood, dom.ood_words)
        planted += [d.with_meta(known_domain=dom.name) for d in known]

    splits["bios_train"], splits["bios_test"] = _split_bios(bios, cfg.bios_test_share)
    return _Assigned(splits, planted, extra_general, claimed, owner)


def _pool_labels(domains: Sequence[Domain]) -> dict[str, str]:
    """General-document topic -> the domain its documents are labelled with in the pool."""
    return {dom.pool_label_topic: dom.name for dom in domains if dom.pool_label_topic}


def _label(doc: Document, labelled: Mapping[str, str]) -> Document:
    if doc.topic in labelled and "known_domain" not in doc.meta:
        return doc.with_meta(known_domain=labelled[doc.topic])
    return doc


def assemble_splits(cfg: DataConfig, domains: Sequence[Domain]) -> tuple[dict[str, list[Document]], dict[str, int]]:
    """Load every source, assign documents to splits, chunk, de-duplicate. Returns the splits
    and, per domain, how many general documents were dropped because the domain holds them."""
    seed = cfg.split_seed
    general = [d for name in cfg.general_sources for d in _load_role(cfg, name, cfg.min_words)]
    assigned = _assign_non_general(cfg, domains)
    claimed, owner, splits = assigned.claimed, assigned.owner, assigned.splits

    general_in = hash_order(general + assigned.extra_general, seed, "general")
    removals = {dom.name: 0 for dom in domains}
    for doc in general_in:
        who = owner.get(text_hash(doc.text))
        if who is not None:
            removals[who] += 1
    general = dedup(general_in, claimed)

    heldout, pool = take_share(general, cfg.general_heldout_share)
    pool, _ = take_words(pool, cfg.general_max_words)
    labelled = _pool_labels(domains)
    pool = [_label(d, labelled) for d in pool]
    splits["general_heldout"] = heldout
    splits["general_pool"] = hash_order(pool + assigned.planted, seed, "pool")

    # Chunk, then make the splits disjoint once more (two pieces of boilerplate can match).
    final_claimed: set[str] = set()
    out = {}
    for name in _priority(domains):
        pieces = [p for d in splits[name] for p in chunk_document(d, cfg.max_words)]
        out[name] = dedup(pieces, final_claimed)
    return {name: out[name] for name in split_names(domains)}, removals


def _split_bios(bios: list[Document], test_share: float) -> tuple[list[Document], list[Document]]:
    preset = [d for d in bios if d.meta.get("split")]
    train = [d for d in preset if d.meta["split"] == "train"]
    test = [d for d in preset if d.meta["split"] == "test"]
    free = [d for d in bios if not d.meta.get("split")]
    head, rest = stratified_share(free, test_share,
                                  lambda d: (d.meta.get("profession"), d.meta.get("gender")))
    return train + rest, test + head


def find_documents(splits: Sequence[Sequence[Document]], ids: Iterable[str]) -> dict[str, Document]:
    """doc_id -> Document for the ``ids`` found in ``splits`` (a later split wins for an id in
    two, as ``dict.update`` would); of a DocumentTable only the wanted rows are read."""
    wanted = set(ids)
    found: dict[str, Document] = {}
    for docs in splits:
        if isinstance(docs, DocumentTable):
            found.update((d.doc_id, d) for d in docs.take([i for i, x in enumerate(docs.doc_ids) if x in wanted]))
        else:
            found.update((d.doc_id, d) for d in docs if d.doc_id in wanted)
    return found


def split_hashes(corpora: Corpora) -> dict[str, set[str]]:
    """Text hashes per split (for disjointness checks)."""
    return {name: {text_hash(d.text) for d in docs} for name, docs in corpora.items()}


def describe(corpora: Corpora) -> str:
    """One line per split: documents and words (quick look; see ``card`` for the full card)."""
    return "\n".join(f"{n:18s} {len(d):7d} docs {sum(x.n_words for x in d):10d} words"
                     for n, d in corpora.items())
