"""The registry of document sources: name -> ``Source``, filled by ``@register_source``.

A source turns pinned inputs (registry artifacts, Hugging Face datasets, or code) into a
list of Documents. Its ``kind`` says which role it can play when corpora are built:

- ``general``:      ordinary text for the general pool (the GSAE's training corpus);
- ``physics``:      in-domain physics documents (seed, validation, test, known pool share);
- ``physics_ood``:  physics in another register (out-of-distribution test);
- ``toxicity``:     labelled comments: ``meta["toxic"]`` is 1 (in-domain) or 0;
- ``bios``:         biographies with ``meta["profession"]`` and ``meta["gender"]``.

A subdomain (``ssae_utils.domains.Domain``) may use a source of any kind except ``bios``, or
a folder / table file / hub dataset named by its path (``files.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

from ssae_utils.data.documents import Document

KINDS = ("general", "physics", "physics_ood", "toxicity", "bios")

# A loader may return a list or be a generator (streamed sources: ``Source.iter``).
Loader = Callable[[Mapping[str, Any]], Iterable[Document]]


@dataclass(frozen=True)
class Source:
    name: str
    kind: str
    description: str
    load_fn: Loader
    # Pinned artifacts the source reads: their SHA-256 enter the corpora cache key.
    artifacts: tuple[str, ...] = ()
    # Default options; DataConfig.source_options[name] overrides them key by key.
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def options(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        unknown = set(overrides or {}) - set(self.defaults)
        if unknown:
            raise ValueError(f"source {self.name!r} has no option(s) {sorted(unknown)}; "
                             f"valid options: {sorted(self.defaults)}")
        return {**self.defaults, **(overrides or {})}

    def load(self, overrides: Mapping[str, Any] | None = None) -> list[Document]:
        return list(self.load_fn(self.options(overrides)))

    def iter(self, overrides: Mapping[str, Any] | None = None) -> Iterator[Document]:
        """The documents one at a time: a streamed source (a generator loader) never holds
        them all (``data.storage="arrow"`` builds the general pool this way)."""
        return iter(self.load_fn(self.options(overrides)))


SOURCES: dict[str, Source] = {}


def register_source(name: str, *, kind: str, description: str,
                    artifacts: tuple[str, ...] = (),
                    defaults: Mapping[str, Any] | None = None) -> Callable[[Loader], Loader]:
    """Decorator: ``@register_source("bbc_news", kind="general", ...)`` over a loader."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def wrap(fn: Loader) -> Loader:
        if name in SOURCES:
            raise ValueError(f"source {name!r} is registered twice")
        SOURCES[name] = Source(name, kind, description, fn, tuple(artifacts), dict(defaults or {}))
        return fn

    return wrap


def get_source(name: str) -> Source:
    """A registered source, or one named by where its documents are (a folder of .txt files,
    a .jsonl/.csv/.parquet file, ``hf:owner/name``; see ``files.py``)."""
    if name in SOURCES:
        return SOURCES[name]
    from ssae_utils.data.sources.files import is_file_spec, resolve_file_source

    if is_file_spec(name):
        return resolve_file_source(name)
    raise KeyError(f"unknown document source {name!r}; registered sources: {', '.join(sorted(SOURCES))}; "
                   f"or give a folder of .txt files, a .jsonl/.csv/.parquet file, or hf:owner/name")


def list_sources(kind: str | None = None) -> list[str]:
    return sorted(n for n, s in SOURCES.items() if kind is None or s.kind == kind)
