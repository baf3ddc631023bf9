from __future__ import annotations

import json
import logging

import pytest

import ssae_utils.token_counts as token_counts_module
from ssae_utils.token_counts import token_counts
from tests.fakes import WordTokenizer


class CountingTokenizer(WordTokenizer):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def encode(self, text, add_special_tokens=False):
        self.calls += 1
        return super().encode(text, add_special_tokens)


def test_counts_are_cached_per_document_and_shared_across_requests(tmp_cache):
    tok = CountingTokenizer()
    assert token_counts(["a b c", "d e"], tok, "toy") == [3, 2]
    assert token_counts(["d e", "f g h i"], tok, "toy") == [2, 4]  # only the new text is tokenized
    assert tok.calls == 3
    assert token_counts(["a b c"], tok, "other-tokenizer") == [3] and tok.calls == 4


def test_damaged_cache_is_recounted(tmp_cache):
    tok = CountingTokenizer()
    token_counts(["a b"], tok, "toy")
    for path in (tmp_cache / "cache" / "token_counts").glob("*.json"):
        path.write_text("{broken")
    assert token_counts(["a b"], tok, "toy") == [2]


def _only_cache_file(tmp_cache):
    (path,) = (tmp_cache / "cache" / "token_counts").glob("*.json")
    return path


@pytest.mark.parametrize("edit", ["changed digit", "negative", "float", "string", "bool", "a list", "no counts"])
def test_valid_json_with_wrong_counts_is_recounted(tmp_cache, caplog, edit):
    tok = CountingTokenizer()
    assert token_counts(["a b c", "d e"], tok, "toy") == [3, 2]
    path = _only_cache_file(tmp_cache)
    data = json.loads(path.read_text())
    first = next(iter(data["counts"]))
    bad = {"changed digit": 7, "negative": -3, "float": 3.0, "string": "3", "bool": True}
    if edit in bad:
        data["counts"][first] = bad[edit]
        if edit == "changed digit":
            path.write_bytes(path.read_bytes().replace(b":3,", b":7,", 1))     # in place, digest untouched
            assert json.loads(path.read_text())["counts"] == data["counts"]
        else:                                  # a consistent digest: only the shape check can catch it
            token_counts_module._write(path, data["counts"])
    else:
        path.write_text(json.dumps(list(data["counts"].values()) if edit == "a list" else
                                   {k: v for k, v in data.items() if k != "counts"}))
    caplog.set_level(logging.WARNING)
    assert token_counts(["a b c", "d e"], tok, "toy") == [3, 2]
    assert tok.calls == 4 and f"damaged token-count cache {path}" in caplog.text


def test_a_legacy_plain_map_is_read_then_upgraded(tmp_cache):
    tok = CountingTokenizer()
    token_counts(["a b c"], tok, "toy")
    path = _only_cache_file(tmp_cache)
    path.write_text(json.dumps(json.loads(path.read_text())["counts"]))      # format 1
    assert token_counts(["a b c"], tok, "toy") == [3] and tok.calls == 1     # used as it is
    assert token_counts(["d e"], tok, "toy") == [2]
    assert json.loads(path.read_text())["format"] == 2
    path.write_text(json.dumps({"x": -1}))                                  # a bad plain map
    assert token_counts(["a b c"], tok, "toy") == [3] and tok.calls == 3


def test_a_fast_tokenizer_counts_in_batches_exactly_as_one_text_at_a_time():
    from ssae_utils.activations import encode
    from ssae_utils.model.config import ModelConfig
    from ssae_utils.model.registry import load_model
    from ssae_utils.token_counts import count_tokens

    tok = load_model(ModelConfig.smoke()).tokenizer
    assert tok.is_fast
    texts = ["", "Planck's constant h = 6.626e-34 J s.", "  two  spaces\nand a newline", "émigré naïve café " * 40,
             "<bos> is not special here"] * 3
    assert count_tokens(texts, tok) == [len(encode(tok, t)) for t in texts]


def test_a_document_table_is_counted_batch_by_batch_like_the_list(tmp_cache, tmp_path):
    from ssae_utils.data.documents import make_document
    from ssae_utils.data.table import DocumentTable
    from ssae_utils.token_counts import document_token_counts, token_counts_batched

    docs = [make_document(" ".join(["w"] * (1 + i % 9)) + f" d{i}", "s") for i in range(50)]
    docs += docs[:5]                                               # repeated texts count once
    table = DocumentTable.write(docs, tmp_path / "t.arrow", batch_rows=7)
    tok = CountingTokenizer()
    expected = [len(d.text.split()) for d in docs]
    assert document_token_counts(table, tok, "toy") == expected
    assert tok.calls == 50                                         # each distinct text once
    assert document_token_counts(docs, tok, "toy") == expected and tok.calls == 50   # shared cache
    assert token_counts_batched(table.iter_text_batches(3), tok, "toy") == expected and tok.calls == 50
