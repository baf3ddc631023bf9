"""The response cache: keyed by everything that determines the answer, atomic, damage detected."""

from __future__ import annotations

import json

from ssae_utils.autointerp.cache import ResponseCache, request_key
from ssae_utils.autointerp.client import LLMRequest, LLMResponse


def _req(**kw):
    base = dict(model="m", system="s", user="u", max_tokens=10, effort="low")
    return LLMRequest(**{**base, **kw})


def test_round_trip_and_keys(tmp_path):
    cache = ResponseCache(tmp_path)
    assert cache.get(_req()) is None
    cache.put(_req(), LLMResponse("answer", 5, 3, "end_turn"))
    hit = cache.get(_req())
    assert hit.text == "answer" and hit.cached and (hit.input_tokens, hit.output_tokens) == (5, 3)
    assert ResponseCache(tmp_path).get(_req()).text == "answer"  # survives a new process
    keys = {request_key(_req(**kw)) for kw in ({}, {"model": "m2"}, {"user": "u2"}, {"max_tokens": 11}, {"effort": None}, {"system": "t"})}
    assert len(keys) == 6
    assert len(cache) == 1 and not list(tmp_path.rglob("*.tmp"))


def test_damaged_entries_are_ignored_and_replaced(tmp_path):
    cache = ResponseCache(tmp_path)
    cache.put(_req(), LLMResponse("answer", 5, 3, "end_turn"))
    path = cache.path(_req())
    entry = json.loads(path.read_text())
    entry["response"]["text"] = "tampered"
    path.write_text(json.dumps(entry))
    assert cache.get(_req()) is None and cache.corrupt == 1
    path.write_text('{"truncated": ')
    assert cache.get(_req()) is None and cache.corrupt == 2
    cache.put(_req(), LLMResponse("again", 1, 1, "end_turn"))
    assert cache.get(_req()).text == "again"
