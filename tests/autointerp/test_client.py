"""The Claude client through the real anthropic SDK, over a fake transport (no network)."""

from __future__ import annotations

import httpx2
import pytest

from ssae_utils.autointerp.client import ClaudeCallFailed, ClaudeClient, LLMRequest, MissingAPIKey
from tests.autointerp.fakes import FakeClaude, error, message

SENTINEL = "fake-key-for-tests-SENTINEL-9c1f0e"
REQUEST = LLMRequest("claude-test", "system", "user", 64, "low")


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)


def test_success_sends_the_key_and_returns_text_only(key):
    fake = FakeClaude(lambda n, body: httpx2.Response(200, json=message("EXPLANATION: x", input_tokens=7, output_tokens=3)))
    client = ClaudeClient(http_client=fake.http_client())
    response = client.complete(REQUEST)
    assert response.text == "EXPLANATION: x"  # the thinking block is left out
    assert (response.input_tokens, response.output_tokens, response.stop_reason) == (7, 3, "end_turn")
    sent = fake.requests[0]
    # the SDK 2.x sends the key as a bearer token (1.x used x-api-key)
    assert SENTINEL in sent.headers.get("authorization", "") + sent.headers.get("x-api-key", "")
    assert sent.url.path.endswith("/v1/messages")
    body = fake.bodies[0]
    assert body["model"] == "claude-test" and body["system"] == "system" and body["max_tokens"] == 64
    assert body["messages"] == [{"role": "user", "content": "user"}] and body["output_config"] == {"effort": "low"}
    assert SENTINEL not in repr(client)


def test_rate_limit_and_overload_are_retried_with_backoff(key):
    def script(n, body):
        if n == 0:
            return error(429, "rate_limit_error", {"retry-after": "3"})
        if n == 1:
            return error(529, "overloaded_error")
        return httpx2.Response(200, json=message("ok"))

    fake, waits = FakeClaude(script), []
    client = ClaudeClient(max_retries=3, backoff_s=0.5, backoff_max_s=10, http_client=fake.http_client(), sleep=waits.append)
    assert client.complete(REQUEST).text == "ok"
    assert len(fake.requests) == 3 and client.retries == 2
    assert waits == [3.0, 1.0]  # retry-after wins; then 0.5 * 2**1


def test_retries_run_out_and_fatal_errors_are_not_retried(key):
    fake = FakeClaude(lambda n, body: error(529, "overloaded_error"))
    client = ClaudeClient(max_retries=2, backoff_s=0, http_client=fake.http_client(), sleep=lambda s: None)
    with pytest.raises(ClaudeCallFailed, match="after 2 retries"):
        client.complete(REQUEST)
    assert len(fake.requests) == 3
    bad = FakeClaude(lambda n, body: error(400, "invalid_request_error"))
    client = ClaudeClient(max_retries=5, backoff_s=0, http_client=bad.http_client(), sleep=lambda s: None)
    with pytest.raises(ClaudeCallFailed, match="refused"):
        client.complete(REQUEST)
    assert len(bad.requests) == 1


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match="ANTHROPIC_API_KEY"):
        ClaudeClient()
