"""The study's document sets: an ambiguous training set, balanced sets, counterfactual pairs.

* **ambiguous** (probe training): gender predicts the profession perfectly, as in SHIFT
  (Marks et al.): class 0 = (first profession, male), class 1 = (second profession, female);
  the paper's male professors vs female nurses. Equal class sizes.
* **balanced** (oracle probe, SCR gender probe; and the test set): all four (profession x
  gender) groups at one size, so gender carries no information about the profession.
* **counterfactual pairs** (the automatic gender criterion): each ambiguous document next to
  its pronoun-swapped copy, so a feature's gender response is measured with the content fixed.

The ambiguous (probe training) set holds real documents only: a pronoun-swapped copy of a
male performer is no female performer, and putting copies into the probe's training set
would make the spurious "gender" the probe can lean on a lexical artefact of the swap. Only
the balanced sets (the test set, and the oracle's / SCR gender probe's balanced training
set) fill a group that has too few real documents with pronoun-swapped copies of the same
profession's other gender (``BiosStudyConfig.use_pronoun_swaps``); real documents always
come first. Swapped copies keep the person's name (``ssae_utils.data.bios.pronoun_swap``),
so a name can still leak gender: the notebook states this.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ssae_utils.data.bios import pronoun_swap, swapped_copy
from ssae_utils.data.documents import Document, make_document

log = logging.getLogger(__name__)

GENDERS = ("male", "female")  # label 0, 1


@dataclass
class LabelledSet:
    """Documents with integer labels: profession (index into ``professions``), gender (0 male, 1 female)."""

    name: str
    docs: list[Document]
    professions: tuple[str, str]
    profession: np.ndarray          # int [n]
    gender: np.ndarray              # int [n]
    swapped: np.ndarray             # bool [n]: a pronoun-swapped copy, not a real document
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.docs)
        for name in ("profession", "gender", "swapped"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{self.name}: {name} has {len(getattr(self, name))} labels for {n} documents")

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def texts(self) -> list[str]:
        return [d.text for d in self.docs]

    @property
    def group(self) -> np.ndarray:
        """Group index 2 * profession + gender (0..3)."""
        return 2 * self.profession + self.gender

    def group_names(self) -> list[str]:
        return [f"{p}/{g}" for p in self.professions for g in GENDERS]

    def card(self) -> dict[str, dict[str, int]]:
        """Documents per group, real and pronoun-swapped."""
        out = {}
        for k, name in enumerate(self.group_names()):
            mask = self.group == k
            out[name] = {"docs": int(mask.sum()), "real": int((mask & ~self.swapped).sum()),
                         "swapped": int((mask & self.swapped).sum())}
        return out


def by_group(docs: Sequence[Document], professions: tuple[str, str]) -> dict[tuple[int, int], list[Document]]:
    """The documents of the two professions, keyed by (profession index, gender index)."""
    groups: dict[tuple[int, int], list[Document]] = {(p, g): [] for p in range(2) for g in range(2)}
    for doc in docs:
        prof, gender = doc.meta.get("profession"), doc.meta.get("gender")
        if prof in professions and gender in GENDERS:
            groups[(professions.index(prof), GENDERS.index(gender))].append(doc)
    return groups


def _shuffled(docs: list[Document], rng: np.random.Generator) -> list[Document]:
    return [docs[i] for i in rng.permutation(len(docs))]


def _fill(real: list[Document], donors: list[Document], n: int, use_swaps: bool,
          rng: np.random.Generator) -> tuple[list[Document], list[bool]]:
    """``n`` documents of one group: real ones first (seeded order), then swapped donors."""
    picked = _shuffled(real, rng)[:n]
    flags = [False] * len(picked)
    if use_swaps and len(picked) < n:
        extra = [swapped_copy(d) for d in _shuffled(donors, rng)[: n - len(picked)]]
        picked += extra
        flags += [True] * len(extra)
    return picked, flags


def _capacity(groups, key: tuple[int, int], use_swaps: bool) -> int:
    p, g = key
    return len(groups[key]) + (len(groups[(p, 1 - g)]) if use_swaps else 0)


def _build(name: str, groups, keys: list[tuple[int, int]], n: int, professions, use_swaps: bool,
           rng: np.random.Generator, notes: list[str]) -> LabelledSet:
    docs, prof, gender, swapped = [], [], [], []
    for key in keys:
        p, g = key
        picked, flags = _fill(groups[key], groups[(p, 1 - g)], n, use_swaps, rng)
        docs += picked
        prof += [p] * len(picked)
        gender += [g] * len(picked)
        swapped += flags
    return LabelledSet(name, docs, professions, np.array(prof, dtype=np.int64), np.array(gender, dtype=np.int64),
                       np.array(swapped, dtype=bool), notes)


def _size(name: str, wanted: int | None, capacity: int, notes: list[str]) -> int:
    if capacity < 2:
        raise ValueError(f"{name}: a group has {capacity} documents; the study needs at least 2 per group "
                         "(check DataConfig.bios_source and BiosStudyConfig.professions)")
    if wanted is not None and wanted > capacity:
        notes.append(f"{name}: {wanted} documents per group requested, only {capacity} available; using {capacity}")
        log.warning(notes[-1])
        return capacity
    return capacity if wanted is None else wanted


def ambiguous_set(docs: Sequence[Document], professions: tuple[str, str], per_class: int | None,
                  seed: int, name: str = "ambiguous") -> LabelledSet:
    """(profession 0, male) vs (profession 1, female), equal sizes, real documents only
    (never pronoun-swapped copies: this is the probe's training set)."""
    groups = by_group([d for d in docs if d.meta.get("swapped_from") is None], professions)
    keys = [(0, 0), (1, 1)]
    notes: list[str] = []
    n = _size(name, per_class, min(_capacity(groups, k, False) for k in keys), notes)
    return _build(name, groups, keys, n, professions, False, np.random.default_rng(seed), notes)


def balanced_set(docs: Sequence[Document], professions: tuple[str, str], per_group: int | None,
                 use_swaps: bool, seed: int, name: str = "balanced") -> LabelledSet:
    """All four groups at one size (the smallest group's capacity unless ``per_group``)."""
    groups = by_group(docs, professions)
    keys = [(p, g) for p in range(2) for g in range(2)]
    notes: list[str] = []
    n = _size(name, per_group, min(_capacity(groups, k, use_swaps) for k in keys), notes)
    return _build(name, groups, keys, n, professions, use_swaps, np.random.default_rng(seed), notes)


# A sentence ends at . ! or ? followed by whitespace and an upper-case letter or a quote;
# "c. 1850" or "U.S. physicist" (lower case or digit next) do not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def without_first_sentence(doc: Document, min_words: int = 8) -> Document | None:
    """The document minus its first sentence (None if fewer than ``min_words`` words remain).

    Bias in Bios' ``hard_text`` leaves out the first sentence of each biography, the one that
    names the occupation; a Wikipedia lead's first sentence does the same ("X (1867-1934) was
    a Polish physicist ..."), so this is the stand-in's ``hard_text``.
    """
    parts = _SENTENCE_END.split(doc.text.strip(), maxsplit=1)
    if len(parts) < 2 or len(parts[1].split()) < min_words:
        return None
    return make_document(parts[1], doc.source, doc.topic, {**doc.meta, "first_sentence_dropped": True})


def hard_text_view(docs: Sequence[Document], min_words: int = 8) -> list[Document]:
    kept = [without_first_sentence(d, min_words) for d in docs]
    return [d for d in kept if d is not None]


@dataclass
class CounterfactualPairs:
    """Row i of ``female`` and of ``male`` are one document in its two gender versions."""

    female: list[str]
    male: list[str]

    def __post_init__(self) -> None:
        if len(self.female) != len(self.male) or not self.female:
            raise ValueError("counterfactual pairs need equally many (and at least one) female and male texts")


def counterfactual_pairs(labelled: LabelledSet) -> CounterfactualPairs:
    """Every document of ``labelled`` with its pronoun-swapped copy, as (female, male) versions."""
    female, male = [], []
    for doc, gender in zip(labelled.docs, labelled.gender):
        other = pronoun_swap(doc.text)
        if other == doc.text:
            continue  # no gendered word to swap: the pair would carry no contrast
        female.append(doc.text if gender == 1 else other)
        male.append(other if gender == 1 else doc.text)
    return CounterfactualPairs(female, male)
