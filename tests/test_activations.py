from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ssae_utils.activations import ActivationStore, chunk_token_ids, document_hash
from ssae_utils.activations import ActivationConfig
from tests.fakes import CausalToyModel

DOCS = [" ".join(f"w{(i * 7 + j) % 50}" for j in range(10 + 9 * i)) for i in range(12)]


def make_store(tmp_path, model=None, **kw):
    cfg = ActivationConfig(batch_size=3, shard_contexts=kw.pop("shard_contexts", 5))
    model = model or CausalToyModel()
    model.context_length = 8
    return ActivationStore(model, cfg, root=tmp_path / "acts")


def test_chunking_prefixes_bos_and_keeps_every_token():
    pieces = chunk_token_ids(list(range(10, 30)), bos_id=1, context_length=8, min_tokens=1)
    assert all(p[0] == 1 and len(p) <= 8 for p in pieces)
    assert [t for p in pieces for t in p[1:]] == list(range(10, 30))


def test_short_tail_pieces_are_dropped_but_short_documents_kept():
    pieces = chunk_token_ids(list(range(9)), bos_id=1, context_length=8, min_tokens=4)
    assert [len(p) for p in pieces] == [8]  # 7 tokens + BOS; the 2-token tail is dropped
    assert chunk_token_ids([5, 6], 1, 8, min_tokens=4) == [[1, 5, 6]]


def test_cached_activations_equal_a_direct_model_run(tmp_path):
    model = CausalToyModel()
    store = make_store(tmp_path, model)
    got = store.load(DOCS[:3], exclude_bos=False)
    tokens, lengths = store.contexts(DOCS[:3])
    direct = model.resid_at_hook(tokens)
    expected = torch.cat([direct[i, : lengths[i]] for i in range(len(lengths))])
    torch.testing.assert_close(got.acts, expected)
    assert (got.positions == 0).sum() == len(lengths)
    assert len(got.without_bos()) == len(got) - len(lengths)


def test_second_request_reuses_documents_and_computes_only_new_ones(tmp_path):
    model = CausalToyModel()
    store = make_store(tmp_path, model)
    store.load(DOCS[:6])
    seen = model.tokens_seen
    again = store.load(DOCS[:6])
    assert model.tokens_seen == seen  # nothing recomputed
    store.load(DOCS[4:9])  # overlaps 2 documents
    new_tokens = sum(len(p) for d in DOCS[6:9] for p in chunk_token_ids(model.tokenizer.encode(d), 1, 8))
    assert model.tokens_seen - seen <= new_tokens + 3 * 8  # padding of at most one batch
    assert len(again) > 0


def test_interrupted_run_resumes_without_recomputing_finished_shards(tmp_path):
    model = CausalToyModel()
    store = make_store(tmp_path, model)

    class Stop(Exception):
        pass

    def stop_after_first(key):
        raise Stop(key)

    with pytest.raises(Stop) as info:
        store.ensure(DOCS, on_shard_written=stop_after_first)
    first_shard = info.value.args[0]
    mtime = (store.root / f"{first_shard}.acts.npy").stat().st_mtime_ns
    tokens_first_run = model.tokens_seen

    fresh = CausalToyModel()
    resumed = make_store(tmp_path, fresh)
    resumed.ensure(DOCS)
    assert (store.root / f"{first_shard}.acts.npy").stat().st_mtime_ns == mtime
    total_model = CausalToyModel()
    make_store(tmp_path / "full", total_model).ensure(DOCS)
    assert fresh.tokens_seen == total_model.tokens_seen - tokens_first_run
    torch.testing.assert_close(resumed.load(DOCS).acts, make_store(tmp_path / "full").load(DOCS).acts)


