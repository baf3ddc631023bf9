import json

import pytest

from ssae_utils.data.documents import (
    Document,
    decode_bytes,
    document_from_bytes,
    load_jsonl,
    make_doc_id,
    make_document,
    normalize_text,
    save_jsonl,
)


def test_doc_id_is_deterministic_and_depends_on_source_and_text():
    a = make_document("Hello  world\r\n", "news")
    b = make_document("Hello  world", "news")
    assert a.doc_id == b.doc_id == make_doc_id("news", "Hello  world")
    assert a.doc_id.startswith("news:")
    assert make_document("Hello  world", "wiki").doc_id != a.doc_id
    assert make_document("Hello world", "news").doc_id != a.doc_id


def test_normalize_text_is_light():
    raw = "  Title \r\n\r\n\r\n\r\nBody line one   \nline two\t\n\n\n"
    assert normalize_text(raw) == "Title\n\nBody line one\nline two"
    # NFC: a decomposed e + combining acute becomes one code point
    assert normalize_text("e\u0301") == "\u00e9"


def test_jsonl_roundtrip_keeps_every_field(tmp_path):
    docs = [make_document("Ünïcode — text ✓", "s1", "topic", {"toxic": 1, "nested": {"a": [1, 2]}}),
            make_document("second", "s2")]
    path = tmp_path / "docs.jsonl"
    assert save_jsonl(docs, path) == 2
    back = load_jsonl(path)
    assert back == docs
    assert [d.meta for d in back] == [d.meta for d in docs]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind


def test_load_jsonl_reports_a_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(make_document("ok", "s").to_dict()) + "\n{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_jsonl(path)


def test_non_utf8_bytes_are_replaced_and_counted(caplog):
    raw = "price: £5".encode("latin-1")  # 0xa3 is not valid UTF-8
    text, n_bad = decode_bytes(raw, "file.txt")
    assert text == "price: \ufffd5" and n_bad == 1
    assert "not valid UTF-8" in caplog.text
    doc = document_from_bytes(raw, "bbc", what="file.txt")
    assert doc.meta["decode_replacements"] == 1
    clean = document_from_bytes("price: £5".encode("utf-8"), "bbc")
    assert "decode_replacements" not in clean.meta and clean.text == "price: £5"


def test_document_is_hashable_and_with_meta_copies():
    doc = make_document("text", "s", meta={"a": 1})
    other = doc.with_meta(b=2)
    assert {doc, other} and other.meta == {"a": 1, "b": 2} and doc.meta == {"a": 1}
    assert other.doc_id == doc.doc_id
    assert Document.from_dict(other.to_dict()) == other


def test_chunking_respects_paragraphs_and_bounds():
    from ssae_utils.data.chunking import chunk_document, chunk_text

    paras = [" ".join(f"w{i}_{j}" for j in range(40)) for i in range(10)]   # 10 x 40 words
    pieces = chunk_text("\n\n".join(paras), max_words=100)
    assert [len(p.split()) for p in pieces] == [80, 80, 80, 80, 80]
    assert all(p.split("\n\n")[0] in paras for p in pieces)                # whole paragraphs
    run_on = " ".join(["word"] * 250) + "."                                  # one long sentence
    assert [len(p.split()) for p in chunk_text(run_on, 100)] == [100, 100, 50]
    assert [len(p.split()) for p in chunk_text(" ".join(["w"] * 210), 100)] == [100, 110]
    doc = make_document("\n\n".join(paras), "src", meta={"k": 1})
    out = chunk_document(doc, 100)
    assert all(d.meta["parent_id"] == doc.doc_id and d.meta["k"] == 1 for d in out)
    assert chunk_document(make_document("short text", "src"), 100)[0].doc_id.startswith("src:")
