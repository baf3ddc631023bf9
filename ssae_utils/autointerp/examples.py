"""Examples per feature: top-activating windows to explain, and held-out windows to score.

A "sequence" is a window of ``window_tokens`` consecutive tokens of one context (contexts
are cut into non-overlapping windows, so no two examples share a token). Only full windows
are used, so that firing and silent examples do not differ in length (a document's last,
shorter window would otherwise be more often silent). A window's activation for a feature is
the feature's largest activation on its tokens.

For each feature:
- the ``n_explain`` windows with the largest activation go to the interpreter, the tokens
  where the feature fires marked between << and >> (a run of firing tokens is one span);
- the remaining firing windows, sorted by activation, are split into ``n_quantile`` bins of
  equal size and one window is drawn from each bin (paper: "quintiles of the top
  activating examples, not used for explanation");
- ``n_random`` windows where the feature does not fire at all are drawn uniformly.
The 10 scoring windows are shuffled; their truth is 1 (fires) or 0. Every draw uses a
generator seeded by (seed, feature), so a feature's examples do not depend on which other
features were sampled.

A feature is "scorable" when it has enough firing and non-firing windows for this recipe;
features are sampled among those (the counts are reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
import torch

NEWLINE = "\u21b5"  # shown instead of a line break, so that one example stays on one line

Encoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Example:
    """One window of text with one feature's activation on each of its tokens."""

    window: int
    tokens: list[str]
    acts: list[float]
    kind: Literal["top", "quantile", "random"]
    label: int  # 1: the feature fires somewhere in the window

    @property
    def max_act(self) -> float:
        return max(self.acts) if self.acts else 0.0

    def plain_text(self) -> str:
        return "".join(self.tokens)

    def marked_text(self, mark_fraction: float = 0.0) -> str:
        """The text with firing tokens between << and >> (runs of them as one span)."""
        threshold = mark_fraction * self.max_act
        out, inside = [], False
        for tok, act in zip(self.tokens, self.acts):
            fires = act > 0 and act > threshold
            if fires and not inside:
                out.append("<<")
            elif not fires and inside:
                out.append(">>")
            out.append(tok)
            inside = fires
        if inside:
            out.append(">>")
        return "".join(out)

    def marked_tokens(self, mark_fraction: float = 0.0) -> list[str]:
        threshold = mark_fraction * self.max_act
        return [t for t, a in zip(self.tokens, self.acts) if a > 0 and a > threshold]


@dataclass
class FeatureExamples:
    """Everything the interpreter and predictor see for one feature, and the truth."""

    model: str
    feature: int
    firing_windows: int
    explain: list[Example]
    score: list[Example]  # shuffled
    max_activation: float

    @property
    def truth(self) -> list[int]:
        return [e.label for e in self.score]


@dataclass
class WindowIndex:
    """Which window each token belongs to."""

    window_of_token: torch.Tensor  # [n_tokens] int64
    n_windows: int
    token_ids: torch.Tensor  # [n_tokens]
    window_tokens: int

    def tokens_of(self, window: int) -> torch.Tensor:
        # window ids never decrease along the tokens, so a window is one slice
        lo = int(torch.searchsorted(self.window_of_token, window))
        hi = int(torch.searchsorted(self.window_of_token, window, right=True))
        return torch.arange(lo, hi)

    @property
    def lengths(self) -> torch.Tensor:
        return torch.bincount(self.window_of_token, minlength=self.n_windows)

    @property
    def full(self) -> torch.Tensor:
        """[n_windows] bool: windows with exactly ``window_tokens`` tokens."""
        return self.lengths == self.window_tokens


def window_index(positions: torch.Tensor, doc_index: torch.Tensor, token_ids: torch.Tensor, window_tokens: int) -> WindowIndex:
    """Cut tokens (in cache order: documents, contexts, positions) into windows.

    A new context starts where the position does not grow or the document changes."""
    if window_tokens < 1:
        raise ValueError("window_tokens must be >= 1")
    if not (positions.shape == doc_index.shape == token_ids.shape) or positions.ndim != 1:
        raise ValueError("positions, doc_index and token_ids must be 1-d and of equal length")
    n = positions.shape[0]
    if n == 0:
        raise ValueError("no tokens to cut into windows")
    pos = positions.long()
    new_context = torch.ones(n, dtype=torch.bool)
    new_context[1:] = (pos[1:] <= pos[:-1]) | (doc_index[1:] != doc_index[:-1])
    context = torch.cumsum(new_context.long(), 0)
    start = pos[new_context][context - 1]  # position of each token's context's first token
    slot = (pos - start) // window_tokens
    new_window = new_context.clone()
    new_window[1:] |= slot[1:] != slot[:-1]
    window = torch.cumsum(new_window.long(), 0) - 1
    return WindowIndex(window, int(window[-1]) + 1, token_ids.long(), window_tokens)


@torch.no_grad()
def window_maxima(encode: Encoder, acts: torch.Tensor, index: WindowIndex, valid: torch.Tensor | None = None,
                  batch_size: int = 4096) -> torch.Tensor:
    """[n_windows, d_sae]: each feature's largest activation in each window. Tokens with
    ``valid`` False (outlier-norm tokens, which the SAEs never see) count as not firing."""
    out: torch.Tensor | None = None
    for lo in range(0, acts.shape[0], batch_size):
        f = encode(acts[lo : lo + batch_size]).float().clamp_min(0)
        if valid is not None:
            f = f * valid[lo : lo + batch_size].unsqueeze(1).to(f.dtype)
        if out is None:
            out = torch.zeros(index.n_windows, f.shape[1])
        rows = index.window_of_token[lo : lo + batch_size].unsqueeze(1).expand_as(f)
        out.scatter_reduce_(0, rows, f, reduce="amax")
    if out is None:
        raise ValueError("no activations to encode")
    return out


