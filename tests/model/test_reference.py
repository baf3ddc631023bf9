from __future__ import annotations

from ssae_utils.model.reference import compare_with_hf


def test_tiny_model_matches_its_hf_source(tiny_lm, tiny_cfg, tiny_cache):
    texts = ["the quick brown fox jumps over the lazy dog " * 6, "energy momentum field wave particle " * 8]
    with tiny_cache():
        facts = compare_with_hf(tiny_cfg, tiny_lm, texts)
    assert facts["hf_contexts"] >= 1
    assert facts["hf_resid_max_rel_diff"] < 1e-4
    assert facts["hf_ce_abs_diff"] < 1e-4
