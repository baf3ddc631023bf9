"""The interpreter and predictor prompts (the protocol of the paper's Appendix F, our wording)
and strict parsers of their answers.

Interpreter: sees the top-activating windows with firing tokens between << and >>, may
reason, and must end with one line ``EXPLANATION: <description>``.
Predictor: sees the explanation and the shuffled scoring windows (unmarked) and must reply
with a Python list of 0/1, one per window, and nothing else.

A parser never guesses: an answer that does not follow the format raises
``MalformedAnswer`` with the reason, which the caller sends back once in a retry prompt.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Sequence

EXPLANATION_TAG = "EXPLANATION:"
MAX_EXPLANATION_CHARS = 1000

INTERPRETER_SYSTEM = """You study a single feature inside the internal activations of a language model. \
Your goal is to work out what makes the feature fire and to describe it in plain words.

You will be shown excerpts of text on which the feature is active. In each excerpt, the tokens \
on which it fires are wrapped in << and >>. When several adjacent tokens fire, the whole run is \
wrapped as one span, <<like this>>.

How to answer:
- Look for what the wrapped tokens have in common: the same word or word piece, a grammatical \
role, a topic of the surrounding text, punctuation or formatting.
- Be concrete and brief: the description will be given to someone who must decide, from the \
description alone, whether a new excerpt contains the feature.
- You may think out loud first, but the final line of your reply must have exactly this form:
EXPLANATION: <one-sentence description>"""

PREDICTOR_SYSTEM = """You are a careful linguist. You will be given a short description of a \
property of text (for example "words about the weather" or "the word 'of' before a capitalised \
name") and a numbered list of text excerpts. For each excerpt, decide whether it shows the \
described property.

Reply with a Python list holding one integer per excerpt, in the order given: 1 if the excerpt \
shows the property, 0 if it does not. The list must have exactly one entry per excerpt. Write \
the list and nothing else: no explanation, no code fences."""


class MalformedAnswer(ValueError):
    """The model's answer does not follow the required format (the message says how)."""


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str


def _numbered(texts: Sequence[str]) -> str:
    return "\n".join(f"Excerpt {i}: {t}" for i, t in enumerate(texts, 1))


def interpreter_prompt(marked_examples: Sequence[str]) -> Prompt:
    if not marked_examples:
        raise ValueError("the interpreter needs at least one example")
    user = (f"Excerpts on which the feature is active:\n\n{_numbered(marked_examples)}\n\n"
            f"End your reply with the line '{EXPLANATION_TAG} <description>'.")
    return Prompt(INTERPRETER_SYSTEM, user)


def predictor_prompt(explanation: str, examples: Sequence[str]) -> Prompt:
    if not explanation.strip():
        raise ValueError("the predictor needs a non-empty explanation")
    if not examples:
        raise ValueError("the predictor needs at least one example")
    user = (f"Property: {explanation.strip()}\n\nExcerpts:\n{_numbered(examples)}\n\n"
            f"Reply with a list of {len(examples)} integers, each 0 or 1.")
    return Prompt(PREDICTOR_SYSTEM, user)


def with_retry_note(prompt: Prompt, reason: str) -> Prompt:
    """The same request with a note on why the first answer was rejected (a new cache entry)."""
    note = (f"\n\nNote: an earlier reply to this request was rejected ({reason}). "
            "Follow the required answer format exactly.")
    return Prompt(prompt.system, prompt.user + note)


def parse_explanation(text: str) -> str:
    """The description on the last non-empty line, which must start with ``EXPLANATION:``."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        raise MalformedAnswer("the reply is empty")
    last = lines[-1]
    if not last.upper().startswith(EXPLANATION_TAG):
        raise MalformedAnswer(f"the last line does not start with '{EXPLANATION_TAG}'")
    explanation = last[len(EXPLANATION_TAG):].strip()
    if not explanation:
        raise MalformedAnswer(f"nothing follows '{EXPLANATION_TAG}'")
    if len(explanation) > MAX_EXPLANATION_CHARS:
        raise MalformedAnswer(f"the explanation is longer than {MAX_EXPLANATION_CHARS} characters")
    return explanation


_LIST = re.compile(r"^\[[\s\d,]*\]$")


def parse_predictions(text: str, n: int) -> list[int]:
    """A Python list of exactly ``n`` integers, each 0 or 1, and nothing else."""
    answer = (text or "").strip()
    if not _LIST.match(answer):
        raise MalformedAnswer("the reply is not a bare Python list of integers")
    try:
        values = ast.literal_eval(answer)
    except (ValueError, SyntaxError) as err:
        raise MalformedAnswer(f"the list cannot be read ({err})") from err
    if not isinstance(values, list) or len(values) != n:
        raise MalformedAnswer(f"the list has {len(values) if isinstance(values, list) else '?'} entries, expected {n}")
    if any(type(v) is not int or v not in (0, 1) for v in values):
        raise MalformedAnswer("every entry must be 0 or 1")
    return values
