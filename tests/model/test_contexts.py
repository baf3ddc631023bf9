"""Documents -> BOS-prefixed fixed-length contexts."""

from __future__ import annotations

import pytest
import torch

from ssae_utils.model.backends.toy_text import toy_corpus, toy_tokenizer
from ssae_utils.model.contexts import pack_contexts

TOK = toy_tokenizer(512)
BOS, EOS = 2, 1


def _docs(n=20):
    return toy_corpus(3 * n, seed=7)


def test_stream_packing_is_lossless_up_to_the_tail():
    docs = _docs()
    ctx = pack_contexts(TOK, docs, 16, BOS, EOS)
    assert ctx.tokens.dtype == torch.long and ctx.tokens.shape[1] == 16
    assert (ctx.tokens[:, 0] == BOS).all() and (ctx.doc_ids[:, 0] == -1).all()
    stream = []
    for doc in docs:
        stream += TOK.encode(doc, add_special_tokens=False) + [EOS]
    body = ctx.tokens[:, 1:].flatten().tolist()
    assert body == stream[: len(body)] and len(stream) - len(body) < 15
    assert not (ctx.tokens[:, 1:] == BOS).any()  # no BOS inside a context


def test_doc_ids_point_at_each_tokens_document():
    docs = _docs(5)
    ctx = pack_contexts(TOK, docs, 12, BOS, EOS)
    for row, ids in zip(ctx.tokens, ctx.doc_ids):
        for token, doc in zip(row.tolist(), ids.tolist()):
            if doc >= 0:
                assert token != EOS and token != BOS
            else:
                assert token in (EOS, BOS)
    assert ctx.doc_ids.max() <= len(docs) - 1


def test_document_mode_keeps_documents_apart():
    docs = _docs(6)
    ctx = pack_contexts(TOK, docs, 10, BOS, EOS, mode="document")
    assert (ctx.tokens[:, 0] == BOS).all()
    assert (ctx.doc_ids[:, 1:] == ctx.doc_ids[:, 1:2]).all()  # one document per context
    first = TOK.encode(docs[0], add_special_tokens=False)
    assert ctx.tokens[0, 1:].tolist() == first[:9]


def test_too_little_text_gives_an_empty_tensor_of_the_right_width():
    ctx = pack_contexts(TOK, ["Hi."], 64, BOS, EOS)
    assert ctx.tokens.shape == (0, 64) and len(ctx) == 0


@pytest.mark.parametrize(
    "texts, length, mode, error, match",
    [
        ("one string", 8, "stream", TypeError, "not a single string"),
        ([1, 2, 3], 8, "stream", TypeError, "item 0 is int"),
        (["ok", b"bytes"], 8, "stream", TypeError, "item 1 is bytes"),
        (None, 8, "stream", TypeError, "list of str"),
        (["ok"], 1, "stream", ValueError, "context_length"),
        (["ok"], 8.0, "stream", ValueError, "context_length"),
        (["ok"], 8, "sentences", ValueError, "mode"),
    ],
)
def test_bad_inputs_raise_clear_errors(texts, length, mode, error, match):
    with pytest.raises(error, match=match):
        pack_contexts(TOK, texts, length, BOS, EOS, mode=mode)


def test_toy_tokenizer_is_deterministic_and_adds_bos():
    again = toy_tokenizer(512)
    assert TOK.backend_tokenizer.to_str() == again.backend_tokenizer.to_str()
    assert TOK("The cat.").input_ids[0] == BOS and TOK.bos_token_id == BOS
    assert TOK.decode(TOK.encode("Ωmega ünïcode", add_special_tokens=False)) == "Ωmega ünïcode"
