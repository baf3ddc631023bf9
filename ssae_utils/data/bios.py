"""Bias-in-Bios stand-in helpers: gender from pronouns, profession from a description, and
pronoun-swapped copies to complete a balanced evaluation set.

The real Bias in Bios (De-Arteaga et al. 2019) labels gender from pronouns too; here the
biographies are Wikipedia lead sections of famous people, not self-written web bios, and the
two "professions" are coarse groups chosen because the data holds both genders in each:
``scholar`` (scientists, mathematicians, philosophers, historians: stand-in for the paper's
*professor*, mostly male here) and ``performer`` (actors, singers, dancers, musicians:
stand-in for *nurse*, the profession with the larger female share here).
"""

from __future__ import annotations

import re
from collections import Counter

from ssae_utils.data.documents import Document, make_document

MALE = frozenset({"he", "his", "him", "himself"})
FEMALE = frozenset({"she", "her", "hers", "herself"})

PROFESSIONS: dict[str, re.Pattern[str]] = {
    "scholar": re.compile(
        r"\b(?:astro)?physicists?\b|\b(?:bio)?chemists?\b|\bmathematicians?\b|\bastronomers?\b|"
        r"\bbiologists?\b|\bscientists?\b|\bnaturalists?\b|\bgeologists?\b|\bengineers?\b|"
        r"\binventors?\b|\bphysicians?\b|\beconomists?\b|\bpsychologists?\b|\bbotanists?\b|"
        r"\bzoologists?\b|\b(?:cyto)?geneticists?\b|\bsociologists?\b|\banthropologists?\b|"
        r"\bprimatologists?\b|\bstatisticians?\b|\bphilosophers?\b|\bhistorians?\b|\bscholars?\b|"
        r"\bpolymaths?\b"),
    "performer": re.compile(
        r"\bactor\b|\bactress\b|\bsinger|\bdancers?\b|\bentertainers?\b|\bcomedians?\b|"
        r"\bmusicians?\b|\bsongwriters?\b|\brappers?\b|\bpianists?\b|\bballerina\b"),
}

# A lead is about a person if its topic says so or its description carries life dates,
# e.g. "(1867–1934)", "(born 1935)", "(c. 780 – c. 850)".
_LIFE_DATES = re.compile(r"\((?:born |c\. |fl\. )?\d")


def looks_like_person(topic: str | None, description: str) -> bool:
    return topic == "People" or bool(_LIFE_DATES.search(description))


def gender_from_pronouns(text: str) -> str | None:
    """'male' / 'female' when one set of pronouns outnumbers the other at least 2:1."""
    words = Counter(re.findall(r"[a-z]+", text.lower()))
    m = sum(words[w] for w in MALE)
    f = sum(words[w] for w in FEMALE)
    if m and m >= 2 * f:
        return "male"
    if f and f >= 2 * m:
        return "female"
    return None


def profession_from_description(description: str) -> str | None:
    """The one profession whose pattern matches, or None (no match, or both)."""
    hits = [name for name, pat in PROFESSIONS.items() if pat.search(description.lower())]
    return hits[0] if len(hits) == 1 else None


_SWAP = {
    "he": "she", "she": "he", "him": "her", "his": "her", "himself": "herself",
    "herself": "himself", "hers": "his", "man": "woman", "woman": "man", "men": "women",
    "women": "men", "actor": "actress", "actress": "actor", "king": "queen", "queen": "king",
    "father": "mother", "mother": "father", "son": "daughter", "daughter": "son",
    "brother": "sister", "sister": "brother", "husband": "wife", "wife": "husband",
    "boy": "girl", "girl": "boy", "mr": "ms", "mrs": "mr", "ms": "mr",
}
_WORD = re.compile(r"[A-Za-z]+")
# "her" is possessive before a noun phrase ("her husband") and objective otherwise
# ("married her."). A following word that is not a function word marks the possessive.
_FUNCTION_WORDS = frozenset(
    "a an the and or but to of in on at for with by from as that this than then when which "
    "who whom whose is was were be been are after before into over about".split())


def pronoun_swap(text: str) -> str:
    """Swap gendered words (he<->she, his<->her, actor<->actress, ...), keeping capitals.

    Names are left alone: a swapped copy of "Albert Einstein ... he" reads "Albert Einstein
    ... she", so names still leak gender. Use the copies only to balance an evaluation set,
    and say so.
    """
    tokens = list(_WORD.finditer(text))
    out, last = [], 0
    for i, match in enumerate(tokens):
        word = match.group(0)
        low = word.lower()
        if low == "her":
            nxt = tokens[i + 1].group(0).lower() if i + 1 < len(tokens) else ""
            between = text[match.end():tokens[i + 1].start()] if i + 1 < len(tokens) else "."
            possessive = nxt and nxt not in _FUNCTION_WORDS and between.strip() == ""
            new = "his" if possessive else "him"
        else:
            new = _SWAP.get(low)
        if new is None:
            continue
        if word.isupper() and len(word) > 1:
            new = new.upper()
        elif word[0].isupper():
            new = new.capitalize()
        out.append(text[last:match.start()])
        out.append(new)
        last = match.end()
    out.append(text[last:])
    return "".join(out)


def swapped_copy(doc: Document) -> Document:
    gender = {"male": "female", "female": "male"}.get(doc.meta.get("gender"))
    return make_document(pronoun_swap(doc.text), f"{doc.source}_swapped", doc.topic,
                         {**doc.meta, "gender": gender, "swapped_from": doc.doc_id})


def balance_with_pronoun_swaps(docs: list[Document]) -> list[Document]:
    """Fill each (profession, gender) group up to the largest group with swapped copies of the
    same profession's other gender (in the given order). Real documents are all kept."""
    groups: dict[tuple[str, str], list[Document]] = {}
    for doc in docs:
        groups.setdefault((doc.meta["profession"], doc.meta["gender"]), []).append(doc)
    professions = sorted({p for p, _ in groups})
    target = max((len(v) for v in groups.values()), default=0)
    out = list(docs)
    for prof in professions:
        for gender, other in (("male", "female"), ("female", "male")):
            have = len(groups.get((prof, gender), []))
            donors = groups.get((prof, other), [])
            out += [swapped_copy(d) for d in donors[: max(0, target - have)]]
    return out
