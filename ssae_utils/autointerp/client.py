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


class ClaudeUnavailable(RuntimeError):
    """Claude cannot be used at all (no network, key refused, unknown model): the stage stops
    before any feature is sent, and earlier results stay as they were."""


# SDK error class name -> what it means for the user (first match along the class's MRO)
CAUSES = {
    "APITimeoutError": "network: the API did not answer in time",
    "APIConnectionError": "network unreachable: no connection to the Claude API",
    "AuthenticationError": "authentication: the API key was refused",
    "PermissionDeniedError": "permission denied for this API key",
    "NotFoundError": "unknown model (check autointerp.claude_model)",
    "RateLimitError": "rate limit: too many requests for this key",
    "InternalServerError": "Claude's servers are failing or overloaded",
    "BadRequestError": "the request was refused as malformed",
}


def cause_of(err: BaseException) -> str:
    for cls in type(err).__mro__:
        if cls.__name__ in CAUSES:
            return CAUSES[cls.__name__]
    return type(err).__name__


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

    def probe(self, model: str, attempts: int = 2, timeout_s: float = 15.0) -> None:
        """One tiny request (1 output token) before a run: no network, a refused key or an
        unknown model stop the stage in seconds with the cause named, instead of every
        feature burning its retries (minutes) and the run ending with nothing."""
        for attempt in range(attempts):
            try:
                self._sdk.with_options(timeout=timeout_s).messages.create(
                    model=model, max_tokens=1, messages=[{"role": "user", "content": "Reply with one word: ok"}])
                return
            except self._anthropic.AnthropicError as err:
                if self._retryable(err) and attempt + 1 < attempts:
                    self._sleep(min(self.backoff_s, 2.0))
                    continue
                raise ClaudeUnavailable(
                    f"Claude is unavailable ({cause_of(err)}; {type(err).__name__}): no feature was sent and the previous "
                    f"results were kept. Fix the network or ANTHROPIC_API_KEY, or run without Claude: "
                    f"--set autointerp.mode=offline") from err

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
                    raise ClaudeCallFailed(f"Claude refused the request ({cause_of(err)}): {type(err).__name__}: {err}") from err
                if attempt == self.max_retries:
                    raise ClaudeCallFailed(f"Claude still failing after {self.max_retries} retries ({cause_of(err)}): "
                                           f"{type(err).__name__}") from err
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
