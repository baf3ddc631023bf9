"""Stage 03 refuses to train on missing or stale selections."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from ssae_utils.activations import ShardedActivations
from ssae_utils.config import load_profile
from ssae_utils.domains import STRATEGIES
from ssae_utils.pipeline import retrieval as stage01
from ssae_utils.pipeline.finetune import load_selections
from ssae_utils.results import RetrievalResults, TracinResults
from tests.results_files import embedded, selection, write_stage_file


def test_missing_or_stale_stage02_results_are_refused(tmp_cache):
    cfg = load_profile("smoke")
    key = stage01.inputs_key(cfg)
    first = embedded(RetrievalResults)["domains"]["physics"]
    second = embedded(TracinResults)["domains"]["physics"]
    write_stage_file("smoke", RetrievalResults, inputs_key=key,
                     domains={"physics": {**first, "selections": {"dense": selection(["a"])}}})
    with pytest.raises(FileNotFoundError, match="--only 02"):
        load_selections(cfg)
    write_stage_file("smoke", TracinResults, inputs_key="old", domains={})
    with pytest.raises(ValueError, match="rerun notebook 02"):
        load_selections(cfg)
    write_stage_file("smoke", TracinResults, inputs_key=key, domains={})
    with pytest.raises(ValueError, match="no 'physics' reranking.*--only 02"):
        load_selections(cfg)
    write_stage_file("smoke", TracinResults, inputs_key=key,
                     domains={"physics": {**second, "selections": {"dense_tracin": selection(["a"], "dense_tracin")}}})
    picked = load_selections(cfg)["physics"]
    assert set(picked) == {"dense", "dense_tracin"} and picked["dense_tracin"].doc_ids == ["a"]


def test_runs_add_term_only_where_configured():
    cfg = load_profile("smoke")
    physics = [(strategy, arm.t) for strategy, arm in cfg.finetune.runs(cfg.domains["physics"])]
    assert ("dense", 500.0) in physics and ("dense", 1e9) in physics and ("general", 0.0) in physics
    assert all(arm.is_erm for _, arm in cfg.finetune.runs(cfg.domains["toxicity"]))


def test_term_arms_are_runs_of_their_own_with_one_seed_and_named_rows():
    """finetune.term_arms: TERM arms that tilt differently (scale-free, over sequences) train
    as grids of their own (one seed), their rows say how they tilt, and their curves and
    matched models carry that in their names."""
    from ssae_utils.analysis.matched import compared_models
    from ssae_utils.pipeline.finetune import arm_fields, finetune_config
    from ssae_utils.pipeline.pareto import curve_name, row_curve
    from ssae_utils.sae.tilt_arms import row_arm_suffix

    arms = [{"t": 1.0, "normalize": "loss_scale"}, {"t": 0.78125, "over": "sequences"}]
    cfg = load_profile("smoke", {"finetune.term_arms": arms})
    s, physics = cfg.finetune, cfg.domains["physics"]
    terms = [arm for strategy, arm in s.runs(physics) if not arm.is_erm]
    assert [a.label() for a in terms] == ["TERM t=500", "TERM t=1e+09", "TERM t=1 (loss_scale)", "TERM t=0.78125 (sequences)"]
    assert all(s.seeds_for(physics, "dense", a) == s.seeds for a in terms[2:])
    keys = {finetune_config(cfg, physics, 0, a).training_key() == finetune_config(cfg, physics, 0, terms[0]).training_key()
            for a in terms[1:]}
    assert keys == {False}                                     # every arm is its own grid
    row = {"strategy": "dense", "tilt": 1.0, **arm_fields(terms[2])}
    assert row == {"strategy": "dense", "tilt": 1.0, "tilt_normalize": "loss_scale"} and arm_fields(terms[0]) == {}
    assert row_curve(row) == "dense+TERM t=1 (loss_scale)" == curve_name("dense", 1.0, row_arm_suffix(row))
    sweep = type("S", (), {"sweep": s.to_dict(), "domains": {"physics": physics.to_dict()}})()
    labels = [m.label for m in compared_models(sweep, "physics")]
    assert labels[-2:] == ["Dense+TERM t=1 (loss_scale)", "Dense+TERM t=0.78125 (sequences)"]
    with pytest.raises(ValueError, match="term_arms"):
        load_profile("smoke", {"finetune.term_arms": [{"t": 500.0}]})          # the same arm as term_tilts' 500
    with pytest.raises(ValueError, match="term_arms"):
        load_profile("smoke", {"finetune.term_arms": [{"t": 1.0, "normalize": "per_dim"}]})


def test_seed_only_at_the_papers_passes_trains_on_few_enough_seed_documents():
    from ssae_utils.data.documents import Document
    from ssae_utils.pipeline.finetune import seed_only_documents
    from ssae_utils.retrieval.selection import Selection
    from ssae_utils.sae.finetune import FinetuneConfig

    docs = [Document(doc_id=f"s{i}", text="x", source="seed") for i in range(80)]
    counts = [40 + (i % 7) * 10 for i in range(80)]
    selection = Selection(strategy="seed_only", domain="physics", doc_ids=[d.doc_id for d in docs], token_counts=counts,
                          total_tokens=sum(counts), budget=None)
    fcfg = FinetuneConfig(l1_coefficients=(1.0,), steps=60, batch_size=1024)
    picked, info = seed_only_documents(docs, selection, fcfg, 100, seed=0)
    assert info["sampled_tokens"] <= 60 * 1024 / 100 < info["sampled_tokens"] + 111   # stops before the budget
    assert info["passes"] >= 100 and info["sampled_docs"] == len(picked) < len(docs)
    assert seed_only_documents(docs, selection, fcfg, 100, seed=0)[0] == picked          # seeded
    one, _ = seed_only_documents(docs, selection, fcfg, 10**6, seed=0)
    assert len(one) == 1                                                                  # never empty


def test_train_grid_keeps_checkpoints_reloads_them_and_validation_picks_per_lambda(tmp_cache):
    from ssae_utils.data.documents import Document
    from ssae_utils.pipeline.finetune import EvalSet, pick_checkpoints, train_grid
    from ssae_utils.sae.finetune import FinetuneConfig, validation_objective
    from tests.sae.test_finetune import SCALE, toy_acts, toy_gsae

    acts = toy_acts()

    class Store:
        """Stands in for ActivationStore: fixed activations in one on-disk shard, reads counted."""

        def __init__(self, acts):
            np.save(tmp_cache / "shard.npy", acts.numpy())
            self.acts, self.reads = acts, 0

        def rows(self, texts, desc=""):
            self.reads += 1
            n = len(self.acts)
            return ShardedActivations([np.load(tmp_cache / "shard.npy", mmap_mode="r")], torch.zeros(n, dtype=torch.int32),
                                      torch.arange(n), torch.arange(n) // 32)

    store = Store(acts)
    docs = [Document(doc_id=f"d{i}", text=f"text {i}", source="toy") for i in range(3)]
    fcfg = FinetuneConfig(l1_coefficients=(0.5, 2.0), steps=20, batch_size=128, lr=3e-3, lr_decay_steps=5,
                          shuffle_buffer_batches=None, checkpoint_steps=(10,))
    grid = train_grid(toy_gsae(), "gsae/x", store, docs, fcfg, SCALE, None, "blocks.0.hook_resid_post", "toy", "toy")
    assert set(grid.saes) == {10, 20} and store.reads == 1
    assert grid.folders[20][0].endswith("lambda_0.5") and grid.folders[10][1].endswith("lambda_2_step10")
    again = train_grid(toy_gsae(), "gsae/x", store, docs, fcfg, SCALE, None, "blocks.0.hook_resid_post", "toy", "toy")
    assert store.reads == 1, "a trained grid must be loaded from the cache, not retrained"
    torch.testing.assert_close(again.saes[10][1].W_enc, grid.saes[10][1].W_enc)

    val = EvalSet(torch.zeros(1, 2, dtype=torch.long), torch.tensor([2]), toy_acts(400, seed=5))
    picked = pick_checkpoints(grid, fcfg, val, SCALE)
    for i, (step, scores) in enumerate(picked):
        assert set(scores) == {10, 20} and scores[step] == min(scores.values())
        assert scores[10] == pytest.approx(validation_objective(grid.saes[10][i], val.acts, fcfg.l1_coefficients[i], SCALE))


def test_evaluate_without_patched_ce_never_runs_the_model_and_keeps_the_sae_metrics():
    from ssae_utils.pipeline.finetune import EvalSet, evaluate
    from ssae_utils.sae.evaluation import reconstruction_stats
    from tests.sae.test_finetune import toy_acts, toy_gsae

    class NoModel:
        def __getattr__(self, name):
            raise AssertionError(f"the model must not be used without patched CE (called {name})")

    sae = toy_gsae()
    data = EvalSet(torch.zeros(1, 2, dtype=torch.long), torch.tensor([2]), toy_acts(300, seed=3))
    out = evaluate(NoModel(), {"a": sae}, data, None, 4, "toy", patched_ce=False)
    stats = reconstruction_stats(sae, data.acts)
    assert set(out) == {"a"} and "ce" not in out["a"] and "ppl" not in out["a"]
    assert out["a"]["l0"] == pytest.approx(stats.l0) and out["a"]["fvu"] == pytest.approx(stats.fvu)


def test_embedded_skips_validation_perplexity_and_the_paper_keeps_it():
    emb, pap = load_profile("embedded"), load_profile("paper")
    assert not emb.finetune.val_patched_ce and pap.finetune.val_patched_ce
    assert pap.finetune.seeds_for(pap.domains["physics"], "dense", 500.0) == (0, 1, 2)


def test_the_embedded_recipe_seeds_every_strategy_and_the_judged_term_arm_on_erms_recipe():
    """The recipe the statistics and fidelity issues ask for is the embedded preset: 3 seeds
    for every strategy of both domains and the judged TERM arm, one for the other TERM arms,
    TERM on ERM's lr and lambdas, patched CE on >= 4,096 tokens per split, the recipe gate."""
    cfg = load_profile("embedded")
    s = cfg.finetune
    for domain in cfg.domains.values():
        assert all(s.seeds_for(domain, st, 0.0) == (0, 1, 2) for st in domain.strategies), domain.name
    physics = cfg.domains["physics"]
    assert s.judged == 500.0 / 640 and s.seeds_for(physics, "dense", s.judged) == (0, 1, 2)
    assert s.seeds_for(physics, "dense", 500.0) == (0,) and s.seeds_for(physics, "dense", 1e9) == (0,)
    assert s.lr_for(500.0) == s.lr and s.lambdas_for(500.0) == s.lambdas     # TERM on ERM's recipe
    assert s.eval_tokens >= 4096 and s.gate_lrs and s.lr_warm_up_steps > 0
    # the fidelity issue's bracket and seed-only at the paper's operating point
    assert {(a.t, a.normalize, a.over) for a in s.term_runs()} >= {(1.0, "loss_scale", "tokens"), (3.0, "loss_scale", "tokens"),
                                                                   (500 / 640, "raw", "sequences"), (500.0, "raw", "tokens")}
    assert s.seed_only_passes >= 100
    assert cfg.model.dtype == "auto"


