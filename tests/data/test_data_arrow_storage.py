"""data.storage="arrow" builds exactly the splits of the list path (doc for doc, in order)
from local files with the paper sources' real column names, streaming the general text."""

import dataclasses
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssae_utils.data import DataConfig, build_corpora
from ssae_utils.data.corpora import Corpora
from ssae_utils.data.sources.registry import Source
from ssae_utils.data.table import DocumentTable
from ssae_utils.domains import preset_domains
from ssae_utils.io import read_json
from ssae_utils.paths import REPO_ROOT

BIOS = REPO_ROOT / "tests" / "fixtures" / "paper" / "bias_in_bios"
VOCAB = [f"w{i}" for i in range(300)]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _text(rng, words):
    return " ".join(rng.choice(VOCAB) for _ in range(words)) + "."


def _long(rng, paragraphs):
    return "\n\n".join(_text(rng, rng.randint(15, 40)) for _ in range(paragraphs))


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def write_fixtures(tmp_path, seed=0):
    """OpenWebText (parquet, column ``text``) with exact duplicates, near-empty rows, long
    documents that chunk (two share a paragraph-sized piece), and copies of physics and
    toxicity texts; arXiv physics (``text``), physics instruct (``question``/``answer``),
    Pile toxicity (``text``/``score``) and a topic-labelled news file (a second general source)."""
    rng = random.Random(seed)
    physics = [_text(rng, rng.randint(8, 30)) for _ in range(40)] + [_long(rng, 6) for _ in range(3)]
    toxic = [(_text(rng, rng.randint(5, 20)), rng.random()) for _ in range(40)]
    shared = _text(rng, 45)
    owt = []
    for i in range(400):
        r = rng.random()
        if r < 0.08 and owt:
            owt.append(rng.choice(owt))                           # exact duplicate
        elif r < 0.12:
            owt.append(rng.choice(physics))                       # owned by physics: removed
        elif r < 0.15:
            owt.append(rng.choice(toxic)[0])                      # owned by toxicity (or a negative)
        elif r < 0.17:
            owt.append(rng.choice(["", "one", "two words"]))      # below min_words / empty
        elif r < 0.25:
            owt.append(_long(rng, rng.randint(3, 9)) + "\n\n" + shared)   # chunked, a shared piece
        else:
            owt.append(_text(rng, rng.randint(3, 120)))
    owt.append(shared)                                            # a piece of the long ones, whole
    pq.write_table(pa.table({"text": owt, "url": [f"u{i}" for i in range(len(owt))]}), tmp_path / "owt.parquet")
    news = [{"text": _text(rng, rng.randint(5, 50)), "topic": rng.choice(["science", "sport"])} for _ in range(60)]
    return {
        "openwebtext": {"path": str(tmp_path / "owt.parquet")},
        "arxiv_physics": {"path": _jsonl(tmp_path / "arxiv.jsonl", [{"text": t, "id": i} for i, t in enumerate(physics)])},
        "physics_instruct": {"path": _jsonl(tmp_path / "instruct.jsonl", [
            {"question": _text(rng, 10), "answer": _text(rng, 20)} for _ in range(12)])},
        "pile_toxicity": {"path": _jsonl(tmp_path / "pile.jsonl", [{"text": t, "score": s} for t, s in toxic])},
        "bias_in_bios": {"path": str(BIOS)},
        str(tmp_path / "news.jsonl"): {"topic_column": "topic"},
    }, tmp_path / "news.jsonl", news


def config(tmp_path, storage, **overrides):
    options, news_path, news = write_fixtures(tmp_path)
    _jsonl(news_path, news)
    base = dict(general_sources=("openwebtext", str(news_path)), source_options=options, max_words=60,
                general_heldout_share=0.1, storage=storage)
    return DataConfig.paper(**{**base, **overrides})


def domains(pool_share=0.2):
    d = preset_domains("paper")
    return {
        # planted known positives, and the news "science" topic labelled as physics
        "physics": dataclasses.replace(d["physics"], seed_words=60, val_words=60, test_words=None, ood_words=None,
                                       pool_share=pool_share, pool_label_topic="science"),
        # labelled negatives join the general text
        "toxicity": dataclasses.replace(d["toxicity"], seed_words=30, val_words=30, test_words=None,
                                        pool_share=pool_share, negatives_to_pool=True),
    }


def assert_same(a: Corpora, b: Corpora):
    assert list(a.splits) == list(b.splits)
    for name in a.splits:
        assert isinstance(b[name], DocumentTable)
        assert list(b[name]) == list(a[name]), name           # doc for doc, in order
    assert a.pool_removals == b.pool_removals
    assert read_json(a.path / "manifest.json")["splits"] == read_json(b.path / "manifest.json")["splits"]


