"""Physics in another register: the docstrings of ``sympy.physics`` (sympy 1.14.0 wheel).

Read from the pinned wheel with ``ast`` (nothing is imported or executed). Public module,
class and function docstrings only; doctest examples (``>>>`` blocks and their output) and
the emptied "Examples" headings are removed, leaving the prose of API documentation, a
register far from Wikipedia's. Docstrings under ``min_words`` words are dropped.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Iterator, Mapping

from ssae_utils.data.artifacts import open_artifact
from ssae_utils.data.documents import Document, make_document
from ssae_utils.data.sources.registry import register_source

_EXAMPLES_HEADING = re.compile(r"^\s*Examples?\n\s*[=\-~]{3,}\s*$", re.MULTILINE)


def docstring_prose(doc: str) -> str:
    kept, in_example = [], False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith((">>>", "...")):
            in_example = True
            continue
        if in_example:
            if not stripped:
                in_example = False
            continue  # doctest output lines
        kept.append(line)
    return _EXAMPLES_HEADING.sub("", "\n".join(kept)).strip()


def _docstrings(source: bytes) -> Iterator[tuple[str, str]]:
    tree = ast.parse(source)
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    for node in nodes:
        name = getattr(node, "name", "<module>")
        if name.startswith("_") and name != "<module>":
            continue
        doc = ast.get_docstring(node, clean=True)
        if doc:
            yield name, doc


@register_source("sympy_physics_docs", kind="physics_ood", artifacts=("sympy",),
                 defaults={"min_words": 20},
                 description="prose of the public docstrings of sympy.physics (sympy 1.14.0), "
                             "doctest examples removed")
def load_sympy_physics_docs(opts: Mapping[str, Any]) -> list[Document]:
    docs = []
    for path, raw in open_artifact("sympy").iter_files("sympy/physics/", ".py"):
        if "/tests/" in path:
            continue
        module = path[len("sympy/"):-len(".py")].replace("/", ".")
        topic = ".".join(module.split(".")[:2])  # e.g. physics.quantum
        for name, doc in _docstrings(raw):
            text = docstring_prose(doc)
            if len(text.split()) >= int(opts["min_words"]):
                docs.append(make_document(text, "sympy_physics_docs", topic,
                                          {"module": module, "object": name}))
    return docs
