"""Sources named by where the documents are, not by a registered name: a user's own subdomain.

``resolve_file_source(spec)`` turns a spec into a ``Source``:

- a folder: every ``*.txt`` file below it (sorted, recursive) is one document;
- a ``.jsonl`` / ``.json`` / ``.csv`` / ``.parquet`` file: one document per row, from its
  ``text_column`` (default ``text``); ``topic_column`` fills ``Document.topic``;
- ``hf:owner/name``: a Hugging Face dataset, streamed (``split``, ``text_column``, ``max_rows``).

Options go in ``data.source_options[<spec>]`` like any source's. Documents are labelled with
the file's or dataset's name (``file:biology_test.jsonl``), never a machine path, so doc ids
and results do not depend on where a checkout lives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

from ssae_utils.data.documents import Document, decode_bytes, make_document
from ssae_utils.data.hf import iter_rows, require_columns
from ssae_utils.data.sources.registry import Source

TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
HUB_PREFIX = "hf:"
FILE_KIND = "file"  # may play any role


def is_file_spec(spec: str) -> bool:
    return spec.startswith(HUB_PREFIX) or spec.startswith(("/", ".", "~")) or Path(spec).suffix in TABLE_SUFFIXES \
        or Path(spec).expanduser().is_dir()


def resolve_file_source(spec: str) -> Source:
    """The Source for a folder, a table file or ``hf:`` dataset; a clear error otherwise."""
    if spec.startswith(HUB_PREFIX):
        path = spec[len(HUB_PREFIX):]
        defaults = {"path": path, "split": "train", "name": None, "revision": None, "max_rows": None,
                    "text_column": "text", "topic_column": None}
        return Source(spec, FILE_KIND, f"Hugging Face dataset {path}", lambda o: _table_docs(f"hf:{path}", o), (), defaults)
    path = Path(spec).expanduser()
    if path.is_dir():
        return Source(spec, FILE_KIND, f"folder of .txt files {path.name}/",
                      lambda o: _folder_docs(path, o), (), {"path": str(path), "pattern": "*.txt"})
    if path.suffix in TABLE_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"document file {spec!r} does not exist (a domain source must be a registered "
                                    f"source name, a folder of .txt files, a {'/'.join(TABLE_SUFFIXES)} file or hf:owner/name)")
        defaults = {"path": str(path), "split": "train", "name": None, "revision": None, "max_rows": None,
                    "text_column": "text", "topic_column": None}
        return Source(spec, FILE_KIND, f"table file {path.name}", lambda o: _table_docs(f"file:{path.name}", o), (), defaults)
    raise FileNotFoundError(f"{spec!r} is neither a registered source, nor an existing folder, nor a "
                            f"{'/'.join(TABLE_SUFFIXES)} file, nor hf:owner/name")


def _folder_docs(path: Path, opts: Mapping[str, Any]) -> list[Document]:
    files = sorted(p for p in Path(opts["path"]).rglob(opts["pattern"]) if p.is_file())
    if not files:
        raise FileNotFoundError(f"{opts['path']} holds no {opts['pattern']} file: put one document per file there")
    label = f"file:{path.name}"
    docs = []
    for p in files:
        text, replaced = decode_bytes(p.read_bytes())
        meta: dict[str, Any] = {"file": str(p.relative_to(opts["path"]))}
        if replaced:
            meta["decode_replacements"] = replaced
        docs.append(make_document(text, label, None, meta))
    return docs


def _table_docs(label: str, opts: Mapping[str, Any]) -> Iterator[Document]:
    # a generator: a table file or hub dataset streams (Source.load makes the list if wanted)
    text_col, topic_col = opts["text_column"], opts["topic_column"]
    for i, row in enumerate(iter_rows(opts["path"], opts["split"], opts["name"], opts["revision"], opts["max_rows"])):
        if i == 0:
            require_columns(row, [text_col] + ([topic_col] if topic_col else []), opts["path"], label)
        text = row[text_col]
        if text:
            topic = str(row[topic_col]) if topic_col and row.get(topic_col) is not None else None
            yield make_document(str(text), label, topic, {"row": i})
