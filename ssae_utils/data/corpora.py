"""Build the named splits every later stage reads, and cache them on disk as JSONL.

Splits (``SPLITS``):

- ``general_pool``       the general corpus: GSAE training text and the retrieval pool. It
                         also holds a *known* share of physics documents and of insults,
                         tagged ``meta["known_domain"]``, so retrieval precision/recall can be
                         measured; no other physics/insult/bios document is in it.
- ``general_heldout``    general text never in the pool (evaluates the GSAE).
- ``physics_seed``, ``physics_val``, ``physics_test``      in-domain physics.
- ``physics_ood_test``   physics in another register.
- ``toxicity_seed``, ``toxicity_val``, ``toxicity_test``   toxic documents only.
- ``bios_train``, ``bios_test``   biographies, ``meta["profession"]`` and ``meta["gender"]``;
                         the test split is stratified by (profession, gender) and not yet
                         balanced: see ``bios.balance_with_pronoun_swaps``.

Every split is exactly de-duplicated and all splits are disjoint by exact text. Splits are
decided on whole documents, then long documents are chunked (so pieces of one article never
straddle two splits). Order inside each split is a seeded hash shuffle.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssae_utils.data import artifacts as _artifacts
from ssae_utils.data.chunking import chunk_document
from ssae_utils.data.config import DataConfig
from ssae_utils.data.documents import Document, load_jsonl, save_jsonl, text_hash
from ssae_utils.data.hf import is_local
from ssae_utils.data.sources import get_source
from ssae_utils.data.splitting import dedup, hash_order, stratified_share, take_share, take_words
from ssae_utils.io import read_json, sha256_file, stable_hash, write_json_atomic
from ssae_utils.paths import cache_dir

__all__ = ["SPLITS", "Corpora", "DataConfig", "build_corpora", "corpora_key"]

log = logging.getLogger(__name__)

# Bump when the building code changes what a given config produces (invalidates caches).
DATA_VERSION = 1

SPLITS = ("general_pool", "general_heldout", "physics_seed", "physics_val", "physics_test",
          "physics_ood_test", "toxicity_seed", "toxicity_val", "toxicity_test",
          "bios_train", "bios_test")

# Which split keeps a text that two splits share (test sets first, the pool last).
_PRIORITY = ("physics_ood_test", "physics_test", "physics_val", "physics_seed",
             "toxicity_test", "toxicity_val", "toxicity_seed", "bios_test", "bios_train",
             "general_heldout", "general_pool")


@dataclass
class Corpora:
    config: DataConfig
    splits: dict[str, list[Document]]
    key: str
    inputs: dict[str, Any]          # artifact / local-file digests the splits were built from
    path: Path | None = None

    def __getitem__(self, split: str) -> list[Document]:
        try:
            return self.splits[split]
        except KeyError:
            raise KeyError(f"unknown split {split!r}; splits: {list(self.splits)}") from None

    def __iter__(self):
        return iter(self.splits)

    def items(self):
        return self.splits.items()

    def texts(self, split: str) -> list[str]:
        return [d.text for d in self[split]]

    def known_positives(self, domain: str) -> list[Document]:
        """Pool documents planted from ``domain`` ("physics" or "toxicity")."""
        return [d for d in self["general_pool"] if d.meta.get("known_domain") == domain]


# --- cache key -----------------------------------------------------------------------------

def _input_digests(cfg: DataConfig) -> dict[str, Any]:
    """SHA-256 of every pinned artifact and local data file the config reads."""
    digests: dict[str, Any] = {}
    for name in cfg.source_names():
        source = get_source(name)
        for art in source.artifacts:
            digests[f"artifact:{art}"] = _artifacts.get_artifact(art).sha256
        path = source.options(cfg.source_options.get(name)).get("path")
        if isinstance(path, str) and is_local(path):
            files = [Path(path)] if Path(path).is_file() else sorted(Path(path).rglob("*"))
            digests[f"file:{name}"] = {str(p): sha256_file(p) for p in files if p.is_file()}
    return digests


def corpora_key(cfg: DataConfig) -> str:
    return stable_hash({"config": cfg.to_dict(), "inputs": _input_digests(cfg),
                        "data_version": DATA_VERSION})


# --- build ---------------------------------------------------------------------------------

def build_corpora(cfg: DataConfig, force: bool = False) -> Corpora:
    """The splits for ``cfg``, read from the cache when present, else built and cached."""
    key = corpora_key(cfg)
    folder = cache_dir("corpora", key)
    manifest = folder / "manifest.json"
    if manifest.exists() and not force:
        return _load(cfg, key, folder)
    start = time.perf_counter()
    splits = assemble_splits(cfg)
    for name, docs in splits.items():
        save_jsonl(docs, folder / f"{name}.jsonl")
    inputs = _input_digests(cfg)
    # The manifest is written last: its presence marks a complete cache entry.
    write_json_atomic(manifest, {
        "key": key, "data_version": DATA_VERSION, "config": cfg.to_dict(), "inputs": inputs,
        "build_seconds": round(time.perf_counter() - start, 2),
        "splits": {n: {"docs": len(d), "words": sum(x.n_words for x in d)}
                   for n, d in splits.items()}})
    return Corpora(cfg, splits, key, inputs, folder)


def _load(cfg: DataConfig, key: str, folder: Path) -> Corpora:
    manifest = read_json(folder / "manifest.json")
    splits = {}
    for name in SPLITS:
        path = folder / f"{name}.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing from a complete cache entry; delete "
                                    f"{folder} and rebuild.")
        splits[name] = load_jsonl(path)
    return Corpora(cfg, splits, key, manifest.get("inputs", {}), folder)


def _load_role(cfg: DataConfig, name: str, min_words: int) -> list[Document]:
    docs = get_source(name).load(cfg.source_options.get(name))
    return [d for d in docs if d.n_words >= min_words]


def assemble_splits(cfg: DataConfig) -> dict[str, list[Document]]:
    """Load every source, assign documents to splits, chunk, de-duplicate."""
    seed = cfg.split_seed
    general = [d for name in cfg.general_sources for d in _load_role(cfg, name, cfg.min_words)]
    physics = _load_role(cfg, cfg.physics_source, cfg.min_words)
    ood = _load_role(cfg, cfg.physics_ood_source, cfg.min_words)
    toxicity = _load_role(cfg, cfg.toxicity_source, cfg.min_words)
    bios = _load_role(cfg, cfg.bios_source, cfg.min_words) if cfg.bios_source else []

    # Priority for texts that occur in several roles: OOD test > physics > toxicity > bios >
    # general. ``claimed`` holds the texts already owned by a higher-priority role.
    claimed: set[str] = set()
    ood = dedup(hash_order(ood, seed, "ood"), claimed)
    physics = dedup(hash_order(physics, seed, "physics"), claimed)
    toxic = dedup(hash_order([d for d in toxicity if d.meta.get("toxic")], seed, "tox"), claimed)
    benign = [d for d in toxicity if not d.meta.get("toxic")]
    bios = dedup(hash_order(bios, seed, "bios"), claimed)
    # Everything a domain source yields stays out of the general text, except what is
    # planted below: physics docs beyond the test budget are not silently left in the pool.
    extra_general = benign if cfg.toxicity_negatives_to_pool else []
    general = dedup(hash_order(general + extra_general, seed, "general"), claimed)

    splits: dict[str, list[Document]] = {}
    known_phys, rest = take_share(physics, cfg.physics_pool_share)
    splits["physics_seed"], rest = take_words(rest, cfg.physics_seed_words)
    splits["physics_val"], rest = take_words(rest, cfg.physics_val_words)
    splits["physics_test"], _ = take_words(rest, cfg.physics_test_words)
    splits["physics_ood_test"], _ = take_words(ood, cfg.physics_ood_words)

    known_tox, rest = take_share(toxic, cfg.toxicity_pool_share)
    splits["toxicity_seed"], rest = take_words(rest, cfg.toxicity_seed_words)
    splits["toxicity_val"], rest = take_words(rest, cfg.toxicity_val_words)
    splits["toxicity_test"], _ = take_words(rest, cfg.toxicity_test_words)

    splits["bios_train"], splits["bios_test"] = _split_bios(bios, cfg.bios_test_share)

    heldout, pool = take_share(general, cfg.general_heldout_share)
    pool, _ = take_words(pool, cfg.general_max_words)
    planted = ([d.with_meta(known_domain="physics") for d in known_phys]
               + [d.with_meta(known_domain="toxicity") for d in known_tox])
    splits["general_heldout"] = heldout
    splits["general_pool"] = hash_order(pool + planted, seed, "pool")

    # Chunk, then make the splits disjoint once more (two pieces of boilerplate can match).
    final_claimed: set[str] = set()
    out = {}
    for name in _PRIORITY:
        pieces = [p for d in splits[name] for p in chunk_document(d, cfg.max_words)]
        out[name] = dedup(pieces, final_claimed)
    return {name: out[name] for name in SPLITS}


def _split_bios(bios: list[Document], test_share: float) -> tuple[list[Document], list[Document]]:
    preset = [d for d in bios if d.meta.get("split")]
    train = [d for d in preset if d.meta["split"] == "train"]
    test = [d for d in preset if d.meta["split"] == "test"]
    free = [d for d in bios if not d.meta.get("split")]
    head, rest = stratified_share(free, test_share,
                                  lambda d: (d.meta.get("profession"), d.meta.get("gender")))
    return train + rest, test + head


def split_hashes(corpora: Corpora) -> dict[str, set[str]]:
    """Text hashes per split (for disjointness checks)."""
    return {name: {text_hash(d.text) for d in docs} for name, docs in corpora.items()}


def describe(corpora: Corpora) -> str:
    """One line per split: documents and words (quick look; see ``card`` for the full card)."""
    return "\n".join(f"{n:18s} {len(d):7d} docs {sum(x.n_words for x in d):10d} words"
                     for n, d in corpora.items())
