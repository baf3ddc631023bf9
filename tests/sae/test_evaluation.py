from __future__ import annotations

import pytest
import torch

from ssae_utils.sae.evaluation import ce_loss_recovered, reconstruction_stats, sae_splice, spliced_ce, zero_splice
from ssae_utils.sae.outliers import NormThreshold
from tests.fakes import CausalToyModel


class IdentitySAE:
    """Encodes x as [relu(x), relu(-x)]: exact reconstruction, L0 = number of non-zeros."""

    def __init__(self, d):
        self.d = d

    def encode(self, x):
        return torch.cat([x.clamp(min=0), (-x).clamp(min=0)], dim=-1)

    def decode(self, f):
        return f[..., : self.d] - f[..., self.d :]


class ScaleSAE(IdentitySAE):
    def decode(self, f):
        return 0.5 * super().decode(f)


def test_reconstruction_stats_on_hand_made_saes():
    x = torch.tensor([[1.0, 0.0, -2.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    exact = reconstruction_stats(IdentitySAE(3), x, batch_size=2)
    assert exact.fvu == 0 and exact.l0 == pytest.approx((2 + 1 + 3 + 0) / 4)
    assert exact.dead_features == 2  # relu(-x) for dims 1 and 2... dim 0 never negative, dim 1 never negative
    half = reconstruction_stats(ScaleSAE(3), x)
    expected_fvu = float(((0.5 * x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert half.fvu == pytest.approx(expected_fvu)
    with pytest.raises(ValueError, match="n_tokens, d_in"):
        reconstruction_stats(IdentitySAE(3), x.unsqueeze(0))


def test_identity_splice_leaves_ce_unchanged_and_zeros_raise_it():
    model = CausalToyModel(d_model=8)
    tokens = torch.randint(2, 97, (6, 1)).repeat(1, 10)  # repetitive rows: the toy model predicts them
    tokens[:, 0] = 1
    lengths = torch.tensor([10, 10, 7, 10, 4, 10])
    ce = spliced_ce(model, tokens, lengths, {"sae": sae_splice(IdentitySAE(8)), "zero": zero_splice()}, batch_size=4)
    assert ce["sae"] == pytest.approx(ce["clean"], abs=1e-6)
    assert ce["zero"] > ce["clean"]
    assert ce_loss_recovered(ce["clean"], ce["sae"], ce["zero"]) == pytest.approx(1.0)


def test_padding_positions_do_not_count():
    model = CausalToyModel(d_model=8)
    tokens = torch.randint(2, 97, (2, 10))
    tokens[:, 0] = 1
    full = spliced_ce(model, tokens[:1, :6], torch.tensor([6]), {})
    padded = tokens[:1].clone()
    padded[0, 6:] = 1
    assert spliced_ce(model, padded, torch.tensor([6]), {})["clean"] == pytest.approx(full["clean"])


def test_splice_keeps_bos_and_outliers():
    resid = torch.ones(1, 4, 3)
    resid[0, 2] *= 100
    threshold = NormThreshold(median_norm=float(torch.ones(3).norm()), factor=10.0)
    out = sae_splice(ScaleSAE(3), threshold)(resid)
    assert torch.equal(out[0, 0], resid[0, 0]) and torch.equal(out[0, 2], resid[0, 2])
    torch.testing.assert_close(out[0, 1], 0.5 * resid[0, 1])


def test_ce_loss_recovered_formula():
    assert ce_loss_recovered(2.0, 2.5, 12.0) == pytest.approx(0.95)


def test_wrong_d_in_is_reported_clearly():
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=16, d_sae=32))
    with pytest.raises(ValueError, match="d_model=8 but the SAE expects d_in=16"):
        reconstruction_stats(sae, torch.randn(10, 8))


def test_feature_firing_rates_count_tokens_per_feature():
    from ssae_utils.sae.evaluation import feature_firing_rates

    x = torch.tensor([[1.0, 0.0], [2.0, -1.0], [0.0, 0.0], [1.0, 1.0]])
    assert feature_firing_rates(IdentitySAE(2), x, batch_size=3) == [0.75, 0.25, 0.0, 0.25]


def test_clean_ce_can_be_left_out_without_changing_the_splices():
    model = CausalToyModel(d_model=8)
    tokens = torch.randint(2, 97, (3, 8))
    tokens[:, 0] = 1
    lengths = torch.tensor([8, 5, 8])
    with_clean = spliced_ce(model, tokens, lengths, {"zero": zero_splice()})
    without = spliced_ce(model, tokens, lengths, {"zero": zero_splice()}, include_clean=False)
    assert set(without) == {"zero"} and without["zero"] == pytest.approx(with_clean["zero"])


def test_threshold_from_gsae_training_info():
    info = {"outliers": {"median_norm": 10.0}}
    threshold = NormThreshold.from_training_info(info, 3.0)
    assert threshold.limit == 30.0
    assert NormThreshold.from_training_info(info, None) is None          # outliers kept
    assert NormThreshold.from_training_info({}, 3.0) is None             # e.g. a pretrained SAE


def test_batches_sorted_and_trimmed_give_the_per_context_mean():
    # contexts of mixed lengths in mixed order: the result must equal the token-weighted mean
    # of each context's CE computed alone on its unpadded tokens
    model = CausalToyModel(d_model=8)
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(2, 97, (5, 12), generator=gen)
    tokens[:, 0] = 1
    lengths = torch.tensor([5, 12, 3, 9, 12])
    splices = {"half": sae_splice(ScaleSAE(8))}
    got = spliced_ce(model, tokens, lengths, splices, batch_size=2)
    for name in ("clean", "half"):
        total = count = 0.0
        for row, n in zip(tokens, lengths.tolist()):
            alone = spliced_ce(model, row[None, :n], torch.tensor([n]), splices)[name]
            total, count = total + alone * (n - 1), count + (n - 1)
        assert got[name] == pytest.approx(total / count, rel=1e-6)


class Float64Toy(CausalToyModel):
    """The toy model in float64: the per-document sums then add up to the mean exactly."""

    def __init__(self, d_model: int = 8):
        super().__init__(d_model)
        self.embed, self.unembed = self.embed.double(), self.unembed.double()


def _mixed_contexts(seed: int = 4):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, 97, (7, 12), generator=gen)
    tokens[:, 0] = 1
    lengths = torch.tensor([5, 12, 3, 9, 12, 2, 7])
    doc_index = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    return tokens, lengths, doc_index


def test_per_document_sums_add_up_to_the_mean_and_leave_it_unchanged():
    from ssae_utils.sae.evaluation import spliced_ce_by_document

    tokens, lengths, doc_index = _mixed_contexts()
    splices = {"half": sae_splice(ScaleSAE(8)), "zero": zero_splice()}
    for model, rel in ((Float64Toy(), 1e-13), (CausalToyModel(), 1e-6)):
        plain = spliced_ce(model, tokens, lengths, splices, batch_size=3)
        by_doc = spliced_ce_by_document(model, tokens, lengths, splices, doc_index, batch_size=3)
        assert by_doc.mean == plain, "the existing means must not change (bit for bit)"
        # token counts: (length - 1) per context, summed per document
        assert by_doc.tokens.tolist() == [4 + 11, 2, 8 + 11 + 1, 6]
        for name in ("clean", "half", "zero"):
            assert by_doc.sums[name].sum() / by_doc.tokens.sum() == pytest.approx(plain[name], rel=rel, abs=0)


def test_per_document_sums_equal_each_document_evaluated_alone():
    from ssae_utils.sae.evaluation import spliced_ce_by_document

    model = Float64Toy()
    tokens, lengths, doc_index = _mixed_contexts(5)
    splices = {"half": sae_splice(ScaleSAE(8))}
    by_doc = spliced_ce_by_document(model, tokens, lengths, splices, doc_index, n_docs=5, batch_size=2)
    assert by_doc.tokens[4] == 0 and by_doc.sums["half"][4] == 0      # a document with no contexts
    for d in range(4):
        rows = doc_index == d
        alone = spliced_ce(model, tokens[rows], lengths[rows], splices)
        assert by_doc.sums["half"][d] / by_doc.tokens[d] == pytest.approx(alone["half"], rel=1e-12)
    with pytest.raises(ValueError, match="doc_index"):
        spliced_ce_by_document(model, tokens, lengths, splices, doc_index[:-1])
