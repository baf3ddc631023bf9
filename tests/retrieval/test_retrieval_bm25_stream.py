"""Streaming BM25 equals rank-bm25's BM25Okapi (1e-9 relative) and does not depend on the
batch size; the hashed document-frequency table is exact."""

from __future__ import annotations

import numpy as np
import pytest

from ssae_utils.retrieval import (RetrievalConfig, StreamingBM25, bm25_from_config, build_bm25,
                                  query_scores, query_scores_many, token_batches, tokenize_all)
from ssae_utils.retrieval.bm25_stream import list_batches
from ssae_utils.retrieval.doc_freq import HashedDocFreq

RTOL = 1e-9


def assert_close(a, b):
    b = np.asarray(b, dtype=np.float64).copy()
    # rank-bm25 scores an empty document 0/0 = NaN when b = 1 (|d| = 0 makes the length norm
    # 0); we score it 0, as the sparse backend does
    nan = np.isnan(b)
    assert np.all(np.asarray(a)[nan] == 0)
    b[nan] = 0.0
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12 * max(1.0, float(np.abs(b).max(initial=0))))


# "energy" is in 5 of 8 documents (negative raw idf -> epsilon floor), two documents are empty,
# "photon" repeats inside documents
FIXTURE = [["energy", "photon", "photon"], ["energy", "quark"], [], ["energy", "photon", "field"],
           ["football", "match"], ["energy", "energy", "match"], [], ["energy", "quark", "quark", "gluon"]]


def _zipf_corpus(n_docs=300, vocab_size=400, seed=0):
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(vocab_size)]
    p = 1.0 / np.arange(1, vocab_size + 1)
    p /= p.sum()
    corpus = [list(rng.choice(vocab, size=rng.integers(0, 50), p=p)) for _ in range(n_docs)]
    return corpus, vocab, p, rng


@pytest.mark.parametrize("k1,b,eps", [(1.5, 0.75, 0.25), (0.9, 0.4, 0.5), (2.0, 1.0, 0.0)])
def test_equals_rank_bm25_on_fixture_with_negative_idf_and_empty_docs(k1, b, eps, tmp_path):
    ref = build_bm25(FIXTURE, "rank_bm25", k1=k1, b=b, epsilon=eps)
    assert ref.model.idf["energy"] == pytest.approx(eps * ref.model.average_idf)   # the floor is in play
    stream = StreamingBM25(FIXTURE, k1=k1, b=b, epsilon=eps, batch_docs=3, spill_dir=tmp_path)
    assert stream.n_terms == len(ref.model.idf)
    assert stream.average_idf == pytest.approx(ref.model.average_idf, rel=1e-12)
    for q in (["energy"], ["energy", "energy", "photon"], ["photon", "photon", "quark", "nope"],
              ["nope"], [], [t for d in FIXTURE for t in d]):
        assert_close(stream.score(q), ref.score(q))


def test_equals_rank_bm25_random_corpus_and_batch_size_invariant(tmp_path):
    corpus, vocab, p, rng = _zipf_corpus()
    ref = build_bm25(corpus, "rank_bm25")
    queries = [list(rng.choice(vocab, size=30, p=p)) + ["w0", "w0", "unseen"] for _ in range(4)]
    outs = {}
    for batch_docs in (1, 7, 64, 300, 10_000):
        index = StreamingBM25(batches=list_batches(corpus, batch_docs), spill_dir=tmp_path, partitions=4)
        assert abs(index.average_idf - ref.model.average_idf) < 1e-12
        outs[batch_docs] = index.score_many(queries)
        for i, q in enumerate(queries):
            assert_close(outs[batch_docs][i], ref.score(q))
    for batch_docs, out in outs.items():          # bit-identical whatever the batching
        np.testing.assert_array_equal(out, outs[1], err_msg=f"batch_docs={batch_docs}")


