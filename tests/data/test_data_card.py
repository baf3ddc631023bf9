from ssae_utils.data import DataConfig, build_corpora, card_markdown, data_card
from ssae_utils.data.card import ALL
from ssae_utils.data.documents import make_document


def test_card_counts_match_the_corpora():
    corpora = build_corpora(DataConfig.smoke())
    rows = data_card(corpora)
    totals = {r["split"]: r for r in rows if r["source"] == ALL}
    assert set(totals) == set(corpora.splits)
    for split, docs in corpora.items():
        assert totals[split]["docs"] == len(docs)
        assert totals[split]["words"] == sum(d.n_words for d in docs)
        per_source = [r for r in rows if r["split"] == split and r["source"] != ALL]
        assert sum(r["docs"] for r in per_source) == len(docs)
    assert totals["general_pool"]["known_physics"] == len(corpora.known_positives("physics"))


def test_card_with_tokenizer_decode_errors_and_markdown():
    docs = {"a": [make_document("one two three", "s1"),
                  make_document("four five", "s2", meta={"decode_replacements": 2})],
            "empty": []}
    rows = data_card(docs, tokenizer=lambda text: text.split() + ["<bos>"], domains=["physics", "toxicity"])
    total = next(r for r in rows if r["split"] == "a" and r["source"] == ALL)
    assert total == {"split": "a", "source": ALL, "docs": 2, "words": 5, "tokens": 7,
                     "decode_error_docs": 1, "known_physics": 0, "known_toxicity": 0}
    assert next(r for r in rows if r["split"] == "empty")["docs"] == 0
    assert data_card(docs, tokenizer=lambda text: 10)[0]["tokens"] == 10
    md = card_markdown(rows)
    assert md.splitlines()[0] == "| split | source | docs | words | tokens | decode_error_docs |"
    assert "| **a** | **(all)** | **2** | **5** | **7** | **1** |" in md
    assert "known_physics" not in md   # all-zero columns are left out
