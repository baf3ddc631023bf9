"""Explain, predict and score each feature; plan the Claude calls before making any.

Features run in a thread pool (``concurrency`` at once; each feature's two calls are
sequential), with a progress bar whose rate and ETA come from finished features. A budget
error stops the run (what was answered is already cached); any other per-feature failure is
recorded on that feature and the run goes on.
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ssae_utils.progress import tqdm

from ssae_utils.autointerp.budget import BudgetExceeded
from ssae_utils.autointerp.cache import ResponseCache
from ssae_utils.autointerp.client import ClaudeCallFailed, LLMRequest
from ssae_utils.autointerp.config import AutointerpConfig
from ssae_utils.autointerp.examples import FeatureExamples
from ssae_utils.autointerp.explainers import Interpreter, Predictor
from ssae_utils.autointerp.prompts import (
    MalformedAnswer,
    interpreter_prompt,
    parse_explanation,
    predictor_prompt,
    with_retry_note,
)
from ssae_utils.autointerp.scoring import Score, score

log = logging.getLogger(__name__)

# stands in for an explanation not written yet when the predictor's prompt is estimated
PLACEHOLDER_EXPLANATION = "x" * 400


@dataclass
class FeatureResult:
    model: str
    feature: int
    firing_windows: int
    max_activation: float
    truth: list[int]
    explanation: str | None = None
    predictions: list[int] | None = None
    failure: str | None = None  # why there is no F1 (malformed answers, a failed call)
    attempts: dict[str, int] = field(default_factory=dict)
    score: Score | None = None
    explain_examples: list[str] = field(default_factory=list)  # marked, as the interpreter saw them
    score_examples: list[str] = field(default_factory=list)  # plain, as the predictor saw them, with kinds
    score_kinds: list[str] = field(default_factory=list)

    @property
    def f1(self) -> float | None:
        return None if self.score is None else self.score.f1

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["f1"] = self.f1
        return out


def run_feature(feature: FeatureExamples, interpreter: Interpreter, predictor: Predictor, mark_fraction: float) -> FeatureResult:
    result = FeatureResult(feature.model, feature.feature, feature.firing_windows, feature.max_activation, feature.truth,
                           explain_examples=[e.marked_text(mark_fraction) for e in feature.explain],
                           score_examples=[e.plain_text() for e in feature.score], score_kinds=[e.kind for e in feature.score])
    try:
        explained = interpreter.explain(feature)
        result.attempts["interpreter"] = explained.attempts
        if explained.failure is not None:
            result.failure = f"interpreter: {explained.failure}"
            return result
        result.explanation = str(explained.value)
        predicted = predictor.predict(result.explanation, feature)
        result.attempts["predictor"] = predicted.attempts
        if predicted.failure is not None:
            result.failure = f"predictor: {predicted.failure}"
            return result
    except ClaudeCallFailed as err:
        result.failure = str(err)
        log.warning("feature %s/%d: %s", feature.model, feature.feature, err)
        return result
    result.predictions = list(predicted.value)  # type: ignore[arg-type]
    result.score = score(result.predictions, result.truth)
    return result


def run_features(features: Sequence[FeatureExamples], interpreter: Interpreter, predictor: Predictor,
                 mark_fraction: float, concurrency: int = 1, desc: str = "autointerp") -> list[FeatureResult]:
    """Results in the order of ``features``; a BudgetExceeded in any worker stops the run."""
    results: dict[int, FeatureResult] = {}
    with tqdm(total=len(features), desc=desc, unit="feature") as bar, ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = {pool.submit(run_feature, f, interpreter, predictor, mark_fraction): i for i, f in enumerate(features)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                err = future.exception()
                if err is not None:
                    for other in pending:
                        other.cancel()
                    raise err
                results[futures[future]] = future.result()
                bar.update(1)
    return [results[i] for i in range(len(features))]


def planned_requests(features: Sequence[FeatureExamples], cfg: AutointerpConfig, cache: ResponseCache | None) -> list[LLMRequest]:
    """The Claude requests a run would send: every first request the cache cannot answer.

    Where the interpreter's answer is cached, the real predictor prompt is checked too;
    otherwise the predictor prompt is estimated with a 400-character explanation. Retries of
    malformed answers are not planned (the live budget meter bounds them)."""

    def request(system: str, user: str, max_tokens: int) -> LLMRequest:
        return LLMRequest(cfg.claude_model, system, user, max_tokens, cfg.effort)

    def uncached(r: LLMRequest) -> bool:
        return cache is None or cache.get(r) is None

    out: list[LLMRequest] = []
    for f in features:
        p = interpreter_prompt([e.marked_text(cfg.mark_fraction) for e in f.explain])
        first = request(p.system, p.user, cfg.interpreter_max_tokens)
        explanation = None
        if uncached(first):
            out.append(first)
        else:
            try:
                explanation = parse_explanation(cache.get(first).text)  # type: ignore[union-attr]
            except MalformedAnswer as err:
                retry = with_retry_note(p, str(err))
                retry_request = request(retry.system, retry.user, cfg.interpreter_max_tokens)
                if uncached(retry_request):
                    out.append(retry_request)
                else:
                    try:
                        explanation = parse_explanation(cache.get(retry_request).text)  # type: ignore[union-attr]
                    except MalformedAnswer:
                        continue  # a recorded failure: no predictor call
        q = predictor_prompt(explanation or PLACEHOLDER_EXPLANATION, [e.plain_text() for e in f.score])
        predict = request(q.system, q.user, cfg.predictor_max_tokens)
        if explanation is None or uncached(predict):
            out.append(predict)
    return out
