"""The evaluation cache of stage 03 (``ssae_utils.pipeline.eval_cache``): a second evaluation
of the same SAEs on the same set reads every number from disk, bit for bit; a damaged entry
is computed again; every ingredient of the result is in the key."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from ssae_utils.data.documents import Document
from ssae_utils.integrity import write_checksums
from ssae_utils.paths import cache_dir, cache_root
from ssae_utils.pipeline import eval_cache
from ssae_utils.pipeline import finetune as ft
from tests.fakes import CausalToyModel
from tests.fakes import ContextStore as Store
from tests.sae.test_evaluation import IdentitySAE, ScaleSAE


DOCS = [Document(doc_id=f"d{i}", text="physics " * (i + 1), source="toy") for i in range(4)]


def _saved(name: str, content: str) -> str:
    """A fake saved SAE folder (cache-relative) whose checksums cover ``content``."""
    folder = cache_dir("saes", "toy", name)
    (folder / "weights.bin").write_text(content)
    write_checksums(folder, ["weights.bin"])
    return str(folder.relative_to(cache_root()))


def _fresh_set():
    return ft.eval_set(Store(), DOCS, DOCS[:1], None, "toy")


def _run(sae_ids, data=None, clean=True):
    sums: dict[str, list[float]] = {}
    data = data or _fresh_set()
    out = ft.evaluate(CausalToyModel(), {"id": IdentitySAE(8), "half": ScaleSAE(8)}, data, None, 3, "toy",
                      doc_ce=sums, sae_ids=sae_ids, clean=clean)
    return out, sums, data


@pytest.fixture
def ids(tmp_cache):
    return {"id": eval_cache.sae_identity(_saved("a", "A")), "half": eval_cache.sae_identity(_saved("b", "B"))}


def test_a_second_evaluation_reads_every_number_from_the_cache(ids, monkeypatch):
    first, first_sums, first_set = _run(ids)
    assert len(list((cache_root() / "evals").glob("*.json"))) == 3      # two SAEs + the clean CE

    def no_model(*args, **kwargs):
        raise AssertionError("the model ran although every number is cached")

    monkeypatch.setattr(ft, "spliced_ce_by_document", no_model)
    monkeypatch.setattr(ft, "spliced_ce", no_model)
    again, again_sums, again_set = _run(ids)
    assert again == first and again_sums == first_sums
    assert again_set.clean_ce == first_set.clean_ce and again_set.clean_doc_ce == first_set.clean_doc_ce


def test_the_cache_gives_the_numbers_of_an_uncached_evaluation(ids):
    plain, plain_sums, _ = _run(None)
    assert not (cache_root() / "evals").exists()                         # no ids: nothing cached
    cached, cached_sums, _ = _run(ids)
    reread, reread_sums, _ = _run(ids)
    assert plain == cached == reread and plain_sums == cached_sums == reread_sums


def test_a_damaged_entry_is_computed_again(ids, caplog):
    first, first_sums, _ = _run(ids)
    for i, path in enumerate(sorted((cache_root() / "evals").glob("*.json"))):
        entry = json.loads(path.read_text())
        if "l0" in entry["metrics"]:
            entry["metrics"]["ce"] = float("nan") if i % 2 else "x"
            path.write_text(json.dumps(entry))
        else:
            path.write_text(path.read_text()[:10])                        # truncated
    with caplog.at_level(logging.WARNING):
        again, again_sums, _ = _run(ids)
    assert again == first and again_sums == first_sums
    assert caplog.text.count("evaluating again") == 3


def test_clean_false_leaves_the_clean_model_out(ids):
    out, sums, data = _run(ids, clean=False)
    assert "clean" not in out and set(sums) == {"id", "half"} and data.clean_ce is None
    assert len(list((cache_root() / "evals").glob("*.json"))) == 2
    with_clean, _, _ = _run(ids)                                          # SAEs from the cache, clean computed
    assert {k: v for k, v in with_clean.items() if k != "clean"} == out


def test_the_key_changes_with_the_weights_the_set_and_the_settings(tmp_cache):
    sae = _saved("a", "A")
    before = eval_cache.sae_identity(sae)
    _saved("a", "A2")
    assert eval_cache.sae_identity(sae) != before
    assert eval_cache.sae_identity("saes/none") == ""                       # no checksums: not cached
    data = _fresh_set()
    base = eval_cache.set_identity(data, 3, True)
    assert base != eval_cache.set_identity(data, 4, True) != eval_cache.set_identity(data, 3, False)
    other = ft.eval_set(Store(), DOCS[:3], DOCS[:1], None, "toy")
    assert eval_cache.set_identity(other, 3, True) != base
    assert eval_cache.entry_key(before, base) != eval_cache.entry_key(eval_cache.sae_identity(sae), base)
    assert eval_cache.entry_key("", base) == "" and eval_cache.clean_key("") == ""
