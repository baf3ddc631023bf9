"""The response cache: keyed by everything that determines the answer, atomic, damage detected."""

from __future__ import annotations

import json

import pytest

from ssae_utils.autointerp.cache import ResponseCache, _checksum, request_key
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


@pytest.mark.parametrize("field, value", [("text", 42), ("text", None), ("input_tokens", -1), ("output_tokens", "3"),
                                          ("output_tokens", 2.5), ("input_tokens", True), ("stop_reason", 7),
                                          ("format", 0)])
def test_entries_of_the_wrong_schema_are_ignored_even_with_a_matching_checksum(tmp_path, field, value, caplog):
    cache = ResponseCache(tmp_path)
    cache.put(_req(), LLMResponse("answer", 5, 3, "end_turn"))
    path = cache.path(_req())
    entry = json.loads(path.read_text())
    if field == "format":
        entry["format"] = value
    else:
        entry["response"][field] = value
        entry["checksum"] = _checksum(entry["request"], entry["response"])   # consistent: only the schema catches it
    path.write_text(json.dumps(entry))
    assert cache.get(_req()) is None and cache.corrupt == 1
    assert f"damaged autointerp cache entry {path}" in caplog.text


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"\xff\xfe" + b[2:], lambda b: b""])
def test_truncated_or_garbled_entries_are_ignored(tmp_path, damage):
    cache = ResponseCache(tmp_path)
    cache.put(_req(), LLMResponse("answer", 5, 3, "end_turn"))
    path = cache.path(_req())
    path.write_bytes(damage(path.read_bytes()))
    assert cache.get(_req()) is None and cache.corrupt == 1
