"""Explain -> predict -> score through the cached Claude path, over a fake transport."""

from __future__ import annotations

import httpx2
import pytest

from ssae_utils.autointerp.budget import BudgetExceeded, BudgetMeter
from ssae_utils.autointerp.cache import ResponseCache
from ssae_utils.autointerp.client import ClaudeClient
from ssae_utils.autointerp.config import AutointerpConfig
from ssae_utils.autointerp.explainers import ClaudeInterpreter, ClaudePredictor
from ssae_utils.autointerp.llm import CachedLLM
from ssae_utils.autointerp.prompts import INTERPRETER_SYSTEM, PREDICTOR_SYSTEM
from ssae_utils.autointerp.runner import planned_requests, run_features
from tests.autointerp.fakes import FakeClaude, make_feature, message


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "fake-key-for-tests-runner")


def _pipeline(tmp_path, fake, budget=10.0, max_calls=100):
    def factory():
        if fake is None:
            raise AssertionError("the client must not be built")
        return ClaudeClient(backoff_s=0, http_client=fake.http_client(), sleep=lambda s: None)

    llm = CachedLLM("claude-test", "low", ResponseCache(tmp_path / "cache"), BudgetMeter(budget, max_calls, (2.0, 10.0)), factory)
    return llm, ClaudeInterpreter(llm, 256, 0.0), ClaudePredictor(llm, 256)


def test_features_are_explained_predicted_and_scored_then_cached(tmp_path):
    features = [make_feature("M", i) for i in range(3)]
    fake = FakeClaude()
    llm, interpreter, predictor = _pipeline(tmp_path, fake)
    results = run_features(features, interpreter, predictor, 0.0, concurrency=2)
    assert [r.feature for r in results] == [0, 1, 2]
    assert all(r.f1 == 1.0 and r.explanation == "the word 'quark'" and r.failure is None for r in results)
    assert len(fake.requests) == 6 and llm.calls == 6 and llm.cache_hits == 0
    assert llm.meter.spent_usd == pytest.approx(6 * (100 * 2 + 20 * 10) / 1e6)
    # a rerun with a warm cache: no client built, no request sent, same results
    llm2, interpreter2, predictor2 = _pipeline(tmp_path, None)
    again = run_features(features, interpreter2, predictor2, 0.0, concurrency=2)
    assert llm2.calls == 0 and llm2.cache_hits == 6 and [r.to_dict() for r in again] == [r.to_dict() for r in results]
    cfg = AutointerpConfig(claude_model="claude-test", interpreter_max_tokens=256, predictor_max_tokens=256)
    assert planned_requests(features, cfg, llm2.cache) == []
    assert len(planned_requests(features, cfg, None)) == 6


def test_malformed_answer_is_retried_once_then_recorded_as_failure(tmp_path):
    seen = {"interpreter": 0}

    def script(n, body):
        if body["system"] == INTERPRETER_SYSTEM:
            seen["interpreter"] += 1
            if seen["interpreter"] == 1:  # first interpreter answer lacks the final line
                return httpx2.Response(200, json=message("It is about quarks."))
            return None
        if body["system"] == PREDICTOR_SYSTEM:
            return httpx2.Response(200, json=message("I think: [1, 0, 1]"))  # never a bare list
        return None

    fake = FakeClaude(script)
    llm, interpreter, predictor = _pipeline(tmp_path, fake)
    [result] = run_features([make_feature()], interpreter, predictor, 0.0)
    assert result.explanation == "the word 'quark'" and result.attempts == {"interpreter": 2, "predictor": 2}
    assert result.f1 is None and result.score is None and result.predictions is None
    assert result.failure.startswith("predictor: malformed answer twice")
    assert len(fake.requests) == 4
    retry = fake.bodies[1]["messages"][0]["content"]
    assert "rejected" in retry and "EXPLANATION" in retry  # the retry says what was wrong


def test_budget_stops_before_any_request(tmp_path):
    fake = FakeClaude()
    llm, interpreter, predictor = _pipeline(tmp_path, fake, budget=0.001)
    with pytest.raises(BudgetExceeded):
        run_features([make_feature()], interpreter, predictor, 0.0)
    assert fake.requests == []


def test_plan_uses_the_cached_explanation_for_the_predictor_prompt(tmp_path):
    features = [make_feature("M", 0)]
    cfg = AutointerpConfig(claude_model="claude-test", interpreter_max_tokens=256, predictor_max_tokens=256)
    fake = FakeClaude()
    llm, interpreter, _ = _pipeline(tmp_path, fake)
    interpreter.explain(features[0])  # only the interpreter's answer is cached
    [planned] = planned_requests(features, cfg, llm.cache)
    assert planned.system == PREDICTOR_SYSTEM and "Property: the word 'quark'" in planned.user
