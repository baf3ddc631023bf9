"""The paper profile's code paths at smoke size, on CPU, offline (issue: "a paper-path test").

``paper_path_overrides`` turns the ``paper`` profile into something the test suite can run in
minutes while keeping every code path the paper profile takes and the smoke profile does not:
the Hugging Face loaders (``openwebtext``, ``arxiv_physics``, ``physics_instruct``,
``pile_toxicity``, ``bias_in_bios``) reading local files with the datasets' real column
names, a pretrained SAELens GSAE folder (``apply_b_dec_to_input=False``,
``normalize_activations="none"``), streaming BM25, float16 embedding shards searched
blockwise, streamed TracIn candidates, float16 activations, sampled training tokens, only the
picked checkpoint kept, validation perplexity, no planted positives in the pool. What is
scaled down is sizes only (word budgets, steps, widths, batch sizes: the smoke profile's
values), the LM (the smoke profile's tiny Gemma 3) and the embedder (hashing instead of
Contriever, which would need the hub).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from ssae_utils.config import SECTIONS, load_profile
from ssae_utils.data.sources import get_source

# knobs whose paper value *is* the code path under test: never replaced by the smoke value
PAPER_PATHS = {
    "data": {"profile", "general_sources", "bios_source", "storage"},
    "activations": {"dtype"},
    "gsae": {"source", "outlier_norm_factor", "calibration_lambdas"},
    "model": {"context_length"},      # None: the pretrained GSAE's context_size
    "retrieval": {"bm25_backend", "embedding_dtype", "tracin_stream", "tracin_max_doc_tokens", "dense_backend"},
    "finetune": {"val_patched_ce", "keep_unpicked_checkpoints", "sample_read_tokens", "shuffle_buffer_batches",
                 "checkpoint_fractions"},
    "bios": {"professions", "use_pronoun_swaps"},
}
DOMAIN_SIZES = ("seed_words", "val_words", "test_words", "ood_words", "token_budget", "steps", "l0_window",
                "extra_seed_strategies")
# LabHC/bias_in_bios ids of the paper's professions (ssae_utils/data/sources/paper.py)
PROFESSION_ID = {"scholar": 21, "performer": 13}
GENDER_ID = {"male": 0, "female": 1}


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def write_paper_fixtures(root: Path) -> dict[str, dict[str, Any]]:
    """The smoke profile's synthetic corpora, written as the paper's datasets (same columns);
    returns ``data.source_options`` pointing the paper sources at them."""
    docs = {name: get_source(name).load(None) for name in
            ("smoke_general", "smoke_physics", "smoke_physics_ood", "smoke_toxicity", "smoke_bios")}
    ood = []
    for d in docs["smoke_physics_ood"]:          # question + answer, the instruct set's two columns
        words = d.text.split()
        ood.append({"question": " ".join(words[: len(words) // 2]), "answer": " ".join(words[len(words) // 2 :])})
    bios = [{"hard_text": d.text, "profession": PROFESSION_ID[d.meta["profession"]], "gender": GENDER_ID[d.meta["gender"]]}
            for d in docs["smoke_bios"]]
    # a folder with one file per split, like the hub's; smoke bios cycle through the four
    # (profession, gender) groups every 4 documents, so alternate blocks of 4 keep all groups in both
    _jsonl(root / "bias_in_bios" / "train.jsonl", [b for i, b in enumerate(bios) if (i // 4) % 2 == 0])
    _jsonl(root / "bias_in_bios" / "test.jsonl", [b for i, b in enumerate(bios) if (i // 4) % 2 == 1])
    return {
        "openwebtext": {"path": _jsonl(root / "openwebtext.jsonl", [{"text": d.text} for d in docs["smoke_general"]])},
        "arxiv_physics": {"path": _jsonl(root / "arxiv_physics.jsonl", [{"text": d.text} for d in docs["smoke_physics"]])},
        "physics_instruct": {"path": _jsonl(root / "physics_instruct.jsonl", ood)},
        "pile_toxicity": {"path": _jsonl(root / "pile_toxicity.jsonl", [{"text": d.text, "score": 0.9 if d.meta["toxic"] else 0.05}
                                                                        for d in docs["smoke_toxicity"]])},
        "bias_in_bios": {"path": str(root / "bias_in_bios")},
    }


def write_pretrained_gsae(folder: Path, d_in: int, hook_name: str, context_size: int, d_sae: int = 128,
                          seed: int = 0) -> Path:
    """A SAELens folder shaped like gemma-2b-res-jb: apply_b_dec_to_input=False,
    normalize_activations="none", the hook and context size in its config. Random weights
    with a decoder bias and encoder scaled so a few dozen features fire per token."""
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    torch.manual_seed(seed)
    cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=False, normalize_activations="none")
    cfg.metadata.hook_name = hook_name
    cfg.metadata.context_size = context_size
    cfg.metadata.model_name = "tiny-random-gemma3"
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.normal_(0, d_in ** -0.5)
        sae.W_dec.copy_(sae.W_enc.T / sae.W_enc.T.norm(dim=1, keepdim=True))
        sae.b_enc.fill_(-0.05)
        sae.b_dec.normal_(0, 0.1)
    sae.save_model(str(folder))
    # a release's cfg.json carries the lambda it was trained with (TracIn differentiates that loss)
    cfg_path = folder / "cfg.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "l1_coefficient": 5.0}))
    return folder


def paper_path_overrides(root: Path) -> dict[str, Any]:
    """``--set`` overrides that run the paper profile's code at smoke size (module docstring);
    writes the data files and the pretrained GSAE folder under ``root``."""
    smoke, paper = load_profile("smoke"), load_profile("paper")
    gsae = write_pretrained_gsae(root / "gsae", d_in=_smoke_d_model(smoke), hook_name=smoke.model.hook_name,
                                 context_size=smoke.model.context_length)
    out: dict[str, Any] = {}
    for section in SECTIONS:
        small, big = dataclasses.asdict(getattr(smoke, section)), dataclasses.asdict(getattr(paper, section))
        for knob, value in small.items():
            if value != big[knob] and knob not in PAPER_PATHS.get(section, set()):
                out[f"{section}.{knob}"] = value
    for name, dom in paper.domains.items():
        sizes = smoke.domains[name].to_dict()
        out[f"domains.{name}"] = {k: sizes[k] for k in DOMAIN_SIZES}
    out["data.source_options"] = write_paper_fixtures(root / "data")
    out["data.min_words"] = 1
    out.update({"gsae.pretrained_release": None, "gsae.pretrained_sae_id": None, "gsae.pretrained_path": str(gsae),
                "gsae.calibration_lambdas": [0.5, 1.0, 2.0], "gsae.calibration_steps": 4, "gsae.calibration_batch_size": 128})
    return out


def _smoke_d_model(cfg) -> int:
    from ssae_utils.model.registry import load_model

    return int(load_model(cfg.model).d_model)
