"""Knobs of automated interpretability (paper §3.5, Fig. 3b, Appendices E and F)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ssae_utils.validation import require as _require

# A current Claude Sonnet (the anthropic SDK 2.10 lists it in ``anthropic.types.ModelParam``;
# ``claude-sonnet-4-5`` is marked deprecated there). The paper used Claude 3.5 Sonnet.
DEFAULT_CLAUDE_MODEL = "claude-sonnet-5-5"
DEFAULT_TARGET_L0 = 100.0  # paper §3.3-3.5: models compared at L0 ~ 100

@dataclass
class AutointerpConfig:
    """Which features are explained, with which examples, by whom, and at what cost."""

    # "auto": Claude when ANTHROPIC_API_KEY is set, else the offline explainer.
    mode: Literal["auto", "claude", "offline"] = "auto"
    claude_model: str = DEFAULT_CLAUDE_MODEL
    # Sonnet 5.x thinks adaptively; low effort keeps the (billed) thinking short on this easy task.
    effort: Literal["low", "medium", "high"] | None = "low"

    # compared models at one validation L0: labels of ssae_utils.analysis.matched.compared_models
    # (GSAE, General SSAE, Dense SSAE, Dense+TERM t=<each tilt of the sweep>; "TERM" = the first)
    domain: str | None = None  # None: the profile's first domain
    split: str = "test"
    # "TERM": the first TERM model the sweep trained on the domain (none if it trained none),
    # so any term_tilts work without editing this list (the paper's t = 500 by default);
    # "TERM arms": every other TERM arm of the sweep, with ``arm_features`` features each
    models: tuple[str, ...] = ("GSAE", "General SSAE", "Dense SSAE", "TERM", "TERM arms")
    target_l0: float | None = None  # None: the tail section's target if the profile has one, else 100

    # features and examples
    n_features: int = 20  # per model
    # per model that "TERM arms" brings in (the arms the scorecard does not judge: shown beside
    # the judged one with a wider interval, at a fraction of the cost)
    arm_features: int = 8
    table_features: int = 10  # the first this-many active features (by index) form the Appendix E table
    n_explain: int = 10  # top-activating windows shown to the interpreter
    n_quantile: int = 5  # scoring windows, one per quantile bin of the remaining firing windows
    n_random: int = 5  # scoring windows where the feature does not fire
    window_tokens: int = 32  # a "sequence" is a non-overlapping window of this many tokens of a context
    mark_fraction: float = 0.0  # mark tokens whose activation exceeds this fraction of the window's max
    max_docs: int | None = None  # documents of the split to use (None = all)
    offline_keywords: int = 3  # marked tokens the offline explainer names

    # calls, cost and retries (Claude only)
    budget_usd: float = 2.0
    max_calls: int = 400
    concurrency: int = 4
    max_retries: int = 5  # per call, on rate-limit / overload / server / connection errors
    backoff_s: float = 2.0  # first wait; doubles per retry (a retry-after header wins, capped)
    backoff_max_s: float = 60.0
    timeout_s: float = 120.0
    interpreter_max_tokens: int = 1024  # thinking + answer; also the worst case the budget assumes
    predictor_max_tokens: int = 1024
    # USD per million tokens for a model missing from ssae_utils.autointerp.budget.PRICES
    price_input_per_mtok: float | None = None
    price_output_per_mtok: float | None = None

    bootstrap_samples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        self.models = tuple(self.models)
        _require(len(self.models) >= 1 and len(set(self.models)) == len(self.models), "autointerp.models must be distinct and non-empty")
        _require(bool(self.claude_model.strip()), "autointerp.claude_model must name a model")
        _require(self.target_l0 is None or self.target_l0 > 0, "autointerp.target_l0 must be positive")
        for name in ("n_features", "arm_features", "n_explain", "n_quantile", "n_random", "window_tokens", "offline_keywords",
                     "max_calls", "concurrency", "interpreter_max_tokens", "predictor_max_tokens", "bootstrap_samples"):
            _require(getattr(self, name) >= 1, f"autointerp.{name} must be >= 1")
        _require(self.table_features >= 1, "autointerp.table_features must be >= 1")
        _require(0.0 <= self.mark_fraction < 1.0, "autointerp.mark_fraction must be in [0, 1)")
        _require(self.max_docs is None or self.max_docs >= 1, "autointerp.max_docs must be None or >= 1")
        _require(self.budget_usd >= 0, "autointerp.budget_usd must be >= 0")
        _require(self.max_retries >= 0 and self.backoff_s >= 0 and self.backoff_max_s >= 0 and self.timeout_s > 0,
                 "autointerp retry settings must be non-negative (timeout positive)")
        prices = (self.price_input_per_mtok, self.price_output_per_mtok)
        _require((prices[0] is None) == (prices[1] is None), "set both autointerp.price_input_per_mtok and price_output_per_mtok, or neither")
        _require(all(p is None or p >= 0 for p in prices), "autointerp prices must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def smoke(cls) -> "AutointerpConfig":
        # tiny model and corpora: short windows so that a feature has enough of them
        return cls(n_features=4, arm_features=2, table_features=4, window_tokens=8, concurrency=2, budget_usd=0.5, max_calls=100)

    @classmethod
    def embedded(cls) -> "AutointerpConfig":
        # 4 models x 20 features + 5 other TERM arms x 8 features, 2 calls each: <= $2.9 even
        # if every answer used its whole max_tokens (~$0.024 a feature; the estimate in
        # 06_autointerp.json; typical spend is far lower). Before the arms: 80 features, $2.
        return cls(n_features=20, arm_features=8, budget_usd=3.0, max_calls=400)

    @classmethod
    def paper(cls) -> "AutointerpConfig":
        # 4 models x 100 features + the t = 1e9 arm x 20: ~$10.2 at most (~$0.024 a feature)
        return cls(n_features=100, arm_features=20, budget_usd=11.0, max_calls=1200, concurrency=8)
