"""The Claude client: the only module that imports ``anthropic``.

The API key is read from ``ANTHROPIC_API_KEY`` when the client is built and handed to the SDK;
it is never stored on this object, shown in its repr, logged, or written anywhere. The SDK's
own retries are switched off so that retries are counted and paced here: rate-limit (429),
overload (529), other server errors (5xx) and connection errors are retried with
exponential backoff (a ``retry-after`` header wins, capped); any other error (bad request,
rejected key, unknown model) is raised at once.

Tests pass ``http_client=httpx2.Client(transport=httpx2.MockTransport(...))`` (the SDK 2.x
is built on ``httpx2``) so the real SDK code path runs without touching the network.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)

API_KEY_ENV = "ANTHROPIC_API_KEY"


class MissingAPIKey(RuntimeError):
    pass


class ClaudeCallFailed(RuntimeError):
    """A call that failed for good (retries used up, or an error that retrying cannot fix)."""


@dataclass(frozen=True)
class LLMRequest:
    model: str
    system: str
    user: str
    max_tokens: int
    effort: str | None = None

    def cache_fields(self) -> dict[str, Any]:
        """Everything that determines the answer (and nothing secret)."""
        return {"model": self.model, "system": self.system, "user": self.user,
                "max_tokens": self.max_tokens, "effort": self.effort}


@dataclass(frozen=True)
class LLMResponse:
    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None
    cached: bool = False


def api_key_available() -> bool:
    return bool(os.environ.get(API_KEY_ENV, "").strip())


class ClaudeClient:
    """Sends one request to Claude and returns its text, retrying transient errors."""

    def __init__(self, max_retries: int = 5, backoff_s: float = 2.0, backoff_max_s: float = 60.0, timeout_s: float = 120.0,
                 http_client: Any = None, sleep: Callable[[float], None] = time.sleep):
        import anthropic  # here, so that offline runs never import or construct the SDK

        key = os.environ.get(API_KEY_ENV, "").strip()
        if not key:
            raise MissingAPIKey(f"{API_KEY_ENV} is not set: export it to use Claude, or run the offline explainer (autointerp.mode=offline)")
        self._anthropic = anthropic
        # An explicit key stops the SDK from looking for credentials anywhere else.
        self._sdk = anthropic.Anthropic(api_key=key, max_retries=0, timeout=timeout_s, http_client=http_client)
        del key
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self.retries = 0  # transient errors retried, over this client's life

    def __repr__(self) -> str:
        return f"ClaudeClient(max_retries={self.max_retries}, key=<from {API_KEY_ENV}, not shown>)"

    def _retryable(self, err: Exception) -> bool:
        a = self._anthropic
        return isinstance(err, (a.RateLimitError, a.InternalServerError, a.APIConnectionError))

    def _wait(self, err: Exception, attempt: int) -> float:
        wait = self.backoff_s * (2 ** attempt)
        response = getattr(err, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        if header is not None:
            try:
                wait = float(header)
            except ValueError:
                pass
        return max(0.0, min(wait, self.backoff_max_s))

    def complete(self, request: LLMRequest) -> LLMResponse:
        kwargs: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens, "system": request.system,
                                  "messages": [{"role": "user", "content": request.user}]}
        if request.effort is not None:
            kwargs["output_config"] = {"effort": request.effort}
        for attempt in range(self.max_retries + 1):
            try:
                message = self._sdk.messages.create(**kwargs)
            except self._anthropic.AnthropicError as err:
                if not self._retryable(err):
                    raise ClaudeCallFailed(f"Claude refused the request: {type(err).__name__}: {err}") from err
                if attempt == self.max_retries:
                    raise ClaudeCallFailed(f"Claude still failing after {self.max_retries} retries: {type(err).__name__}") from err
                wait = self._wait(err, attempt)
                self.retries += 1
                log.warning("Claude %s (attempt %d of %d); retrying in %.1f s", type(err).__name__, attempt + 1,
                            self.max_retries + 1, wait)
                self._sleep(wait)
                continue
            # adaptive thinking may put thinking blocks before the text: read text blocks only
            text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
            usage = message.usage
            return LLMResponse(text, int(usage.input_tokens or 0), int(usage.output_tokens or 0), message.stop_reason)
        raise AssertionError("unreachable")
