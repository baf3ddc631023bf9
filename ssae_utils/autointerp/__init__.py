"""Automated interpretability of SAE features (paper §3.5, Fig. 3b, Appendices E and F).

An interpreter explains a feature from its top-activating windows; a predictor, given only
that explanation, says which of 10 held-out windows activate it; the score is F1. Claude
does both when ANTHROPIC_API_KEY is set (cached on disk, within a budget); otherwise a
clearly labelled offline explainer does. Modules: config, examples, prompts, client (the
only user of the anthropic SDK), cache, budget, llm, explainers, offline, scoring, runner.
"""
