"""Stage 05 end to end on a tiny hand-built model: covered tokens, bucket shares, activation
counts and the tail table are known exactly; the figures are drawn from the saved results."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from ssae_utils.config import load_profile
from ssae_utils.data.documents import Document
from ssae_utils.paths import results_dir
from ssae_utils.pipeline import tail_tokens as stage05
from ssae_utils.results import FinetuneResults, SetupResults, TailTokensResults
from tests.results_files import embedded, finetune_row, write_stage_file

# vocabulary: 0 = BOS, words w1..w7; d_model 3. Token t reads +e_(t-1) for t = 1..3, -e_(t-4)
# for t = 4..6, and (0.5, 0.5, 0) for t = 7. The final norm scales dimension 1 by 10.
W_U = torch.tensor([[0.0, 1, 0, 0, -1, 0, 0, 0.5],
                    [0.0, 0, 1, 0, 0, -1, 0, 0.5],
                    [0.0, 0, 0, 1, 0, 0, -1, 0.0]])
NORM_SCALE = torch.tensor([1.0, 10.0, 1.0])
E0, E2, MINUS_E2 = [1.0, 0, 0], [0, 0, 1.0], [0, 0, -1.0]
TILTED = [1.0, 0.2, 0]  # through the norm scale (1, 2, 0): promotes w2, not w1
DECODERS = {"saes/gsae": [E0, E2], "saes/general": [E0, E2], "saes/dense": [TILTED, MINUS_E2],
            "saes/term500": [TILTED, MINUS_E2], "saes/term1e9": [E0, MINUS_E2]}
# test-split counts: w1 20, w2 1, w3 5, w5 3, w6 2 (w4, w7 never)
DOCS = ["w1 " * 10 + "w3 w3 w3", "w1 " * 10 + "w2 w3 w3", "w5 w5 w5 w6 w6"]


class Tokenizer:
    def encode(self, text, add_special_tokens=False):
        return [int(w[1:]) for w in text.split()]

    def decode(self, ids):
        return " ".join(f"w{i}" for i in ids)


class TinyLM:
    """Residual at the hook = the token's unembedding column, so feature firing is known exactly."""

    name, hook_name, fingerprint = "tiny-hand-built", "blocks.0.hook_resid_post", "tiny-hand-built-v1"
    d_model, vocab_size, bos_token_id, context_length = 3, 8, 0, 16

    def __init__(self):
        self.tokenizer = Tokenizer()
        self.W_U = W_U
        self.tl = SimpleNamespace(ln_final=SimpleNamespace(w=NORM_SCALE))

    def resid_at_hook(self, tokens):
        return W_U.T[tokens]


class HandSAE:
    def __init__(self, rows):
        self.W_dec = torch.tensor(rows)
        self.cfg = SimpleNamespace(d_in=3)

    def encode(self, x):
        return torch.relu(x @ self.W_dec.T)


def _upstream(cfg):
    rows = [finetune_row(strategy=s, tilt=t, val_l0=l0, ssae_folder=f)
            for s, t, l0, f in [("general", 0.0, 1.1, "saes/general"), ("dense", 0.0, 1.2, "saes/dense"),
                                ("dense", 500.0, 1.3, "saes/term500"), ("dense", 1e9, 1.4, "saes/term1e9")]]
    gsae = embedded(SetupResults)["gsae"]
    write_stage_file(cfg.name, SetupResults, gsae={**gsae, "folder": "saes/gsae", "training": {}})
    # the sweep these rows come from: TERM at t = 500 and 1e9 only (not the committed bracket)
    sweep = {**embedded(FinetuneResults)["sweep"], "term_tilts": [500.0, 1e9], "judged_tilt": None, "term_arms": []}
    write_stage_file(cfg.name, FinetuneResults, rows=rows, gsae={"physics": {"val": {"gsae": {"l0": 1.0}}}}, sweep=sweep)


@pytest.fixture
def tiny_stage(tmp_cache, monkeypatch):
    cfg = load_profile("smoke", {"tail.target_l0": 1.0, "tail.top_k": 1, "tail.tail_max_count": 3, "tail.count_tokens": 10_000,
                                 "tail.vocab_chunk": 3, "tail.feature_chunk": 1})
    _upstream(cfg)
    monkeypatch.setattr(stage05, "load_model", lambda _: TinyLM())
    monkeypatch.setattr(stage05, "load_matched_sae", lambda m: HandSAE(DECODERS[m.folder]))
    monkeypatch.setattr(stage05, "build_corpora", lambda *_: {"physics_test": [Document(f"d{i}", t, "toy") for i, t in enumerate(DOCS)]})
    return cfg


