"""The offline explainer names the most frequent firing tokens and predicts by matching them."""

from __future__ import annotations

import pytest

from ssae_utils.autointerp.examples import Example, FeatureExamples
from ssae_utils.autointerp.offline import OFFLINE_LABEL, OfflineInterpreter, OfflinePredictor, keywords_of
from ssae_utils.autointerp.scoring import score
from tests.autointerp.fakes import make_feature


def test_offline_explains_and_predicts_a_token_feature():
    feature = make_feature()
    interpreter = OfflineInterpreter(n_keywords=1)
    explained = interpreter.explain(feature)
    assert OFFLINE_LABEL in interpreter.label and explained.value.startswith(OFFLINE_LABEL)
    assert keywords_of(explained.value) == ["quark"]
    predicted = OfflinePredictor().predict(explained.value, feature)
    assert score(predicted.value, feature.truth).f1 == 1.0


def test_offline_counts_case_and_space_insensitively_and_breaks_ties_alphabetically():
    explain = [Example(0, [" Beta", " x"], [1.0, 0.0], "top", 1), Example(1, [" beta"], [1.0], "top", 1),
               Example(2, [" alpha"], [1.0], "top", 1), Example(3, [" gamma"], [1.0], "top", 1)]
    feature = FeatureExamples("M", 0, 4, explain, [], 1.0)
    assert keywords_of(OfflineInterpreter(n_keywords=2).explain(feature).value) == ["beta", "alpha"]
    silent = FeatureExamples("M", 0, 0, [Example(0, [" a"], [0.0], "top", 1)], [], 0.0)
    assert OfflineInterpreter().explain(silent).failure is not None
    with pytest.raises(ValueError):
        keywords_of("a Claude explanation")
