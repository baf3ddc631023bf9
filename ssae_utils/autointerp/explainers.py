"""Interpreter and predictor: the interface, and the Claude implementation.

A malformed answer is asked for once more (with a note on what was wrong, which makes it a
new request and a new cache entry); a second malformed answer is recorded as a failure
with its reason, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, TypeVar

from ssae_utils.autointerp.client import LLMRequest
from ssae_utils.autointerp.examples import FeatureExamples
from ssae_utils.autointerp.llm import CachedLLM
from ssae_utils.autointerp.prompts import (
    MalformedAnswer,
    Prompt,
    interpreter_prompt,
    parse_explanation,
    parse_predictions,
    predictor_prompt,
    with_retry_note,
)

T = TypeVar("T")


@dataclass
class Answer:
    """A parsed answer (``value``) or the reason there is none (``failure``)."""

    value: object | None
    failure: str | None
    attempts: int


class Interpreter(Protocol):
    label: str

    def explain(self, feature: FeatureExamples) -> Answer: ...


class Predictor(Protocol):
    def predict(self, explanation: str, feature: FeatureExamples) -> Answer: ...


def ask_with_one_retry(llm: CachedLLM, prompt: Prompt, max_tokens: int, parse: Callable[[str], T]) -> Answer:
    reason = ""
    for attempt in (1, 2):
        asked = prompt if attempt == 1 else with_retry_note(prompt, reason)
        response = llm.complete(llm.request(asked.system, asked.user, max_tokens))
        try:
            return Answer(parse(response.text), None, attempt)
        except MalformedAnswer as err:
            reason = str(err) + (" (the reply hit max_tokens)" if response.stop_reason == "max_tokens" else "")
    return Answer(None, f"malformed answer twice: {reason}", 2)


class ClaudeInterpreter:
    def __init__(self, llm: CachedLLM, max_tokens: int, mark_fraction: float):
        self.llm = llm
        self.max_tokens = max_tokens
        self.mark_fraction = mark_fraction
        self.label = f"Claude ({llm.model})"

    def prompt(self, feature: FeatureExamples) -> Prompt:
        return interpreter_prompt([e.marked_text(self.mark_fraction) for e in feature.explain])

    def first_request(self, feature: FeatureExamples) -> LLMRequest:
        p = self.prompt(feature)
        return self.llm.request(p.system, p.user, self.max_tokens)

    def explain(self, feature: FeatureExamples) -> Answer:
        return ask_with_one_retry(self.llm, self.prompt(feature), self.max_tokens, parse_explanation)


class ClaudePredictor:
    def __init__(self, llm: CachedLLM, max_tokens: int):
        self.llm = llm
        self.max_tokens = max_tokens

    def prompt(self, explanation: str, feature: FeatureExamples) -> Prompt:
        return predictor_prompt(explanation, [e.plain_text() for e in feature.score])

    def first_request(self, explanation: str, feature: FeatureExamples) -> LLMRequest:
        p = self.prompt(explanation, feature)
        return self.llm.request(p.system, p.user, self.max_tokens)

    def predict(self, explanation: str, feature: FeatureExamples) -> Answer:
        n = len(feature.score)
        return ask_with_one_retry(self.llm, self.prompt(explanation, feature), self.max_tokens,
                                  lambda text: parse_predictions(text, n))
