"""``DocumentTable``: an immutable ``Sequence[Document]`` kept on disk, not in Python lists.

A split of the paper profile holds up to a million OpenWebText documents (~5 GB of text);
as ``Document`` objects that is the text twice over plus ~1 KB of Python objects each. A
table is an Arrow IPC file (Feather v2, uncompressed) with the columns ``doc_id``, ``text``,
``source``, ``topic`` and ``meta`` (a JSON string), memory-mapped: opening it parses
nothing, and a ``Document`` is built only for the rows a caller asks for.

``write_table`` takes an iterator of Documents and writes them one record batch at a time
(atomically: a temporary file renamed into place), so a split is never a Python list while
it is written either.
"""

from __future__ import annotations

import bisect
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ssae_utils.data.documents import Document
from ssae_utils.io import atomic_path

__all__ = ["DocumentTable", "SCHEMA", "write_table", "TableWriter"]

SCHEMA = pa.schema([
    ("doc_id", pa.string()),
    # large_string: one batch of very long documents may pass 2 GiB of text
    ("text", pa.large_string()),
    ("source", pa.string()),
    ("topic", pa.string()),
    ("meta", pa.string()),
])
BATCH_ROWS = 1024  # rows per record batch (written) and per Document batch (iterated)


def _meta_json(meta: dict[str, Any]) -> str:
    # the same serialisation as the JSONL cache, so both storages round-trip meta identically
    return json.dumps(meta, ensure_ascii=False)


class TableWriter:
    """Append Documents to an Arrow IPC file, one record batch per ``batch_rows`` of them."""

    def __init__(self, sink: str | os.PathLike, batch_rows: int = BATCH_ROWS):
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        self.batch_rows = batch_rows
        self.n = 0
        self._writer = pa.ipc.new_file(str(sink), SCHEMA)  # uncompressed: memory-mappable as is
        self._rows: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}

    def write(self, doc: Document) -> None:
        rows = self._rows
        rows["doc_id"].append(doc.doc_id)
        rows["text"].append(doc.text)
        rows["source"].append(doc.source)
        rows["topic"].append(doc.topic)
        rows["meta"].append(_meta_json(doc.meta))
        if len(rows["doc_id"]) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._rows["doc_id"]:
            return
        batch = pa.record_batch([pa.array(self._rows[n], type=SCHEMA.field(n).type) for n in SCHEMA.names],
                                schema=SCHEMA)
        self._writer.write_batch(batch)
        self.n += batch.num_rows
        self._rows = {name: [] for name in SCHEMA.names}

    def close(self) -> int:
        self._flush()
        self._writer.close()
        return self.n


def write_table(docs: Iterable[Document], path: str | os.PathLike, batch_rows: int = BATCH_ROWS) -> int:
    """Write ``docs`` (any iterable, consumed once) as a table at ``path``, atomically.
    Returns the number of documents."""
    with atomic_path(path) as tmp:
        writer = TableWriter(tmp, batch_rows)
        try:
            for doc in docs:
                writer.write(doc)
        finally:
            n = writer.close()
    return n


def _documents(batch: pa.RecordBatch | pa.Table) -> list[Document]:
    cols = [batch.column(n).to_pylist() for n in SCHEMA.names]
    return [Document(doc_id, text, source, topic, json.loads(meta) if meta else {})
            for doc_id, text, source, topic, meta in zip(*cols)]


class DocumentTable(Sequence[Document]):
    """A memory-mapped table of Documents: ``len``, ``t[i]``, ``t[a:b]`` (a list), iteration
    (batch by batch), ``texts(start, stop)`` / ``iter_text_batches(n)`` (no Documents built),
    ``doc_ids``. Equal to any sequence of the same Documents in the same order."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"document table {self.path} does not exist")
        try:
            # read_all on a memory map is zero-copy: the table's buffers point into the file
            self._table = pa.ipc.open_file(pa.memory_map(str(self.path), "r")).read_all()
        except pa.ArrowInvalid as err:
            raise ValueError(f"{self.path} is not an Arrow IPC document table ({err}); delete it and rebuild.") from err
        if self._table.schema.names != SCHEMA.names:
            raise ValueError(f"{self.path} has columns {self._table.schema.names}, expected {SCHEMA.names}; "
                             f"delete it and rebuild.")
        self._batches = self._table.to_batches()
        self._starts = [0]
        for b in self._batches:
            self._starts.append(self._starts[-1] + b.num_rows)

    @classmethod
    def write(cls, docs: Iterable[Document], path: str | os.PathLike, batch_rows: int = BATCH_ROWS) -> "DocumentTable":
        write_table(docs, path, batch_rows)
        return cls(path)

    # --- Sequence
    def __len__(self) -> int:
        return self._table.num_rows

    @overload
    def __getitem__(self, index: int) -> Document: ...
    @overload
    def __getitem__(self, index: slice) -> list[Document]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return _documents(self._table.slice(start, max(stop - start, 0)))
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"document index {index} out of range for a table of {len(self)}")
        b = bisect.bisect_right(self._starts, i) - 1
        return _documents(self._batches[b].slice(i - self._starts[b], 1))[0]

    def __iter__(self) -> Iterator[Document]:
        for batch in self.iter_batches():
            yield from batch

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DocumentTable) and other.path == self.path:
            return True
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are unhashable

    def __repr__(self) -> str:
        return f"DocumentTable({str(self.path)!r}, {len(self)} documents)"

    # --- batch access, no per-row Python objects beyond the batch
    def iter_batches(self, rows: int = BATCH_ROWS) -> Iterator[list[Document]]:
        for start in range(0, len(self), rows):
            yield _documents(self._table.slice(start, rows))

    def texts(self, start: int = 0, stop: int | None = None) -> list[str]:
        start, stop, _ = slice(start, stop).indices(len(self))
        return self._table.column("text").slice(start, max(stop - start, 0)).to_pylist()

    def iter_text_batches(self, rows: int = BATCH_ROWS) -> Iterator[list[str]]:
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        for start in range(0, len(self), rows):
            yield self.texts(start, start + rows)

    @property
    def doc_ids(self) -> list[str]:
        return self._table.column("doc_id").to_pylist()

    def column(self, name: str) -> pa.ChunkedArray:
        """One column as Arrow data (zero-copy), e.g. ``pc.utf8_length(t.column("text"))``."""
        return self._table.column(name)

    def where_meta_has(self, key: str) -> list[Document]:
        """Documents whose meta has ``key`` (a substring filter on the JSON, then an exact
        check), without building a Document for every row."""
        needle = json.dumps(key, ensure_ascii=False) + ":"
        mask = pc.match_substring(self._table.column("meta"), needle)
        return [d for d in _documents(self._table.filter(mask)) if key in d.meta]

    def take(self, indices: Sequence[int]) -> list[Document]:
        """The Documents at ``indices``, in that order. Rows are taken record batch by record
        batch: ``Table.take`` would first concatenate the whole text column into memory."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            return []
        idx = np.where(idx < 0, idx + len(self), idx)
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"document index out of range for a table of {len(self)}")
        starts = np.asarray(self._starts, dtype=np.int64)
        which = np.searchsorted(starts, idx, side="right") - 1
        out: list[Document | None] = [None] * idx.size
        for b in np.unique(which).tolist():
            positions = np.nonzero(which == b)[0]
            rows = self._batches[b].take(pa.array(idx[positions] - starts[b]))
            for pos, doc in zip(positions.tolist(), _documents(rows)):
                out[pos] = doc
        return out  # type: ignore[return-value]


def is_table(docs: Any) -> bool:
    return isinstance(docs, DocumentTable)
