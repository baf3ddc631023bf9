"""Subdomains as data: the Domain spec, overrides that add or change one, and user sources."""

from __future__ import annotations

import itertools
import json

import pytest

from ssae_utils.config import load_profile, parse_override
from ssae_utils.data import DataConfig, build_corpora
from ssae_utils.data.corpora import split_hashes
from ssae_utils.data.sources import get_source
from ssae_utils.domains import Domain, FigureSpec, preset_domains
from ssae_utils.paths import REPO_ROOT

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "domain_biology"
BIOLOGY = {"seed_source": str(FIXTURE / "seed"), "test_source": str(FIXTURE / "test.jsonl"),
           "seed_words": 60, "val_words": 40, "token_budget": 600, "steps": 6, "l0_window": [2, 60]}


def test_presets_name_the_papers_figures_and_a_new_domain_gets_its_own():
    physics, toxicity = preset_domains("embedded").values()
    assert list(physics.figure_specs()) == ["fig1a", "fig1b", "fig4", "fig6"] and physics.eval_splits == ("val", "test", "ood_test")
    assert list(toxicity.figure_specs()) == ["fig5a", "fig5b"] and toxicity.eval_splits == ("val", "test")
    plain = Domain("law", "smoke_physics")
    assert plain.figure_specs() == {"law_test": FigureSpec("test", True, "erm")} and plain.split_names == ("law_seed", "law_val", "law_test")
    both = Domain("law", "smoke_physics", ood_source="smoke_physics_ood", term=True)
    assert list(both.figure_specs()) == ["law_test", "law_ood_test", "law_term"]
    assert Domain.from_dict(json.loads(json.dumps(both.to_dict()))) == both


def test_a_domain_needs_documents_and_valid_knobs():
    with pytest.raises(ValueError, match="give 'source'.*test_source"):
        Domain("law")
    with pytest.raises(ValueError, match="unknown strategies"):
        Domain("law", "x", strategies=("bm26",))
    with pytest.raises(ValueError, match="two domains claim the figures"):
        load_profile("smoke", {"domains.law": {"source": "smoke_physics", "figures": {"fig1a": {}}}})


def test_overrides_add_change_and_drop_domains(tmp_path):
    cfg = load_profile("smoke", {"domains.biology": BIOLOGY})
    assert list(cfg.domains) == ["physics", "toxicity", "biology"] and cfg.domains["biology"].steps == 6
    path = tmp_path / "biology.json"
    path.write_text(json.dumps(BIOLOGY))
    key, value = parse_override(f"domains.biology=@{path}")
    assert load_profile("smoke", {key: value}).domains["biology"] == cfg.domains["biology"]
    with pytest.raises(ValueError, match="names no file"):
        parse_override("domains.biology=@/nope.json")
    merged = load_profile("smoke", {"domains.physics": {"steps": 3}, "domains.toxicity.token_budget": 77})
    assert merged.domains["physics"].steps == 3 and merged.domains["physics"].source == "smoke_physics"
    assert merged.domains["toxicity"].token_budget == 77
    assert list(load_profile("smoke", {"domains.toxicity": None}).domains) == ["physics"]
    with pytest.raises(KeyError, match="unknown domain 'law'"):
        load_profile("smoke", {"domains.law.steps": 3})
    with pytest.raises(ValueError, match="unknown Domain fields"):
        load_profile("smoke", {"domains.law": {"source": "smoke_physics", "colour": 1}})
    with pytest.raises(ValueError, match="no subdomain"):
        load_profile("smoke", {"domains.toxicity": None, "domains.physics": None})


def test_file_sources_folder_table_and_clear_errors(tmp_path):
    seeds = get_source(str(FIXTURE / "seed")).load()
    assert len(seeds) == 12 and {d.source for d in seeds} == {"file:seed"} and seeds[0].meta["file"] == "note_00.txt"
    rows = get_source(str(FIXTURE / "test.jsonl")).load({"topic_column": "topic"})
    assert len(rows) == 40 and rows[0].topic == "biology" and rows[0].source == "file:test.jsonl"
    csv = tmp_path / "notes.csv"
    csv.write_text("abstract,label\n\"Cells divide.\",1\n\"Genes mutate.\",0\n")
    assert [d.text for d in get_source(str(csv)).load({"text_column": "abstract"})] == ["Cells divide.", "Genes mutate."]
    with pytest.raises(KeyError, match=r"no column\(s\) \['text'\].*abstract"):
        get_source(str(csv)).load()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_source(str(tmp_path / "missing.jsonl"))
    with pytest.raises(KeyError, match="folder of .txt files"):
        get_source("no_such_source")