def test_killed_process_resumes(tmp_path):
    """SIGKILL a real caching process mid-way; the rerun finishes and matches a clean run."""
    script = textwrap.dedent(
        f"""
        import os, sys, time
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).resolve().parents[1])!r})
        from tests.fakes import CausalToyModel
        from tests.test_activations import DOCS, make_store
        from pathlib import Path
        model = CausalToyModel()
        slow = model.resid_at_hook
        def resid(tokens):
            time.sleep(0.05)
            return slow(tokens)
        model.resid_at_hook = resid
        def after(key):
            print("SHARD", key, flush=True)
            time.sleep(0.3)
        make_store(Path({str(tmp_path)!r}), model).ensure(DOCS, on_shard_written=after)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert first.startswith("SHARD"), first
    proc.kill()
    proc.wait()
    store = make_store(tmp_path)
    done_before = len(list(store.root.glob("*.json")))
    assert 1 <= done_before < 4
    store.ensure(DOCS)
    torch.testing.assert_close(store.load(DOCS).acts, make_store(tmp_path / "clean").load(DOCS).acts)


def test_truncated_shard_is_detected_and_recomputed(tmp_path, caplog):
    store = make_store(tmp_path)
    reference = store.load(DOCS[:4]).acts.clone()
    shard = next(store.root.glob("*.acts.npy"))
    shard.write_bytes(shard.read_bytes()[:-40])
    with caplog.at_level("WARNING"):
        again = store.load(DOCS[:4]).acts
    assert "corrupt activation shard" in caplog.text
    torch.testing.assert_close(again, reference)


def test_checksum_mismatch_is_detected_when_verifying(tmp_path, caplog):
    store = make_store(tmp_path)
    reference = store.load(DOCS[:4]).acts.clone()
    shard = next(store.root.glob("*.acts.npy"))
    arr = np.load(shard)
    arr[0, 0] += 1.0
    np.save(shard, arr)
    with caplog.at_level("WARNING"):
        store.ensure(DOCS[:4], verify_checksum=True)
    assert "checksum" in caplog.text
    torch.testing.assert_close(store.load(DOCS[:4]).acts, reference)


def test_store_key_depends_on_model_and_layout(tmp_path):
    a = make_store(tmp_path)
    other = CausalToyModel()
    other.fingerprint = "different-weights"
    other.context_length = 8
    b = ActivationStore(other, a.cfg, root=tmp_path / "b")
    assert a.key != b.key


def test_bad_inputs_give_clear_errors(tmp_path):
    store = make_store(tmp_path)
    with pytest.raises(ValueError, match="empty"):
        store.ensure([])
    with pytest.raises(TypeError, match="must be str"):
        store.ensure([b"bytes are not text"])  # type: ignore[list-item]

    class WrongWidth(CausalToyModel):
        def resid_at_hook(self, tokens):
            return super().resid_at_hook(tokens)[..., :3]

    with pytest.raises(RuntimeError, match="expected"):
        make_store(tmp_path / "w", WrongWidth()).ensure(DOCS[:2])

    class NaNModel(CausalToyModel):
        def resid_at_hook(self, tokens):
            return super().resid_at_hook(tokens) * float("nan")

    with pytest.raises(FloatingPointError):
        make_store(tmp_path / "n", NaNModel()).ensure(DOCS[:2])


def test_document_hash_is_content_based():
    assert document_hash("a b") == document_hash("a b") != document_hash("a  b")


def test_document_prefixes_are_cached_separately_and_equal_the_full_run_prefix(tmp_path):
    model = CausalToyModel()
    store = make_store(tmp_path, model)
    full = store.load(DOCS[3:6])
    seen = model.tokens_seen
    capped = store.load(DOCS[3:6], max_doc_tokens=5)
    assert model.tokens_seen > seen                       # a prefix is its own cached item
    counts = torch.bincount(capped.doc_index, minlength=3)
    assert counts.tolist() == [5, 5, 5]                   # BOS excluded, 5 tokens per document
    for i in range(3):
        # causal model: the prefix's activations are the full document's first tokens
        torch.testing.assert_close(capped.acts[capped.doc_index == i], full.acts[full.doc_index == i][:5])
    seen = model.tokens_seen
    store.load(DOCS[3:6], max_doc_tokens=5)
    assert model.tokens_seen == seen                      # and reused on the next request
    with pytest.raises(ValueError, match="max_doc_tokens"):
        store.load(DOCS[:1], max_doc_tokens=0)


def test_sharded_rows_match_load_row_for_row_without_loading_everything(tmp_path):
    store = make_store(tmp_path, shard_contexts=4)    # several shards
    texts = [DOCS[7], DOCS[2], DOCS[9], DOCS[2], DOCS[0]]   # repeats and shard order mixed
    for doc in (DOCS[0], DOCS[9], DOCS[2]):   # one request each: one shard each at least
        store.load([doc])
    loaded = store.load(texts)
    rows = store.rows(texts)
    assert rows.shape == tuple(loaded.acts.shape) and len(set(rows.shard.tolist())) > 1
    assert torch.equal(rows.doc_index, loaded.doc_index)
    idx = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))[:40]
    torch.testing.assert_close(rows[idx], loaded.acts[idx])
    torch.testing.assert_close(rows.norms(chunk_rows=7), loaded.acts.norm(dim=-1))
    keep = loaded.acts.norm(dim=-1) < loaded.acts.norm(dim=-1).median()
    sub = rows.subset(keep)
    torch.testing.assert_close(sub[torch.arange(len(sub))], loaded.acts[keep])
    with_bos = store.rows(texts, exclude_bos=False)
    torch.testing.assert_close(with_bos[torch.arange(len(with_bos))], store.load(texts, exclude_bos=False).acts)


@pytest.mark.parametrize("chunk_contexts", [1, 4, 1000])
def test_streamed_chunks_hold_whole_documents_and_equal_load(tmp_path, chunk_contexts):
    store = make_store(tmp_path)
    want = store.load(DOCS, max_doc_tokens=20)
    chunks = list(store.stream(DOCS, max_doc_tokens=20, chunk_contexts=chunk_contexts))
    got_docs = [set(c.doc_index.tolist()) for c in chunks]
    for a, b in zip(got_docs, got_docs[1:]):     # a document never straddles two chunks
        assert max(a) < min(b)
    for field in ("acts", "token_ids", "positions", "doc_index"):
        torch.testing.assert_close(torch.cat([getattr(c, field) for c in chunks]), getattr(want, field), atol=1e-5, rtol=1e-5)
    expected_chunks = {1: len(DOCS), 1000: 1}.get(chunk_contexts)
    assert expected_chunks is None or len(chunks) == expected_chunks


def test_streaming_writes_nothing_to_the_cache(tmp_path):
    store = make_store(tmp_path)
    list(store.stream(DOCS[:4]))
    assert not list((tmp_path / "acts").rglob("*.npy"))
    with pytest.raises(ValueError, match="empty"):
        next(store.stream([]))
