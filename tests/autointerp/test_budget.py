"""Cost estimates, the budget check before calling, and the live meter."""

from __future__ import annotations

import pytest

from ssae_utils.autointerp.budget import (
    PRICES,
    BudgetExceeded,
    BudgetMeter,
    check_budget,
    estimate_cost,
    price_of,
    request_input_tokens,
)
from ssae_utils.autointerp.client import LLMRequest
from ssae_utils.autointerp.config import DEFAULT_CLAUDE_MODEL


def _request(chars=3000, max_tokens=1000):
    return LLMRequest("m", "s" * 30, "u" * chars, max_tokens)


def test_estimate_prices_input_by_characters_and_output_by_max_tokens():
    est = estimate_cost([_request(), _request()], (2.0, 10.0))
    per_call_in = request_input_tokens(_request())
    assert per_call_in == 1000 + 10 + 8
    assert est.calls == 2 and est.input_tokens == 2 * per_call_in and est.output_tokens_max == 2000
    assert est.usd == pytest.approx((2 * per_call_in * 2 + 2000 * 10) / 1e6, abs=1e-4)


def test_prices_known_overridden_or_refused():
    assert DEFAULT_CLAUDE_MODEL in PRICES
    assert price_of("claude-new", 1.5, 7.0) == (1.5, 7.0)
    with pytest.raises(ValueError, match="price_input_per_mtok"):
        price_of("claude-new")


def test_check_budget_refuses_over_budget_or_over_call_limit():
    est = estimate_cost([_request()] * 10, (2.0, 10.0))
    check_budget(est, budget_usd=1.0, max_calls=10)
    with pytest.raises(BudgetExceeded, match="budget_usd"):
        check_budget(est, budget_usd=est.usd / 2, max_calls=10)
    with pytest.raises(BudgetExceeded, match="max_calls"):
        check_budget(est, budget_usd=1.0, max_calls=9)


def test_meter_reserves_worst_case_and_settles_actual_spend():
    meter = BudgetMeter(budget_usd=0.025, max_calls=5, price=(2.0, 10.0))
    reserved = meter.reserve(_request())  # worst case ~ $0.012
    meter.settle(reserved, 500, 100)  # actual: $0.002
    assert meter.spent_usd == pytest.approx(0.002) and meter.calls == 1
    meter.reserve(_request())
    with pytest.raises(BudgetExceeded):  # a third worst case would pass the budget
        meter.reserve(_request())
    small = BudgetMeter(budget_usd=10.0, max_calls=1, price=(2.0, 10.0))
    small.reserve(_request())
    with pytest.raises(BudgetExceeded, match="max_calls"):
        small.reserve(_request())