def test_a_third_domain_gets_disjoint_splits_and_its_removals_are_counted():
    # the general pool also reads the seed folder: those texts must leave the pool, counted
    domains = {**preset_domains("smoke"), "biology": Domain("biology", **BIOLOGY)}
    data = DataConfig.smoke(general_sources=("smoke_general", str(FIXTURE / "seed")))
    corpora = build_corpora(data, domains)
    for part in ("seed", "val", "test"):
        assert corpora[f"biology_{part}"], part
    seed_words = [d.n_words for d in corpora["biology_seed"]]
    assert BIOLOGY["seed_words"] <= sum(seed_words) < BIOLOGY["seed_words"] + seed_words[-1] + 1  # its own budget
    assert {d.source for d in corpora["biology_val"]} == {"file:test.jsonl"}      # carved from the test set
    assert len(corpora.known_positives("biology")) == round(0.1 * 40)            # planted from the test set
    assert corpora.pool_removals["biology"] == 12
    hashes = split_hashes(corpora)
    for a, b in itertools.combinations(corpora.splits, 2):
        assert not hashes[a] & hashes[b], f"{a} and {b} share text"


def test_pool_documents_can_be_labelled_by_topic():
    domains = {"physics": Domain("physics", "smoke_physics", pool_share=0.0, pool_label_topic="general")}
    corpora = build_corpora(DataConfig.smoke(), domains)
    assert corpora.known_positives("physics") == [d for d in corpora["general_pool"] if d.topic == "general"] != []


@pytest.mark.slow
def test_a_third_domain_runs_through_notebooks_00_to_06_by_configuration_alone(tmp_path):
    import os
    import subprocess
    import sys

    spec = tmp_path / "biology.json"
    spec.write_text(json.dumps({**BIOLOGY, "term": True}))
    env = {**{k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
           **{f"SSAE_{k.upper()}": str(tmp_path / k) for k in ("cache", "results", "figures", "runs")}}
    args = ["--profile", "smoke", "--from", "00", "--set", f"domains.biology=@{spec}",
            "--set", "tail.domain=biology", "--set", "autointerp.domain=biology", "--only", *[f"0{i}" for i in range(7)]]
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results, figures = tmp_path / "results" / "smoke", tmp_path / "figures" / "smoke"
    read = lambda name: json.loads((results / name).read_text())  # noqa: E731
    assert any(r["split"] == "biology_seed" for r in read("00_setup.json")["data_card"])
    assert set(read("01_retrieval.json")["domains"]) == {"physics", "toxicity", "biology"}
    assert read("02_tracin.json")["domains"]["biology"]["quality"]["dense_tracin"]["n_docs"] > 0
    rows = [r for r in read("03_finetune.json")["rows"] if r["domain"] == "biology"]
    assert {r["strategy"] for r in rows} == {"general", "seed_only", "bm25", "dense", "bm25_tracin", "dense_tracin"}
    assert any(r["tilt"] > 0 for r in rows)
    pareto = read("04_pareto.json")["figures"]
    assert pareto["biology_test"]["domain"] == "biology" and pareto["biology_term"]["kind"] == "term"
    assert (figures / "biology_test.png").exists() and (figures / "biology_term.png").exists()
    assert read("05_tail_tokens.json")["domain"] == "biology" and (figures / "fig2a.png").exists()
    assert read("06_autointerp.json")["data"]["split"] == "biology_test" and (figures / "fig3b.png").exists()


def test_relative_source_paths_are_made_absolute_for_the_kernels(tmp_path, monkeypatch):
    from ssae_utils.config import absolute_source_paths

    (tmp_path / "data" / "seed").mkdir(parents=True)
    (tmp_path / "data" / "test.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    fixed = absolute_source_paths({
        "domains.biology": {"seed_source": "data/seed", "test_source": "data/test.jsonl", "steps": 3},
        "domains.law.ood_source": "data/test.jsonl",
        "data.source_options": {"data/test.jsonl": {"text_column": "abstract"}},
        "domains.x": {"source": "hf:owner/name"}, "gsae.d_sae": 8})
    assert fixed["domains.biology"] == {"seed_source": str(tmp_path / "data" / "seed"),
                                        "test_source": str(tmp_path / "data" / "test.jsonl"), "steps": 3}
    assert fixed["domains.law.ood_source"] == str(tmp_path / "data" / "test.jsonl")
    assert list(fixed["data.source_options"]) == [str(tmp_path / "data" / "test.jsonl")]
    assert fixed["domains.x"] == {"source": "hf:owner/name"} and fixed["gsae.d_sae"] == 8