def scorable(firing_counts: torch.Tensor, n_windows: int, n_explain: int, n_quantile: int, n_random: int) -> torch.Tensor:
    """Features with enough firing windows (explain + one per quantile bin) and enough silent ones."""
    return (firing_counts >= n_explain + n_quantile) & (n_windows - firing_counts >= n_random)


def select_features(eligible: torch.Tensor, n_features: int, n_first: int, seed: int) -> list[int]:
    """The first ``n_first`` eligible features by index (the Appendix E table), then eligible
    features in a seeded random order up to ``n_features``. Indices of an SAE carry no meaning
    (and SSAEs keep the GSAE's indices), so the union is a random sample of eligible features,
    and the same seed gives overlapping indices across models."""
    ids = torch.nonzero(eligible).flatten().tolist()
    first = ids[:n_first]
    taken = set(first)
    order = np.random.default_rng(seed).permutation(eligible.shape[0]).tolist()
    rest = [i for i in order if bool(eligible[i]) and i not in taken]
    return (first + rest)[:n_features]


def feature_rng(seed: int, feature: int) -> np.random.Generator:
    return np.random.default_rng([seed, feature])


def choose_windows(window_acts: np.ndarray, n_explain: int, n_quantile: int, n_random: int,
                   rng: np.random.Generator, usable: np.ndarray | None = None) -> tuple[list[int], list[int], list[int]]:
    """(explain, quantile, random) window ids for one feature's window activations, among the
    ``usable`` windows (all if None)."""
    usable = np.ones(len(window_acts), dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    firing = np.flatnonzero((window_acts > 0) & usable)
    silent = np.flatnonzero((window_acts <= 0) & usable)
    if len(firing) < n_explain + n_quantile or len(silent) < n_random:
        raise ValueError(f"feature fires in {len(firing)} windows and is silent in {len(silent)}: "
                         f"needs {n_explain + n_quantile} and {n_random}")
    ranked = firing[np.argsort(-window_acts[firing], kind="stable")]
    explain = ranked[:n_explain].tolist()
    bins = np.array_split(ranked[n_explain:], n_quantile)
    quantile = [int(rng.choice(b)) for b in bins]
    random = sorted(rng.choice(silent, size=n_random, replace=False).tolist())
    return explain, quantile, random


def token_pieces(decode: Callable[[list[int]], str], ids: Sequence[int]) -> list[str]:
    """The text of each token of ``ids``, decoded as a sequence: a character split over
    several byte tokens goes to the token that completes it (the others get ""), where
    decoding tokens one by one would show replacement characters."""
    pieces, committed = [], ""
    for i in range(1, len(ids) + 1):
        stable = decode(list(ids[:i])).rstrip("\ufffd")
        if stable.startswith(committed):
            pieces.append(stable[len(committed):])
        else:  # the decoder rewrote earlier text (rare): fall back to the token on its own
            pieces.append(decode([ids[i - 1]]))
        committed = stable
    return pieces


@dataclass
class ExampleBuilder:
    """Builds one model's FeatureExamples from cached activations of the test windows."""

    model: str
    encode: Encoder
    acts: torch.Tensor  # [n_tokens, d_in]
    index: WindowIndex
    decode: Callable[[list[int]], str]  # token ids -> text (the tokenizer's decode)
    valid: torch.Tensor | None = None  # [n_tokens] bool

    @torch.no_grad()
    def examples(self, feature: int, windows: Sequence[int], kinds: Sequence[str], labels: Sequence[int]) -> list[Example]:
        """The windows as examples of ``feature`` (one SAE pass for all of them)."""
        rows = [self.index.tokens_of(w) for w in windows]
        f = self.encode(self.acts[torch.cat(rows)])[:, feature].float().clamp_min(0)
        if self.valid is not None:
            f = f * self.valid[torch.cat(rows)].float()
        out, start = [], 0
        for window, r, kind, label in zip(windows, rows, kinds, labels):
            acts = f[start : start + len(r)]
            start += len(r)
            pieces = token_pieces(self.decode, [int(t) for t in self.index.token_ids[r]])
            tokens = [p.replace("\r", "").replace("\n", NEWLINE) for p in pieces]
            out.append(Example(int(window), tokens, [round(float(a), 4) for a in acts], kind, int(label)))  # type: ignore[arg-type]
        return out

    def build(self, features: Sequence[int], maxima: torch.Tensor, n_explain: int, n_quantile: int, n_random: int,
              seed: int) -> list[FeatureExamples]:
        out = []
        usable = self.index.full.numpy()
        for feature in features:
            col = maxima[:, feature].numpy()
            rng = feature_rng(seed, feature)
            explain_ids, quantile_ids, random_ids = choose_windows(col, n_explain, n_quantile, n_random, rng, usable)
            windows = explain_ids + quantile_ids + random_ids
            kinds = ["top"] * len(explain_ids) + ["quantile"] * len(quantile_ids) + ["random"] * len(random_ids)
            labels = [1] * (len(explain_ids) + len(quantile_ids)) + [0] * len(random_ids)
            examples = self.examples(feature, windows, kinds, labels)
            explain, score = examples[: len(explain_ids)], examples[len(explain_ids):]
            score = [score[i] for i in rng.permutation(len(score))]
            out.append(FeatureExamples(self.model, int(feature), int(((col > 0) & usable).sum()), explain, score,
                                       float(col[usable].max())))
        return out
