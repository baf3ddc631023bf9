"""``BiosStudyConfig``: every knob of the Bias-in-Bios / SHIFT case study (notebook 07).

Presets: ``smoke()`` (synthetic biographies, seconds), ``embedded()`` (the Wikipedia stand-in,
sized for <= 10 min on 2 CPU cores, see ssae_utils/config.py) and ``paper()`` (LabHC/bias_in_bios,
professor vs nurse, the abstract versions' Pythia-70M/Marks et al. protocol scaled to Gemma).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ssae_utils.validation import from_dict_strict
from ssae_utils.validation import require as _require


@dataclass
class BiosStudyConfig:
    # --- data: the first profession is paired with "male", the second with "female" in the
    # ambiguous training set (the paper: male professors vs female nurses)
    professions: tuple[str, str] = ("scholar", "performer")
    # Per-class size of the ambiguous set and per-group size of the balanced sets; None: as
    # many as the split allows (groups are filled with pronoun-swapped copies, see data.py).
    ambiguous_per_class: int | None = None
    balanced_per_group: int | None = None
    # Fill short groups of the BALANCED sets (the test set, and the oracle's / SCR gender
    # probe's balanced training set) with pronoun-swapped copies of the same profession's other
    # gender (the stand-in has 8 female scholars per split); False: real documents only. The
    # ambiguous set (the probe's training set) never holds swapped copies, whatever this says.
    use_pronoun_swaps: bool = True
    data_seed: int = 0                     # which documents make up the balanced test set
    # Bias in Bios' ``hard_text`` drops each bio's first sentence (the one naming the
    # occupation). The Wikipedia stand-in keeps it unless this is True (data.without_first_sentence).
    drop_first_sentence: bool = False
    # --- probes (logistic regression on mean-pooled residuals)
    # The residual the probes read: blocks.<probe_layer>.hook_resid_post, mean-pooled over the
    # tokens the SAE reads. None: the SAE's hook layer (ablation then acts on what the probe
    # reads). A later block: SHIFT's ablations act at the hook and run through the blocks in
    # between (ssae_utils.bios.propagate), as in Marks et al. (probe near the top).
    probe_layer: int | None = None
    # Pre-declared candidate layers; when given, the stage picks probe_layer among them by the
    # original (unablated) probe's gender accuracy on the balanced test set, never by a SHIFT
    # result (ssae_utils.bios.calibration.pick_probe_candidate); probe_layer must then be None.
    probe_layer_candidates: tuple[int, ...] = ()
    probe_seeds: tuple[int, ...] = (0, 1, 2)  # resample the ambiguous/balanced training sets
    probe_l2: float = 1e-2                 # L2 penalty on the standardized weights
    probe_max_iter: int = 200              # LBFGS iterations (full batch)
    # --- SHIFT: top attributed features, then the automatic gender criterion
    shift_candidates: int = 50             # features with the largest |attribution| considered
    # A candidate is a gender feature when its pooled activation differs between a document
    # and its pronoun-swapped copy: |mean f(female) - mean f(male)| / (mean f(female) + mean f(male))
    # >= this share (0.5: at least 3x more active in one gender's version).
    gender_share_threshold: float = 0.5
    audit_top_tokens: int = 8              # activating tokens listed per selected feature
    random_baseline_seed: int = 0
    # --- compression (the paper sliced its SAEs to 1/8 of their features)
    compress_fraction: float = 0.125
    # --- SCR (SAEBench): top-N latents by |mean activation difference x probe alignment|
    scr_top_n: tuple[int, ...] = (2, 5, 10, 20, 50)
    # --- the bios SSAE: seed bios -> dense retrieval from the general pool -> finetune
    ssae_selection_seeds: tuple[int, ...] = (0, 1, 2)   # which seed bios (one SSAE each)
    ssae_seed_docs: int = 16               # bios drawn from bios_train as the seed set
    ssae_token_budget: int = 25_000        # LM tokens retrieved from the general pool
    ssae_include_seed_docs: bool = True    # train on the seed bios too (see ssae.py)
    # Its training recipe (batch size, lr, shuffle buffer, decoder) is the sweep's
    # (finetune.*); only what belongs to this experiment is set here.
    ssae_lambda: float = 1.0               # in the GSAE's units (1 = the GSAE's own)
    ssae_steps: int = 40
    ssae_lr_decay_steps: int = 10
    # --- statistics
    bootstrap_samples: int = 1000          # test-set bootstrap (stratified by group) for CIs
    ci_level: float = 0.95

    def __post_init__(self) -> None:
        self.professions = tuple(self.professions)
        for name in ("probe_seeds", "scr_top_n", "ssae_selection_seeds", "probe_layer_candidates"):
            setattr(self, name, tuple(int(x) for x in getattr(self, name)))
        _require(len(self.professions) == 2 and self.professions[0] != self.professions[1],
                 f"bios.professions must name two different professions, got {self.professions}")
        for name in ("ambiguous_per_class", "balanced_per_group"):
            value = getattr(self, name)
            _require(value is None or value >= 2, f"bios.{name} must be None or >= 2")
        _require(len(self.probe_seeds) >= 1, "bios.probe_seeds must not be empty")
        _require(self.probe_layer is None or (isinstance(self.probe_layer, int) and self.probe_layer >= 0),
                 "bios.probe_layer must be None or a block index >= 0")
        _require(all(p >= 0 for p in self.probe_layer_candidates)
                 and len(set(self.probe_layer_candidates)) == len(self.probe_layer_candidates),
                 "bios.probe_layer_candidates: distinct block indices >= 0")
        _require(not (self.probe_layer_candidates and self.probe_layer is not None),
                 "set bios.probe_layer or bios.probe_layer_candidates (the selection picks the layer), not both")
        _require(len(self.ssae_selection_seeds) >= 1, "bios.ssae_selection_seeds must not be empty")
        _require(self.probe_l2 >= 0 and self.probe_max_iter >= 1, "bios.probe_l2 >= 0 and bios.probe_max_iter >= 1")
        _require(self.shift_candidates >= 1, "bios.shift_candidates must be >= 1")
        _require(0 < self.gender_share_threshold <= 1, "bios.gender_share_threshold must be in (0, 1]")
        _require(0 < self.compress_fraction <= 1, "bios.compress_fraction must be in (0, 1]")
        _require(len(self.scr_top_n) >= 1 and all(n >= 1 for n in self.scr_top_n), "bios.scr_top_n: positive ints")
        _require(self.ssae_seed_docs >= 1 and self.ssae_token_budget >= 1, "bios.ssae_seed_docs and ssae_token_budget must be >= 1")
        _require(self.ssae_lambda >= 0, "bios.ssae_lambda must be >= 0")
        _require(self.ssae_steps >= 1 and self.ssae_lr_decay_steps >= 0, "bios.ssae_steps must be >= 1 and bios.ssae_lr_decay_steps >= 0")
        _require(self.bootstrap_samples >= 0, "bios.bootstrap_samples must be >= 0")
        _require(0 < self.ci_level < 1, "bios.ci_level must be in (0, 1)")

    @property
    def n_runs(self) -> int:
        return len(self.probe_seeds)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BiosStudyConfig":
        return from_dict_strict(cls, data)

    # --- presets
    @classmethod
    def smoke(cls, **overrides: Any) -> "BiosStudyConfig":
        """Synthetic biographies (8 per group and split), a tiny SSAE: seconds."""
        base = dict(probe_layer_candidates=(3,), ssae_selection_seeds=(0, 1), ssae_seed_docs=4, ssae_token_budget=1_000,
                    ssae_steps=8, ssae_lr_decay_steps=4, shift_candidates=20,
                    scr_top_n=(2, 5, 10), bootstrap_samples=50, compress_fraction=0.25)
        return cls(**{**base, **overrides})

    @classmethod
    def embedded(cls, **overrides: Any) -> "BiosStudyConfig":
        """The Wikipedia stand-in on 2 CPU cores, <= 10 min for notebook 07 (SSAE included).

        Cost is almost all LM forward passes to layer 12: ~820 biography contexts (test set,
        three probe seeds' training sets, their pronoun-swapped copies) plus ~40k retrieved
        tokens for the three SSAEs (the three seed sets retrieve largely the same leads), i.e.
        ~2.5 min at the ~950 tokens/s measured for stage 00; then encoding with 4 SAEs ~30 s,
        finetuning 3 x 40 steps ~25 s, probes and SCR ~30 s. Measured on the shared box (load
        average ~7 on 2 cores) the cold run took far longer (27 min; 17 min of it caching the
        biographies) and a warm rerun ~3-4 min. Group sizes are set by the data (74 per test
        group), not by the budget.
        lambda 1.0 (the default) puts the SSAEs' L0 on the test biographies at 105-106
        (GSAE: 104), so the SSAEs are compared with the GSAE at equal sparsity.
        drop_first_sentence: the stand-in's hard_text (see the field); with the first sentence
        kept the profession is named outright and the ambiguous probe ignores gender.
        Probe layer: picked per run from blocks 16 (penultimate) and 17 (last) of the 18 by the
        original probe's gender accuracy on the balanced test set (calibration.py). The only
        profession pair the stand-in holds is scholar/performer (data/bios.py PROFESSIONS); the
        reversed pairing (male performers vs female scholars) has 8 real documents per class,
        too few for a probe, so it is not a candidate.
        Calibration (2026-12-01, warm cache, original probe's gender accuracy on the balanced
        test set, mean of probe seeds 0-2, l2 1e-2): block 16 0.534, block 17 0.533 (picked:
        16); outside the candidates, for the record only: the hook (12) 0.518, block 14 0.582.
        Raising probe_l2 to 100 moves none of them by more than 0.01. The stand-in's probe does
        not lean on gender at any of these layers (profession accuracy ~0.95 from real
        documents alone), so C9's precondition (CI lower bound > 0.6) fails on this data.
        Cost with the late probe: stage 07 took 185 s warm on the shared 2-core box (probe-layer
        pass over both candidates 32 s, 31 propagated ablation passes in SHIFT 115 s).
        """
        base = dict(drop_first_sentence=True, probe_layer_candidates=(16, 17))
        return cls(**{**base, **overrides})

    @classmethod
    def paper(cls, **overrides: Any) -> "BiosStudyConfig":
        """LabHC/bias_in_bios, professor (paired with male) vs nurse (with female), real
        documents only (the dataset has enough of every group), paper-scale SSAE. The probe
        layer is picked by the embedded profile's rule among the same two late blocks of
        Gemma-2b (18 layers, hook 12): 16 (penultimate) and 17 (last)."""
        base = dict(professions=("professor", "nurse"), use_pronoun_swaps=False, probe_layer_candidates=(16, 17), ambiguous_per_class=3000,
                    balanced_per_group=750, ssae_token_budget=2_000_000, ssae_seed_docs=64, ssae_steps=500,
                    ssae_lr_decay_steps=500, ssae_lambda=1.0)
        return cls(**{**base, **overrides})
