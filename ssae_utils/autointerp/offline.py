"""The offline explainer and predictor, used when no API key is set. Clearly not an LLM.

Explainer: the ``n_keywords`` tokens most often marked (firing) in the top-activating
windows, compared case-insensitively without surrounding spaces. Predictor: a window is
predicted to activate the feature when it contains one of those tokens. Its F1 therefore
measures how well a feature is described by "fires on these tokens", a floor for what an
LLM's explanation can do, not the paper's measurement.
"""

from __future__ import annotations

import json
from collections import Counter

from ssae_utils.autointerp.examples import FeatureExamples
from ssae_utils.autointerp.explainers import Answer

OFFLINE_LABEL = "offline explainer"
_PREFIX = "offline explainer: fires on the tokens "


def normalize(token: str) -> str:
    stripped = token.strip().lower()
    return stripped if stripped else token  # keep whitespace-only tokens as they are


class OfflineInterpreter:
    label = OFFLINE_LABEL + " (top tokens; predictor: token match)"

    def __init__(self, n_keywords: int = 3, mark_fraction: float = 0.0):
        if n_keywords < 1:
            raise ValueError("n_keywords must be >= 1")
        self.n_keywords = n_keywords
        self.mark_fraction = mark_fraction

    def explain(self, feature: FeatureExamples) -> Answer:
        counts = Counter(normalize(t) for e in feature.explain for t in e.marked_tokens(self.mark_fraction))
        if not counts:
            return Answer(None, "no marked tokens in the top windows", 1)
        # ties broken alphabetically, so the explanation is deterministic
        keywords = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: self.n_keywords]]
        return Answer(_PREFIX + json.dumps(keywords, ensure_ascii=False), None, 1)


def keywords_of(explanation: str) -> list[str]:
    if not explanation.startswith(_PREFIX):
        raise ValueError(f"not an offline explanation: {explanation[:60]!r}")
    keywords = json.loads(explanation[len(_PREFIX):])
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise ValueError(f"bad keyword list in {explanation!r}")
    return keywords


class OfflinePredictor:
    def predict(self, explanation: str, feature: FeatureExamples) -> Answer:
        keywords = set(keywords_of(explanation))
        return Answer([int(any(normalize(t) in keywords for t in e.tokens)) for e in feature.score], None, 1)
