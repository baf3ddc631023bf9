"""DocumentTable: a memory-mapped Arrow table that behaves like the list it was written from."""

import json

import pyarrow as pa
import pytest

from ssae_utils.data.documents import Document, make_document
from ssae_utils.data.table import SCHEMA, DocumentTable, write_table


def docs(n=2_500):
    return [make_document(f"document {i} says h\u00e9llo {'word ' * (i % 7)}", f"src{i % 3}",
                          None if i % 2 else "news",
                          {} if i % 3 == 0 else {"row": i, "nested": {"a": [1, 2.5, None]}, "flag": i % 5 == 0})
            for i in range(n)]


@pytest.fixture
def written(tmp_path):
    original = docs()
    return original, DocumentTable.write(iter(original), tmp_path / "t.arrow", batch_rows=1000)


def test_table_equals_the_list_it_was_written_from(written):
    original, table = written
    assert len(table) == len(original)
    assert table == original and original == list(table)
    assert table[0] == original[0] and table[1999] == original[1999] and table[-1] == original[-1]
    assert table[995:1010] == original[995:1010]            # a slice across record batches
    assert table[::250] == original[::250] and table[10:5] == []
    assert table.doc_ids == [d.doc_id for d in original]
    assert table.texts(998, 1003) == [d.text for d in original[998:1003]]
    assert table.texts() == [d.text for d in original]
    batches = list(table.iter_text_batches(700))
    assert [len(b) for b in batches] == [700, 700, 700, 400] and sum(batches, []) == table.texts()
    assert [d for b in table.iter_batches(999) for d in b] == original


def test_table_differs_from_a_changed_list(written):
    original, table = written
    changed = list(original)
    changed[1500] = changed[1500].with_meta(row=-1)
    assert table != changed
    assert table != original[:-1]
    assert table != "not documents"


def test_index_errors_and_meta_filter(written):
    original, table = written
    with pytest.raises(IndexError):
        table[len(original)]
    with pytest.raises(IndexError):
        table[-len(original) - 1]
    assert table.where_meta_has("flag") == [d for d in original if "flag" in d.meta]
    # a key named only inside a nested value is not a hit
    assert table.where_meta_has("a") == []
    assert table.take([2400, 5, 2, 2000, -1]) == [original[2400], original[5], original[2], original[2000], original[-1]]


def test_file_is_plain_uncompressed_arrow_ipc(written):
    _, table = written
    with pa.memory_map(str(table.path)) as source:
        reader = pa.ipc.open_file(source)
        assert reader.schema == SCHEMA
        assert reader.num_record_batches == 3                  # written incrementally, 1000 rows a batch
        first = reader.get_batch(0)
    meta = json.loads(first.column("meta")[1].as_py())
    assert meta == {"row": 1, "nested": {"a": [1, 2.5, None]}, "flag": False}


def test_empty_table(tmp_path):
    table = DocumentTable.write([], tmp_path / "empty.arrow")
    assert len(table) == 0 and list(table) == [] and table == [] and table.texts() == []


def test_a_failed_write_leaves_no_table(tmp_path):
    def broken():
        yield Document("a", "text", "s")
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        write_table(broken(), tmp_path / "t.arrow")
    assert list(tmp_path.iterdir()) == []                    # neither the table nor its temporary file


def test_not_a_table(tmp_path):
    path = tmp_path / "x.arrow"
    path.write_text("not arrow")
    with pytest.raises(ValueError, match="not an Arrow IPC document table"):
        DocumentTable(path)
    with pytest.raises(FileNotFoundError):
        DocumentTable(tmp_path / "missing.arrow")