def test_eval_documents_by_tokens_hold_at_least_the_asked_predictions():
    """finetune.eval_tokens: whole documents until they hold >= n predicted tokens (BOS and
    padding not counted); all of a split that is smaller."""
    from ssae_utils.data.documents import Document
    from ssae_utils.pipeline.finetune import eval_documents

    class Store:  # 1 token per word, contexts of 8 (BOS + 7 tokens)
        def contexts(self, texts):
            n = len(texts[0].split())
            lengths = [8] * (n // 7) + ([1 + n % 7] if n % 7 else [])
            return torch.zeros(len(lengths), 8, dtype=torch.long), torch.tensor(lengths)

    docs = [Document(doc_id=f"d{i}", text=" ".join(["w"] * (3 + i % 11)), source="t") for i in range(60)]
    store = Store()
    preds = {d.doc_id: len(d.text.split()) for d in docs}
    picked = eval_documents(docs, store, n_contexts=2, seed=0, n_tokens=100)
    total = sum(preds[d.doc_id] for d in picked)
    assert total >= 100 and total - preds[picked[-1].doc_id] < 100
    assert eval_documents(docs, store, 2, 0, n_tokens=100) == picked            # seeded
    assert len(eval_documents(docs, store, 2, 0, n_tokens=10**6)) == len(docs)  # the whole split
    by_contexts = eval_documents(docs, store, n_contexts=3, seed=0)
    assert sum(len(store.contexts([d.text])[1]) for d in by_contexts[:-1]) < 3


def test_term_grids_skip_the_ood_split():
    from ssae_utils.pipeline.finetune import row_splits
    physics = load_profile("embedded").domains["physics"]
    assert row_splits(physics, 0.0) == ("val", "test", "ood_test")
    assert row_splits(physics, 500.0) == ("val", "test")


def test_checkpoints_of_term_grids_are_picked_by_the_erm_objective(monkeypatch):
    from ssae_utils.pipeline import finetune as ft
    from ssae_utils.sae.finetune import FinetuneConfig
    from ssae_utils.sae.term import TiltConfig
    seen = []
    monkeypatch.setattr(ft, "validation_objective", lambda sae, acts, lam, scale, *rest: seen.append(rest) or 1.0)
    fcfg = FinetuneConfig(l1_coefficients=(1.0,), steps=4, checkpoint_steps=(2,), tilt=TiltConfig(t=500.0))
    grid = ft.TrainedGrid({2: [object()], 4: [object()]}, {}, {})
    ft.pick_checkpoints(grid, fcfg, ft.EvalSet(torch.zeros(1, 2, dtype=torch.long), torch.tensor([2]), torch.zeros(3, 2)), 1.0)
    assert seen == [(), ()]   # no tilt passed: ERM's objective


def _toy_store(tmp_cache, acts):
    class Store:
        """Stands in for ActivationStore: fixed activations in one on-disk shard, reads counted."""

        key = "toy-store"

        def __init__(self):
            np.save(tmp_cache / "shard.npy", acts.numpy())
            self.reads = 0

        def rows(self, texts, desc=""):
            self.reads += 1
            n = len(acts)
            return ShardedActivations([np.load(tmp_cache / "shard.npy", mmap_mode="r")], torch.zeros(n, dtype=torch.int32),
                                      torch.arange(n), torch.arange(n) // 32)

    return Store()


def test_only_the_picked_checkpoint_stays_on_disk_and_a_rerun_loads_the_picks(tmp_cache):
    from ssae_utils.data.documents import Document
    from ssae_utils.pipeline.finetune import EvalSet, train_and_pick, train_grid, pick_checkpoints
    from ssae_utils.sae.finetune import FinetuneConfig
    from tests.sae.test_finetune import SCALE, toy_acts, toy_gsae

    store = _toy_store(tmp_cache, toy_acts())
    docs = [Document(doc_id=f"d{i}", text=f"text {i}", source="toy") for i in range(3)]
    fcfg = FinetuneConfig(l1_coefficients=(0.5, 2.0), steps=20, batch_size=128, lr=3e-3, lr_decay_steps=5,
                          shuffle_buffer_batches=None, checkpoint_steps=(10,))
    val = EvalSet(torch.zeros(1, 2, dtype=torch.long), torch.tensor([2]), toy_acts(400, seed=5), key="val-a")
    args = (toy_gsae(), "gsae/x", store, docs, fcfg, SCALE, None, "blocks.0.hook_resid_post", "toy")
    kept_all = train_and_pick(*args, val, True, "toy")
    expected = pick_checkpoints(train_grid(*args, "toy"), fcfg, val, SCALE)
    assert kept_all.steps == [step for step, _ in expected] and store.reads == 1
    picked = train_and_pick(*args, val, False, "toy")
    assert picked.steps == kept_all.steps and store.reads == 1      # loaded, not retrained
    root = tmp_cache / "cache" / "saes" / "ssae"
    left = sorted(p.name for p in next(root.iterdir()).iterdir() if p.is_dir())
    assert left == sorted(f.rsplit("/", 1)[-1] for f in picked.folders) and len(left) == 2   # one per lambda
    again = train_and_pick(*args, val, False, "toy")
    assert store.reads == 1 and again.steps == picked.steps and again.scores == picked.scores
    torch.testing.assert_close(again.saes[1].W_enc, picked.saes[1].W_enc)
    # another validation set needs every checkpoint again: the grid is retrained
    other = EvalSet(val.tokens, val.lengths, toy_acts(400, seed=9), key="val-b")
    train_and_pick(*args, other, False, "toy")
    assert store.reads == 2


def test_a_run_trains_on_a_sample_of_the_tokens_it_reads_only_when_its_selection_is_larger():
    from ssae_utils.data.documents import Document
    from ssae_utils.pipeline.finetune import training_documents
    from ssae_utils.retrieval.selection import Selection
    from ssae_utils.sae.finetune import FinetuneConfig

    docs = [Document(doc_id=f"d{i}", text=f"t{i}", source="toy") for i in range(100)]
    counts = [50 + i for i in range(100)]   # 9,950 tokens
    sel = Selection("dense", "physics", [d.doc_id for d in docs], counts, sum(counts), 9_000)
    small = FinetuneConfig(steps=10, batch_size=256)           # reads 2,560 tokens
    picked, info = training_documents(docs, sel, small, True, seed=0)
    assert 2_560 <= info["sampled_tokens"] < 2_560 + 200 and info["selection_tokens"] == 9_950
    assert len({d.doc_id for d in picked}) == len(picked) == info["sampled_docs"] < 100
    assert training_documents(docs, sel, small, True, seed=0)[0] == picked       # seeded
    assert training_documents(docs, sel, small, True, seed=1)[0] != picked
    assert training_documents(docs, sel, small, False, seed=0) == (docs, {})     # switched off
    whole = FinetuneConfig(steps=40, batch_size=256)           # reads 10,240 >= the selection
    assert training_documents(docs, sel, whole, True, seed=0) == (docs, {})


def test_embedded_selections_are_never_sampled_smoke_and_paper_sample_and_drop_unpicked():
    emb = load_profile("embedded")
    for d in emb.domains.values():   # a selection is its budget plus at most one document
        assert d.token_budget * 1.2 < d.steps * emb.finetune.batch_size, d.name
    smoke = load_profile("smoke")
    physics = smoke.domains["physics"]   # so the test profile runs the sampling path
    assert physics.token_budget > physics.steps * smoke.finetune.batch_size
    assert emb.finetune.keep_unpicked_checkpoints and not smoke.finetune.keep_unpicked_checkpoints   # smoke: the paper's path
    paper = load_profile("paper")
    assert not paper.finetune.keep_unpicked_checkpoints and paper.finetune.sample_read_tokens


def test_evaluate_keeps_per_document_ce_that_adds_up_to_the_reported_ce():
    from ssae_utils.pipeline.finetune import EvalSet, doc_tokens, evaluate, eval_set
    from ssae_utils.results import FinetuneRow
    from tests.fakes import CausalToyModel
    from tests.sae.test_evaluation import IdentitySAE, ScaleSAE

    from tests.fakes import ContextStore as Store

    from ssae_utils.data.documents import Document

    docs = [Document(doc_id=f"d{i}", text="physics " * (i + 1), source="toy") for i in range(4)]
    data = eval_set(Store(), docs, docs[:1], None, "toy")
    joint_tokens, joint_lengths = Store().contexts([d.text for d in docs])
    assert torch.equal(data.tokens, joint_tokens) and torch.equal(data.lengths, joint_lengths)
    assert data.doc_ids == ["d0", "d1", "d2", "d3"] and sum(doc_tokens(data)) == data.ce_tokens
    model, saes = CausalToyModel(), {"id": IdentitySAE(8), "half": ScaleSAE(8)}
    plain = evaluate(model, saes, EvalSet(data.tokens, data.lengths, data.acts), None, 3, "toy")
    sums: dict[str, list[float]] = {}
    kept = evaluate(model, saes, data, None, 3, "toy", doc_ce=sums)
    assert kept == plain, "keeping the per-document CE must not change any reported number"
    assert set(sums) == {"id", "half"} and len(data.clean_doc_ce) == 4
    tokens = doc_tokens(data)
    for name in saes:
        assert len(sums[name]) == 4
        assert sum(sums[name]) / sum(tokens) == pytest.approx(kept[name]["ce"], rel=1e-6, abs=0)
    assert sum(data.clean_doc_ce) / sum(tokens) == pytest.approx(kept["clean"]["ce"], rel=1e-6, abs=0)
    # the typed row keeps them (an optional key: the committed embedded rows lack it)
    row = {"domain": "physics", "strategy": "dense", "tilt": 0.0, "lambda": 1.0, "seed": 0, "ssae_folder": "x",
           "checkpoint_step": 1, "steps": 1, "val_objective_by_step": {}, "train_s": None, "train_tokens_unique": None,
           "test_ce": kept["half"]["ce"], "ce_sums": {"test": sums["half"]}}
    assert FinetuneRow.from_dict(row).to_dict() == row
