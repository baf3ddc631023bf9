"""Paper-profile sources: the Hugging Face datasets the paper used.

Every option is a DataConfig field (``source_options[<name>]``): the dataset path (a hub name
or a local file with the same columns), the split, the text column(s), row caps, and the
label columns. Defaults are the paper's datasets. Column names not documented on the hub
(``arxiv_physics``: ``text``; ``physics_instruct``: ``question`` + ``answer``) are assumptions:
a wrong name fails with the dataset's actual column list.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from ssae_utils.data.documents import Document, make_document
from ssae_utils.data.hf import iter_rows, require_columns
from ssae_utils.data.sources.registry import register_source


def _hub(path: str, **extra: Any) -> dict[str, Any]:
    return {"path": path, "split": "train", "name": None, "revision": None,
            "max_rows": None, **extra}


def _rows(opts: Mapping[str, Any], split: str | None = None) -> Iterator[dict[str, Any]]:
    return iter_rows(opts["path"], split or opts["split"], opts["name"], opts["revision"],
                     opts["max_rows"])


def _text_docs(source: str, opts: Mapping[str, Any], topic: str | None) -> Iterator[Document]:
    # a generator: the rows stream from the dataset (Source.load makes the list if wanted)
    columns = list(opts["text_columns"])
    for i, row in enumerate(_rows(opts)):
        if i == 0:
            require_columns(row, columns, opts["path"], source)
        parts = [str(row[c]).strip() for c in columns if row[c]]
        if parts:
            yield make_document(opts["joiner"].join(parts), source, topic, {"row": i})


@register_source("openwebtext", kind="general",
                 defaults=_hub("Skylion007/openwebtext", text_columns=["text"], joiner="\n\n",
                               max_rows=1_000_000),
                 description="OpenWebText (paper's general corpus); first max_rows documents")
def load_openwebtext(opts: Mapping[str, Any]) -> Iterator[Document]:
    return _text_docs("openwebtext", opts, None)


@register_source("arxiv_physics", kind="physics",
                 defaults=_hub("anonymousdatasets/arxiv-physics", text_columns=["text"],
                               joiner="\n\n"),
                 description="arXiv physics papers (paper's physics seed and in-domain test)")
def load_arxiv_physics(opts: Mapping[str, Any]) -> Iterator[Document]:
    return _text_docs("arxiv_physics", opts, "physics")


@register_source("physics_instruct", kind="physics_ood",
                 defaults=_hub("AlgorithmicResearchGroup/arxiv-physics-instruct-tune-30k",
                               text_columns=["question", "answer"], joiner="\n\n"),
                 description="arXiv physics instruction pairs, question + answer "
                             "(paper's out-of-distribution physics test)")
def load_physics_instruct(opts: Mapping[str, Any]) -> Iterator[Document]:
    return _text_docs("physics_instruct", opts, "physics")


@register_source("pile_toxicity", kind="toxicity",
                 defaults=_hub("tomekkorbak/pile-toxicity-balanced", text_column="text",
                               score_column="score", toxic_threshold=0.5),
                 description="Pile documents with Detoxify toxicity scores; toxic = "
                             "score >= toxic_threshold")
def load_pile_toxicity(opts: Mapping[str, Any]) -> list[Document]:
    text_col, score_col = opts["text_column"], opts["score_column"]
    threshold = float(opts["toxic_threshold"])
    docs = []
    for i, row in enumerate(_rows(opts)):
        if i == 0:
            require_columns(row, [text_col, score_col], opts["path"], "pile_toxicity")
        score = float(row[score_col])
        meta = {"toxic": int(score >= threshold), "score": score, "row": i}
        if isinstance(row.get("meta"), dict) and "pile_set_name" in row["meta"]:
            meta["pile_set_name"] = row["meta"]["pile_set_name"]
        docs.append(make_document(row[text_col], "pile_toxicity", None, meta))
    return docs


# LabHC/bias_in_bios label ids (its 28-way ClassLabel, alphabetical): professor = 21,
# nurse = 13; gender 0 = male, 1 = female (the mapping SAEBench and SHIFT use too).
@register_source("bias_in_bios", kind="bios",
                 defaults={k: v for k, v in _hub(
                     "LabHC/bias_in_bios", splits=["train", "test"], text_column="hard_text",
                     profession_column="profession", gender_column="gender",
                     professions={"21": "professor", "13": "nurse"},
                     genders={"0": "male", "1": "female"}).items() if k != "split"},
                 description="Bias in Bios biographies of professors and nurses, with the "
                             "dataset's own train/test split kept (meta split)")
def load_bias_in_bios(opts: Mapping[str, Any]) -> list[Document]:
    cols = [opts["text_column"], opts["profession_column"], opts["gender_column"]]
    professions, genders = dict(opts["professions"]), dict(opts["genders"])
    docs = []
    for split in opts["splits"]:
        for i, row in enumerate(_rows(opts, split)):
            if i == 0:
                require_columns(row, cols, opts["path"], "bias_in_bios")
            profession = professions.get(str(row[cols[1]]))
            gender = genders.get(str(row[cols[2]]))
            if profession and gender:
                docs.append(make_document(row[cols[0]], "bias_in_bios", None, {
                    "profession": profession, "gender": gender, "split": split, "row": i}))
    return docs
