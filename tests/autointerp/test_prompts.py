"""Prompt builders follow the protocol; parsers accept only the required format."""

from __future__ import annotations

import pytest

from ssae_utils.autointerp.prompts import (
    MalformedAnswer,
    interpreter_prompt,
    parse_explanation,
    parse_predictions,
    predictor_prompt,
    with_retry_note,
)


def test_interpreter_prompt_shows_marked_examples_and_asks_for_one_line():
    p = interpreter_prompt(["the <<quark>> model", "a <<quark>>"])
    assert "<<" in p.system and "EXPLANATION:" in p.system
    assert "Excerpt 1: the <<quark>> model\nExcerpt 2: a <<quark>>" in p.user
    with pytest.raises(ValueError):
        interpreter_prompt([])


def test_predictor_prompt_has_explanation_and_count():
    p = predictor_prompt("the word quark", ["a", "b", "c"])
    assert "Property: the word quark" in p.user and "Excerpt 3: c" in p.user and "list of 3" in p.user
    assert "Python list" in p.system
    with pytest.raises(ValueError):
        predictor_prompt("  ", ["a"])
    retry = with_retry_note(p, "bad")
    assert retry.system == p.system and retry.user.startswith(p.user) and "bad" in retry.user


@pytest.mark.parametrize("text, expected", [
    ("Some thinking.\n\nEXPLANATION: the word quark\n", "the word quark"),
    ("EXPLANATION:   commas in lists", "commas in lists"),
    ("explanation: lower case tag", "lower case tag"),
])
def test_parse_explanation_accepts_final_line(text, expected):
    assert parse_explanation(text) == expected


@pytest.mark.parametrize("text", ["", "   \n", "EXPLANATION: quark\nand more text", "The feature is quark.", "EXPLANATION:",
                                  "EXPLANATION: " + "x" * 1001])
def test_parse_explanation_rejects(text):
    with pytest.raises(MalformedAnswer):
        parse_explanation(text)


def test_parse_predictions_strict():
    assert parse_predictions("[1, 0, 1]", 3) == [1, 0, 1]
    assert parse_predictions("  [0,0,1]\n", 3) == [0, 0, 1]
    for bad in ["[1, 0]", "[1, 0, 2]", "Answer: [1, 0, 1]", "```python\n[1, 0, 1]\n```", "[1, 0, 1].", "(1, 0, 1)",
                "[True, False, True]", "[1.0, 0, 1]", "[1, 0,, 1]", "", "[1, 0, 1] [1]"]:
        with pytest.raises(MalformedAnswer):
            parse_predictions(bad, 3)
