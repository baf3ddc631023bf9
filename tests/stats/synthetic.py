"""Synthetic results with a known truth, for the coverage and verdict tests: stage-03 evaluations
(below), and 07's SHIFT runs (``bios_results``).

Per-document mean CE of strategy s, seed j, document i (token count T_i)::

    c_sji = mu_s + a_sj + beta_i + gamma_si + e_sji
    a_sj ~ N(0, seed_sd^2)             training-seed effect (own to the strategy)
    beta_i ~ N(0, doc_sd^2)             document difficulty, shared by every model
    gamma_si ~ N(0, doc_strategy_sd^2)  how much document i suits strategy s
    e_sji ~ N(0, noise_sd^2 * 64 / T_i) seed x document interaction (token noise)

and S_sji = c_sji T_i. The estimand of "A minus B" is mu_A - mu_B (token counts are drawn
independently of the effects, so the token-weighted population mean is mu_s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class World:
    seed_sd: float = 0.02
    doc_sd: float = 0.5
    doc_strategy_sd: float = 0.03
    noise_sd: float = 0.03


def draw_docs(rng: np.random.Generator, n_docs: int) -> np.ndarray:
    return rng.integers(20, 200, size=n_docs)


def draw_sums(rng: np.random.Generator, world: World, mus: dict[str, float], n_seeds: dict[str, int],
              tokens: np.ndarray, beta: np.ndarray | None = None,
              seed_effects: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """{strategy: [n_seeds, n_docs] CE sums} on one split's documents."""
    d = tokens.size
    beta = rng.normal(0, world.doc_sd, d) if beta is None else beta
    out = {}
    for s, mu in mus.items():
        a = rng.normal(0, world.seed_sd, n_seeds[s]) if seed_effects is None else seed_effects[s]
        gamma = rng.normal(0, world.doc_strategy_sd, d)
        e = rng.normal(0, 1, (n_seeds[s], d)) * world.noise_sd * np.sqrt(64 / tokens)[None, :]
        out[s] = (mu + a[:, None] + beta[None, :] + gamma[None, :] + e) * tokens[None, :]
    return out


def bios_results(ssae_gain, gender=(0.80, 0.75, 0.85), seed=0, selection_seeds=(0, 1, 2), probe_seeds=(0, 1, 2),
                 probe_sd=0.01, selection_sd=0.005, noise_sd=0.003, ci=True):
    """07_bias_in_bios.json-shaped (the parts C9 reads): GSAE SHIFT's worst-group accuracy per
    probe seed, SSAE SHIFT's per (selection seed, probe seed) = the same probe seed's GSAE value
    + ``ssae_gain`` + a selection-seed effect + noise; the Original probe's gender accuracy
    (mean, CI ends) = ``gender``; a balanced test set of 4 x 73 documents."""
    rng = np.random.default_rng(seed)
    probe = {k: 0.8 + rng.normal(0, probe_sd) for k in probe_seeds}       # shared by both SAEs
    sel = {j: rng.normal(0, selection_sd) for j in selection_seeds}
    runs = [{"row": "GSAE SHIFT", "probe_seed": k, "selection_seed": None, "worst_group_acc": probe[k]} for k in probe_seeds]
    runs += [{"row": "SSAE SHIFT", "probe_seed": k, "selection_seed": j,
              "worst_group_acc": probe[k] + ssae_gain + sel[j] + rng.normal(0, noise_sd)}
             for j in selection_seeds for k in probe_seeds]
    gender_acc = {"mean": gender[0], "std": 0.01, "n": len(probe_seeds), **({"ci": [gender[1], gender[2]]} if ci else {})}
    return {"bios_config": {"ci_level": 0.95}, "runs": runs,
            "table": [{"row": "Original", "n_runs": len(probe_seeds), "gender_acc": gender_acc}],
            "data": {"test": {g: {"docs": 73} for g in ("a/m", "a/f", "b/m", "b/f")}}}
