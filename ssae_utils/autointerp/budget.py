"""What Claude calls will cost, checked before the first call and enforced while calling.

Token counts are estimated from characters: 3 characters per token, more conservative than
the usual 4 for English, because the Claude 5 tokenizer yields ~30% more tokens for the same
text than earlier ones. Output is priced at each call's ``max_tokens`` (thinking included),
an upper bound: typical answers are far shorter. Prices are USD per million tokens.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass

from ssae_utils.autointerp.client import LLMRequest

CHARS_PER_TOKEN = 3.0

# USD per million (input, output) tokens, from Anthropic's published price list.
PRICES: dict[str, tuple[float, float]] = {
    "claude-sonnet-5-5": (2.0, 10.0),
    "claude-sonnet-5": (2.0, 10.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-sonnet-4-5-20250929": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-haiku-4-5-20251001": (1.0, 5.0),
    "claude-opus-5": (5.0, 25.0),
}


class BudgetExceeded(RuntimeError):
    pass


def price_of(model: str, input_per_mtok: float | None = None, output_per_mtok: float | None = None) -> tuple[float, float]:
    if input_per_mtok is not None and output_per_mtok is not None:
        return float(input_per_mtok), float(output_per_mtok)
    if model not in PRICES:
        raise ValueError(f"no price on file for {model!r}: set autointerp.price_input_per_mtok and "
                         f"autointerp.price_output_per_mtok (USD per million tokens); known: {sorted(PRICES)}")
    return PRICES[model]


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def request_input_tokens(request: LLMRequest) -> int:
    return estimate_tokens(request.system) + estimate_tokens(request.user) + 8  # + message framing


@dataclass
class CostEstimate:
    calls: int
    input_tokens: int
    output_tokens_max: int
    usd: float
    price_per_mtok: tuple[float, float]
    method: str = f"input: characters / {CHARS_PER_TOKEN:g}; output: max_tokens of each call (upper bound)"

    def to_dict(self) -> dict:
        return asdict(self)


def estimate_cost(requests: list[LLMRequest], price: tuple[float, float]) -> CostEstimate:
    tokens_in = sum(request_input_tokens(r) for r in requests)
    tokens_out = sum(r.max_tokens for r in requests)
    usd = (tokens_in * price[0] + tokens_out * price[1]) / 1e6
    return CostEstimate(len(requests), tokens_in, tokens_out, round(usd, 4), price)


def check_budget(estimate: CostEstimate, budget_usd: float, max_calls: int) -> None:
    """Refuse, before any call, a plan that would break the budget or the call limit."""
    if estimate.calls > max_calls:
        raise BudgetExceeded(f"{estimate.calls} Claude calls planned, more than autointerp.max_calls={max_calls}; "
                             "lower autointerp.n_features or raise max_calls")
    if estimate.usd > budget_usd:
        raise BudgetExceeded(f"the planned Claude calls may cost up to ${estimate.usd:.2f} ({estimate.calls} calls, "
                             f"{estimate.input_tokens} input and at most {estimate.output_tokens_max} output tokens), more "
                             f"than autointerp.budget_usd=${budget_usd:.2f}; lower autointerp.n_features or raise the budget")


class BudgetMeter:
    """Live guard, shared by the worker threads: a call starts only if the money spent so far
    plus that call's worst case stays within the budget, and the call count within max_calls
    (retries of malformed answers are not in the plan, so this is what bounds them)."""

    def __init__(self, budget_usd: float, max_calls: int, price: tuple[float, float]):
        self.budget_usd = budget_usd
        self.max_calls = max_calls
        self.price = price
        self.calls = 0
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.input_tokens = 0
        self.output_tokens = 0
        self._lock = threading.Lock()

    def _usd(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.price[0] + tokens_out * self.price[1]) / 1e6

    def reserve(self, request: LLMRequest) -> float:
        worst = self._usd(request_input_tokens(request), request.max_tokens)
        with self._lock:
            if self.calls >= self.max_calls:
                raise BudgetExceeded(f"autointerp.max_calls={self.max_calls} reached; results so far are cached")
            if self.spent_usd + self.reserved_usd + worst > self.budget_usd:
                raise BudgetExceeded(f"the next call could take the spend past autointerp.budget_usd=${self.budget_usd:.2f} "
                                     f"(spent ${self.spent_usd:.4f}); results so far are cached")
            self.calls += 1
            self.reserved_usd += worst
        return worst

    def settle(self, reserved: float, tokens_in: int, tokens_out: int) -> None:
        with self._lock:
            self.reserved_usd -= reserved
            self.spent_usd += self._usd(tokens_in, tokens_out)
            self.input_tokens += tokens_in
            self.output_tokens += tokens_out

    def to_dict(self) -> dict:
        return {"calls": self.calls, "spent_usd": round(self.spent_usd, 4), "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "budget_usd": self.budget_usd, "max_calls": self.max_calls}