@pytest.mark.parametrize("overrides", [
    {},
    {"general_max_words": 2_000, "max_words": 40},
    {"general_heldout_share": 0.0, "split_seed": 3},
    {"general_heldout_share": 0.5, "min_words": 5},
])
def test_arrow_splits_equal_the_list_splits(tmp_path, overrides):
    jsonl = build_corpora(config(tmp_path, "jsonl", **overrides), domains())
    arrow = build_corpora(config(tmp_path, "arrow", **overrides), domains())
    assert jsonl.path != arrow.path                            # separate cache entries
    assert_same(jsonl, arrow)
    # the fixtures exercise what the streaming path has to get right
    assert sum(jsonl.pool_removals.values()) > 0
    assert any("parent_id" in d.meta for d in jsonl["general_pool"])
    assert any(d.meta.get("known_domain") == "physics" and d.source.startswith("file:") for d in jsonl["general_pool"])
    assert any(d.source == "pile_toxicity" for d in jsonl["general_pool"])
    for dom in ("physics", "toxicity"):
        assert arrow.known_positives(dom) == jsonl.known_positives(dom) and jsonl.known_positives(dom)
    assert arrow.texts("general_pool") == jsonl.texts("general_pool")
    assert not list(arrow.path.glob(".*staging*"))               # the staging table is removed


def test_a_cached_arrow_entry_is_memory_mapped_not_rebuilt(tmp_path, monkeypatch):
    cfg = config(tmp_path, "arrow")
    first = build_corpora(cfg, domains())
    monkeypatch.setattr("ssae_utils.data.corpora._build_arrow", lambda *a: pytest.fail("rebuilt"))
    again = build_corpora(cfg, domains())
    assert all(isinstance(again[n], DocumentTable) and again[n] == first[n] for n in first.splits)
    assert sorted(p.suffix for p in again.path.iterdir()) == [".arrow"] * len(first.splits) + [".json"]


def test_the_general_text_is_streamed_not_loaded_as_a_list(tmp_path, monkeypatch):
    """The arrow path reads the general sources through Source.iter, never Source.load."""
    loaded = []
    real_load = Source.load

    def spy(self, overrides=None):
        loaded.append(self.name)
        return real_load(self, overrides)

    monkeypatch.setattr(Source, "load", spy)
    cfg = config(tmp_path, "arrow")
    build_corpora(cfg, domains())
    assert "openwebtext" not in loaded and not any(n.endswith("news.jsonl") for n in loaded)
    assert "arxiv_physics" in loaded                            # subdomains are still lists


def test_storage_knob(tmp_path):
    assert "storage" not in DataConfig.smoke().to_dict()        # default left out: old keys and hashes hold
    assert "storage" not in DataConfig.embedded().to_dict()
    assert DataConfig.paper().storage == "arrow" and DataConfig.paper().to_dict()["storage"] == "arrow"
    assert DataConfig.from_dict(DataConfig.paper().to_dict()).storage == "arrow"
    assert DataConfig.from_dict(DataConfig.smoke().to_dict()).storage == "jsonl"
    with pytest.raises(ValueError, match="DataConfig.storage"):
        DataConfig.smoke(storage="parquet")
    from ssae_utils.config import build_profile

    # the profile's config dict (its hash, every results file) has the knob only where it is not the default
    assert "storage" not in build_profile("smoke").to_dict()["data"]
    assert build_profile("paper").to_dict()["data"]["storage"] == "arrow"


def test_smoke_corpora_in_arrow_equal_jsonl():
    jsonl = build_corpora(DataConfig.smoke())
    arrow = build_corpora(DataConfig.smoke(storage="arrow"))
    assert_same(jsonl, arrow)


def test_find_documents_reads_only_the_wanted_rows_and_later_splits_win(tmp_path):
    from ssae_utils.data.corpora import find_documents
    from ssae_utils.data.documents import Document

    pool = [Document(f"id{i}", f"text {i}", "s") for i in range(30)]
    table = DocumentTable.write(pool, tmp_path / "pool.arrow", batch_rows=4)
    seed = [Document("id3", "seed text", "seed")]
    for docs in (table, pool):
        found = find_documents([docs, seed], ["id3", "id17", "nope"])
        assert found == {"id3": seed[0], "id17": pool[17]}


def test_data_card_from_per_split_counts_equals_the_tokenizer_card():
    from ssae_utils.data.card import data_card

    corpora = build_corpora(DataConfig.smoke(storage="arrow"))
    by_tokenizer = data_card(corpora, tokenizer=lambda t: len(t.split()) + 1)
    counts = {n: [len(t.split()) + 1 for t in corpora.texts(n)] for n in corpora}
    assert data_card(corpora, counts=counts) == by_tokenizer
    assert data_card(build_corpora(DataConfig.smoke()), counts=counts) == by_tokenizer