def test_query_modes_equal_the_sparse_backend(tmp_path):
    corpus, vocab, p, rng = _zipf_corpus(seed=1)
    texts = [" ".join(d) if d else "the of" for d in corpus]    # a stopword-only text is an empty document
    seeds = [" ".join(rng.choice(vocab, size=12, p=p)) for _ in range(5)] + ["w3 w3 w3"]
    sparse = build_bm25(tokenize_all(texts), "sparse")
    ref = build_bm25(tokenize_all(texts), "rank_bm25")
    stream = StreamingBM25.from_texts(texts, batch_docs=50, spill_dir=tmp_path)
    for mode in ("concatenated", "per_seed_sum", "per_seed_max"):
        assert_close(query_scores(stream, seeds, mode), query_scores(ref, seeds, mode))
        assert_close(query_scores(stream, seeds, mode), query_scores(sparse, seeds, mode))
    # every (seed set, mode) in one pass: the same scores as one call each
    many = query_scores_many(stream, {"a": seeds, "b": seeds[:2]}, ["concatenated", "per_seed_max"])
    for name, sub in (("a", seeds), ("b", seeds[:2])):
        for mode in ("concatenated", "per_seed_max"):
            np.testing.assert_array_equal(many[name][mode], query_scores(stream, sub, mode))
    passes = []
    counting = StreamingBM25(batches=lambda: (passes.append(1), token_batches(texts, 50)())[1], spill_dir=tmp_path)
    passes.clear()
    query_scores_many(counting, {"a": seeds, "b": seeds[:2]}, ["concatenated", "per_seed_max"])
    assert len(passes) == 1


def test_hashed_doc_freq_is_exact(tmp_path):
    corpus, _, _, _ = _zipf_corpus(seed=2)
    counter = HashedDocFreq(tmp_path, partitions=8)
    for start in range(0, len(corpus), 17):
        counter.add_batch(corpus[start:start + 17])
    counter.finalize(len(corpus))
    exact: dict[str, int] = {}
    for d in corpus:
        for t in set(d):
            exact[t] = exact.get(t, 0) + 1
    assert counter.n_terms == len(exact)
    terms = sorted(exact) + ["never-seen"]
    np.testing.assert_array_equal(counter.lookup(terms), [exact.get(t, 0) for t in terms])
    n = len(corpus)
    idf_sum = sum(np.log(n - f + 0.5) - np.log(f + 0.5) for f in exact.values())
    assert counter.idf_sum == pytest.approx(idf_sum, rel=1e-12)
    counter.close()
    assert not counter.dir.exists()


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="empty corpus"):
        StreamingBM25([], spill_dir=tmp_path)
    with pytest.raises(ValueError, match="every document of the corpus is empty"):
        StreamingBM25([[], []], spill_dir=tmp_path)
    gen = (b for b in [FIXTURE])
    with pytest.raises(TypeError, match="fresh iterable"):
        StreamingBM25(batches=gen, spill_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_docs"):
        token_batches(["a"], 0)
    with pytest.raises(ValueError, match="exactly one"):
        StreamingBM25(FIXTURE, batches=list_batches(FIXTURE), spill_dir=tmp_path)
    # a stream that changes between passes is caught, not silently scored
    state = {"corpus": FIXTURE}
    index = StreamingBM25(batches=lambda: iter([state["corpus"]]), spill_dir=tmp_path)
    state["corpus"] = FIXTURE[::-1]
    with pytest.raises(ValueError, match="changed between passes"):
        index.score(["energy"])
    state["corpus"] = FIXTURE[:-1]
    with pytest.raises(ValueError, match="changed between passes"):
        index.score(["energy"])
    index = StreamingBM25(FIXTURE, spill_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown reduction"):
        index.score_specs([([["energy"]], "mean")])
    with pytest.raises(ValueError, match="unknown BM25 query mode"):
        query_scores(index, ["energy"], "nope")


def test_config_picks_streaming(tmp_cache):
    texts = ["Photons and energy", "energy of the field", "a football match", "energy energy"]
    assert RetrievalConfig.paper().bm25_backend == "streaming"
    assert RetrievalConfig.embedded().bm25_backend == "sparse"        # unchanged defaults
    cfg = RetrievalConfig.smoke(bm25_backend="streaming", bm25_stream_batch_docs=3)
    index = bm25_from_config(cfg, texts)
    assert isinstance(index, StreamingBM25)
    sparse = bm25_from_config(RetrievalConfig.smoke(), texts)
    assert_close(query_scores(index, ["energy photons"]), query_scores(sparse, ["energy photons"]))
    for bad in ({"bm25_stream_batch_docs": 0}, {"bm25_backend": "streamed"}):
        with pytest.raises(ValueError, match="retrieval.bm25"):
            RetrievalConfig.smoke(**bad)
