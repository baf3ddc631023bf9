"""Synthetic stage-03 evaluations with a known truth, for the coverage tests.

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
