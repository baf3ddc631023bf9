"""Claude behind the response cache and the budget meter: what the interpreter and predictor call.

A cached answer is returned without touching the client, the budget or the network; an
answer is cached as soon as it arrives, so an interrupted run keeps everything it paid for.
The client is built lazily, on the first request the cache cannot answer: a rerun with a
warm cache never constructs it.
"""

from __future__ import annotations

import threading
from typing import Callable

from ssae_utils.autointerp.budget import BudgetMeter
from ssae_utils.autointerp.cache import ResponseCache
from ssae_utils.autointerp.client import ClaudeClient, LLMRequest, LLMResponse


class CachedLLM:
    def __init__(self, model: str, effort: str | None, cache: ResponseCache, meter: BudgetMeter,
                 client_factory: Callable[[], ClaudeClient]):
        self.model = model
        self.effort = effort
        self.cache = cache
        self.meter = meter
        self._client_factory = client_factory
        self._client: ClaudeClient | None = None
        self._lock = threading.Lock()
        self.calls = 0  # requests sent to Claude (answered)
        self.cache_hits = 0

    def request(self, system: str, user: str, max_tokens: int) -> LLMRequest:
        return LLMRequest(self.model, system, user, max_tokens, self.effort)

    @property
    def client(self) -> ClaudeClient:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    @property
    def retries(self) -> int:
        return self._client.retries if self._client is not None else 0

    def complete(self, request: LLMRequest) -> LLMResponse:
        cached = self.cache.get(request)
        if cached is not None:
            with self._lock:
                self.cache_hits += 1
            return cached
        reserved = self.meter.reserve(request)
        tokens_in = tokens_out = 0
        try:
            response = self.client.complete(request)
            tokens_in, tokens_out = response.input_tokens, response.output_tokens
        finally:
            self.meter.settle(reserved, tokens_in, tokens_out)
        self.cache.put(request, response)
        with self._lock:
            self.calls += 1
        return response