def test_stage05_on_a_hand_built_model(tiny_stage):
    results = stage05.run_tail_tokens(tiny_stage)
    saved = json.loads((results_dir("smoke") / stage05.RESULTS_FILE).read_text())
    assert saved["schema_version"] == TailTokensResults.SCHEMA_VERSION and saved["models"] == results.models and [m["label"] for m in saved["models"]] == [
        "GSAE", "General SSAE", "Dense SSAE", "Dense+TERM t=500", "Dense+TERM t=1e9"]
    assert saved["frequency"]["tokens"] == 31 and saved["frequency"]["types"] == 5
    assert [b["label"] for b in saved["frequency"]["buckets"]] == ["1", "2-3", "4-7", "8-15", "16-31"]
    per = saved["per_model"]
    shares = {k: [s["share"] for s in v["bucket_shares"]] for k, v in per.items()}
    assert shares["General SSAE"] == [0.0, 0.0, 1.0, None, 1.0]          # covers w1, w3
    assert shares["Dense SSAE"] == [1.0, 0.5, 0.0, None, 0.0]            # covers w2 (via the norm scale), w6
    assert shares["Dense+TERM t=1e9"] == [0.0, 0.5, 0.0, None, 1.0]      # covers w1, w6
    assert per["Dense SSAE"]["cumulative"]["y"] == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0])  # counts 1, 2, 3, 5, 20
    # activation counts: General f0 fires on w1 (20), f1 on w3 (5); Dense f0 on w1 and w2 (21), f1 on w6 (2)
    assert per["General SSAE"]["activation_counts"] == [20, 5] and per["Dense SSAE"]["activation_counts"] == [21, 2]
    assert per["Dense SSAE"]["activation_summary"]["dead_features"] == 0
    diff = saved["count_differences"]["per_model"]["Dense SSAE"]
    assert diff["mean"] == pytest.approx(-1.0) and diff["share_positive"] == 0.5 and sum(diff["counts"]) == 2
    assert set(saved["count_differences"]["per_model"]) == {"Dense SSAE", "Dense+TERM t=500", "Dense+TERM t=1e9"}
    tail = saved["tail_tokens"]
    assert [(r["token"], r["count"], r["covered_by"]) for r in tail["rows"]] == [
        ("w2", 1, ["Dense SSAE", "Dense+TERM t=500"]), ("w6", 2, ["Dense SSAE", "Dense+TERM t=500", "Dense+TERM t=1e9"])]
    assert per["Dense+TERM t=500"]["logit_lens_from_cache"]  # same decoder as Dense: computed once
    assert saved["activation_sample"]["tokens"] == 31 and saved["logit_lens"]["final_norm"] == "scale"

    from ssae_utils.plots.tail_tokens import plot_tail_tokens

    pngs = plot_tail_tokens(results_dir("smoke") / stage05.RESULTS_FILE)
    assert [p.stem for p in pngs] == ["fig2a", "fig2b", "fig3a", "fig7", "05_decoder_cosines"]
    for png in pngs:
        assert png.with_suffix(".pdf").exists()
        assert json.loads(png.with_suffix(".meta.json").read_text())["notebook"] == "05_tail_tokens"
    assert [r["model"] for r in stage05.coverage_table(saved)][0] == "GSAE"
    assert stage05.bucket_table(saved)[0]["Dense SSAE"] == 1.0


def test_missing_upstream_results_name_the_notebook(tmp_cache):
    cfg = load_profile("smoke")
    with pytest.raises(FileNotFoundError, match="--only 00"):
        stage05.run_tail_tokens(cfg)
    (results_dir("smoke") / "00_setup.json").write_text("{}")
    with pytest.raises(ValueError, match=r"00_setup.json has no schema_version.*--only 00"):
        stage05.run_tail_tokens(cfg)
    write_stage_file("smoke", SetupResults)
    with pytest.raises(FileNotFoundError, match="--only 03"):
        stage05.run_tail_tokens(cfg)


def test_sae_for_another_model_is_refused(tiny_stage, monkeypatch):
    monkeypatch.setattr(stage05, "load_matched_sae", lambda m: SimpleNamespace(cfg=SimpleNamespace(d_in=5)))
    with pytest.raises(ValueError, match="d_in=5"):
        stage05.run_tail_tokens(tiny_stage)
