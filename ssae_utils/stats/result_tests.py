"""Claims C6-C9 (and C7's tail and breadth parts) as four-outcome sub-tests (``stats.verdict``).

The evidence is what ``scorecard.result_claims`` reads (05_tail_tokens.json, 06_autointerp.json,
07_bias_in_bios.json); C7's perplexity part is in ``stats.pareto.term_ppl_test``. Each sub-test's
interval speaks to one source of noise, the one the saved results can speak to (``SubTest.noise``
says it in the scorecard, with what it leaves out):

* **C6, C7 tail coverage** (paired proportions, McNemar): the unit is the tail token type
  (types seen 1..``max_count`` times in the test split); which rare types a test split happens to
  hold is the noise. Two models A and B are compared on the same types: with ``b`` types covered
  by A only and ``c`` by B only out of ``n``, the gap ``(b - c) / n`` has SE ``sqrt(b + c) / n``
  (normal, df = inf). C6: the Dense SSAE against the baseline (the general-data SSAE). C7: TERM
  against Dense ERM; TERM's net tail gain over the baseline minus Dense's equals
  ``(|TERM| - |Dense|) / n`` (``|X|``: tail types X covers), exactly; the discordant count
  ``b + c`` between TERM and Dense is exact on the types the baseline does not cover (05 lists
  them, ``tail_tokens.rows``) and bounded above on those it covers (05 keeps only each model's
  overlap with the baseline, not TERM's with Dense there), so the SE is an upper bound:
  conservative. Precondition: at least ``MIN_DISCORDANT`` discordant types (the normal
  approximation of McNemar's test).
* **C7 breadth**: the median over features of the per-feature activation-count difference TERM
  minus Dense (the SSAEs keep the GSAE's feature indices, so features are paired), SE from a
  bootstrap over features (normal, df = inf). Its noise: which features; the activation sample is
  fixed.
* **C8**: mean autointerp F1 of TERM's explained features minus Dense ERM's, SE from each model's
  bootstrap CI over its features (``(high - low) / (2 z)`` at the CI's level) combined as for
  independent samples (the two models' explained features mostly share indices; a positive
  correlation would make this conservative); normal, df = inf. Precondition: the explanations
  come from an LLM (``mode`` "claude", i.e. ANTHROPIC_API_KEY was set): the claim is about an
  LLM's explanations, so the offline explainer's F1 makes it *untestable*, not inconclusive.
* **C9**: SHIFT's worst-group accuracy, SSAE minus GSAE, from 07's per-run results. The 9 SSAE
  runs are 3 SSAEs (selection seeds) crossed with 3 probe seeds, on one test set, and the GSAE's
  3 runs use the same 3 probe seeds: they are *not* 9 independent runs. Per probe seed ``k`` and
  SSAE ``j``, ``x_jk = SSAE_jk - GSAE_k``; the estimate is the mean of ``x``, and its variance is
  the crossed-design one of ``stats.hierarchical`` with the probe seeds as the crossed unit (the
  same probe seeds for both arms: each probe seed's mean over the SSAEs is the paired unit) and
  the SSAEs' own seed variance, net of the probe x SSAE interaction (t, Satterthwaite df; with
  3 probe seeds, 2 df). The GSAE is fixed (the one model every SSAE was finetuned from). The
  test documents are fixed too: 07 keeps no per-document predictions, so test-sampling noise is
  not in this interval (07's own CIs of each row are). Preconditions: >= 2 probe seeds, >= 2
  SSAE selection seeds, every SSAE on every probe seed, and **the original (unablated) probe uses
  gender**: the lower end of a 95% interval of its gender accuracy on the balanced test set is
  above ``GENDER_BOUND`` (0.6) (the recorded bootstrap CI when 07 has one; else a Wilson bound
  from the accuracy and the balanced set's size; else a t bound from the probe-seed spread; the
  precondition's detail says which). A probe that barely uses gender leaves SHIFT nothing to
  remove, and then no difference between SSAE and GSAE SHIFT says anything about the claim.

C6-C8 rest on one trained model per label (one SSAE training seed): their tests are
*conditional on the trained models* (``SubTest.hierarchical`` False), and their training-seed
noise is not in the interval; the scorecard says so in each sub-test's ``noise``. C9's
interval does include its SSAEs' selection-seed noise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats as sps

from ssae_utils.analysis.matched import is_term_label
from ssae_utils.stats.hierarchical import Arm, contrast, normal_estimate
from ssae_utils.stats.verdict import Precondition, SubTest

DENSE_LABEL = "Dense SSAE"
MIN_DISCORDANT = 10            # McNemar's normal approximation
GENDER_BOUND = 0.6             # C9: the original probe's gender accuracy must exceed this (lower 95% bound)
CONDITIONAL = "training-seed noise is not in the interval (one trained model per label: conditional on the trained models)"
TAIL_NOISE = f"which tail token types the test split holds (McNemar over types); {CONDITIONAL}"
BREADTH_NOISE = f"which features (bootstrap over paired features); the activation sample is fixed; {CONDITIONAL}"
F1_NOISE = f"which features were explained and scored (bootstrap over features); {CONDITIONAL}"
SHIFT_NOISE = ("the probe seeds (crossed with every SSAE, shared with the GSAE) and the SSAEs' own selection seeds; "
               "the GSAE and the test documents are fixed (07 keeps no per-document predictions)")


def term_label(labels: Any) -> str | None:
    """The first TERM model (as ``scorecard.result_claims.term_label``)."""
    return next((label for label in labels if is_term_label(label)), None)


def _missing(name: str, expected: str, what: str, detail: str = "") -> SubTest:
    return SubTest(name, expected, None, (Precondition(what, False, detail),), hierarchical=False)  # type: ignore[arg-type]


def _one_seed_each(labels: Sequence[str]) -> dict[str, int]:
    return {label: 1 for label in labels}


def _tail_docs(tail: Mapping[str, Any]) -> dict[str, int]:
    freq = tail.get("frequency") or {}
    return {freq["split"]: int(freq["documents"])} if "split" in freq and "documents" in freq else {}


def _discordant_pre(n_disc: float) -> Precondition:
    return Precondition(f">= {MIN_DISCORDANT} discordant tail types (McNemar's normal approximation)",
                        n_disc >= MIN_DISCORDANT, f"{n_disc:g} discordant")


# ------------------------------------------------------------------ C6
def tail_coverage_test(tail: Mapping[str, Any]) -> SubTest:
    """C6: the Dense SSAE covers more tail types than the baseline: ``(b - c) / n`` > 0."""
    t = tail["tail_tokens"]
    n, base = int(t["n_tail_types"]), t["baseline"]
    name = f"share of the {n} tail types covered only by Dense minus only by {base}"
    s = t["summary"].get(DENSE_LABEL)
    if s is None or n <= 0:
        return _missing(name, "positive", "05_tail_tokens.json has the Dense SSAE's tail coverage", f"n={n}")
    b, c = int(s["only_ssae"]), int(s["only_baseline"])
    est = normal_estimate((b - c) / n, math.sqrt(b + c) / n, "tail types (McNemar)", _one_seed_each([DENSE_LABEL, base]),
                          _tail_docs(tail), {"n_tail_types": n, "only_dense": b, "only_baseline": c})
    return SubTest(name, "positive", est, (_discordant_pre(b + c),), hierarchical=False, noise=TAIL_NOISE)


# ------------------------------------------------------------------ C7 tail
def term_dense_discordance(t: Mapping[str, Any], term: str) -> dict[str, Any]:
    """TERM vs Dense on the tail types: the exact coverage difference and the discordant
    count (exact where the baseline does not cover a type, an upper bound where it does)."""
    n = int(t["n_tail_types"])
    st, sd = t["summary"][term], t["summary"][DENSE_LABEL]
    covered_by_base = sd["only_baseline"] + sd["both"]
    if st["only_baseline"] + st["both"] != covered_by_base:
        raise ValueError("the two models disagree on how many tail types the baseline covers")
    # the types the baseline does not cover: 05's rows list each with the specialised SSAEs covering it
    rows = t.get("rows") or []
    in_rows = {m: sum(m in r.get("covered_by", ()) for r in rows) for m in (term, DENSE_LABEL)}
    if in_rows[term] == st["only_ssae"] and in_rows[DENSE_LABEL] == sd["only_ssae"]:
        outside = sum((term in r["covered_by"]) != (DENSE_LABEL in r["covered_by"]) for r in rows)
        outside_exact = True
    else:   # rows incomplete: bound this part too
        a, d, room = st["only_ssae"], sd["only_ssae"], n - covered_by_base
        outside, outside_exact = min(a + d, 2 * room - a - d), False
    a, d = st["both"], sd["both"]
    inside_max = min(a + d, 2 * covered_by_base - a - d)     # TERM and Dense overlap as little as they can there
    inside_min = abs(a - d)
    cover_t, cover_d = st["only_ssae"] + st["both"], sd["only_ssae"] + sd["both"]
    return {"n_tail_types": n, "covered_term": cover_t, "covered_dense": cover_d, "effect": (cover_t - cover_d) / n,
            "discordant_max": outside + inside_max, "discordant_min": outside + inside_min,
            "discordant_outside_baseline": outside, "outside_exact": outside_exact}


def term_tail_test(tail: Mapping[str, Any], term: str | None = None) -> SubTest:
    """C7 (tail): TERM's net tail gain over the baseline exceeds Dense ERM's, i.e. TERM covers
    more tail types than Dense (McNemar, conservative SE). ``term``: that TERM model, else
    the judged one."""
    t = tail["tail_tokens"]
    term = term_label(t["summary"]) if term is None else (term if term in t["summary"] else None)
    name = "net tail gain over the baseline, TERM minus Dense ERM (share of tail types)"
    if term is None or DENSE_LABEL not in t["summary"]:
        return _missing(name, "positive", "05_tail_tokens.json has a TERM model and the Dense SSAE")
    name = name.replace("TERM minus", f"{term.split('+', 1)[-1]} minus")
    try:
        d = term_dense_discordance(t, term)
    except ValueError as err:
        return _missing(name, "positive", "05's tail summaries are consistent", str(err))
    n = d["n_tail_types"]
    est = normal_estimate(d["effect"], math.sqrt(d["discordant_max"]) / n, "tail types (McNemar; SE an upper bound)",
                          _one_seed_each([term, DENSE_LABEL]), _tail_docs(tail), d)
    return SubTest(name, "positive", est, (_discordant_pre(d["discordant_min"]),), hierarchical=False,
                   noise=TAIL_NOISE + "; the SE is an upper bound (05 does not say which baseline-covered types TERM and Dense share)")


def term_labels(labels: Any) -> list[str]:
    """Every TERM model's label, the judged one first (``analysis.matched.compared_models``)."""
    return [label for label in labels if is_term_label(label)]


def _term_vs_dense(models: Mapping[str, Any], name: str, term: str | None = None) -> tuple[str, str] | None:
    """The TERM model's label (``term``, else the judged one) and ``name`` with its tilt, or
    None when that TERM model or the Dense SSAE is missing from ``models``."""
    term = term_label(models) if term is None else (term if term in models else None)
    if term is None or DENSE_LABEL not in models:
        return None
    return term, name.replace("TERM minus", f"{term.split('+', 1)[-1]} minus")


# ------------------------------------------------------------------ C7 breadth
def breadth_test(tail: Mapping[str, Any], n_boot: int = 2000, seed: int = 0, term: str | None = None) -> SubTest:
    """C7 (breadth): the median per-feature activation-count difference TERM minus Dense ERM
    (same feature index) is positive; bootstrap SE over features."""
    per = tail["per_model"]
    name = "median per-feature activation count, TERM minus Dense ERM (same feature)"
    found = _term_vs_dense(per, name, term)
    if found is None:
        return _missing(name, "positive", "05_tail_tokens.json has a TERM model and the Dense SSAE")
    term, name = found
    a = np.asarray(per[term]["activation_counts"], float)
    b = np.asarray(per[DENSE_LABEL]["activation_counts"], float)
    if a.shape != b.shape or a.size < 2:
        return _missing(name, "positive", "TERM and Dense have activation counts for the same features",
                        f"{a.size} and {b.size} features")
    diff = a - b
    rng = np.random.default_rng(seed)
    boots = np.median(diff[rng.integers(0, diff.size, (n_boot, diff.size))], axis=1)
    docs = (tail.get("activation_sample") or {}).get("documents")
    est = normal_estimate(float(np.median(diff)), float(boots.std(ddof=1)), "features (bootstrap of the median)",
                          _one_seed_each([term, DENSE_LABEL]), {"activation sample": int(docs)} if docs else {},
                          {"n_features": int(diff.size), "n_boot": n_boot})
    return SubTest(name, "positive", est, (), hierarchical=False, noise=BREADTH_NOISE)


# ------------------------------------------------------------------ C8
LLM_PRECONDITION = "the explanations come from an LLM (ANTHROPIC_API_KEY set)"


def autointerp_test(autointerp: Mapping[str, Any], term: str | None = None) -> SubTest:
    """C8: TERM's features get a higher mean autointerp F1 than Dense ERM's."""
    s = autointerp["summary"]
    name = "mean autointerp F1, TERM minus Dense ERM"
    found = _term_vs_dense(s, name, term)
    if found is None:
        return _missing(name, "positive", "06_autointerp.json has a TERM model and the Dense SSAE")
    term, name = found
    mode = autointerp.get("mode")
    llm = Precondition(LLM_PRECONDITION, mode == "claude",
                       f"mode {mode!r}, explainer: {autointerp.get('explainer', '?')}")
    have_ci = all(s[m].get(k) is not None for m in (term, DENSE_LABEL) for k in ("mean", "ci_low", "ci_high"))
    ci = Precondition("each model's mean F1 has a bootstrap CI", have_ci,
                      "" if have_ci else "fewer than two scored features")
    if not have_ci:
        return SubTest(name, "positive", None, (llm, ci), hierarchical=False, noise=F1_NOISE)

    def se_of(m: str) -> float:
        z = float(sps.norm.ppf((1 + float(s[m].get("level", 0.95))) / 2))
        return (s[m]["ci_high"] - s[m]["ci_low"]) / (2 * z)

    se = math.sqrt(se_of(term) ** 2 + se_of(DENSE_LABEL) ** 2)
    docs = (autointerp.get("data") or {})
    est = normal_estimate(s[term]["mean"] - s[DENSE_LABEL]["mean"], se, "explained features (bootstrap CIs, independent)",
                          _one_seed_each([term, DENSE_LABEL]),
                          {docs["split"]: int(docs["documents"])} if "split" in docs and "documents" in docs else {},
                          {"n_term": int(s[term]["n"]), "n_dense": int(s[DENSE_LABEL]["n"]),
                           "se_term": se_of(term), "se_dense": se_of(DENSE_LABEL)})
    return SubTest(name, "positive", est, (llm, ci), hierarchical=False, noise=F1_NOISE)


# ------------------------------------------------------------------ C9
def wilson_lower(p: float, n: int, level: float = 0.95) -> float:
    """The lower end of the two-sided Wilson score interval of a proportion."""
    z = float(sps.norm.ppf((1 + level) / 2))
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n)


def gender_use_precondition(bios: Mapping[str, Any]) -> Precondition:
    """The original probe uses gender: a lower 95% bound of its gender accuracy on the balanced
    test set above ``GENDER_BOUND`` (the recorded CI; else Wilson; else the seed spread)."""
    name = f"the original (unablated) probe uses gender: lower 95% bound of its gender accuracy on the balanced set > {GENDER_BOUND:g}"
    rows = {r["row"]: r for r in bios["table"]}
    g = (rows.get("Original") or {}).get("gender_acc") or {}
    mean, level = g.get("mean"), float((bios.get("bios_config") or {}).get("ci_level", 0.95))
    if mean is None:
        return Precondition(name, False, "07 records no gender accuracy of the Original row")
    if g.get("ci") and abs(level - 0.95) < 1e-9:
        lo, how = float(g["ci"][0]), (f"the lower end of 07's recorded 95% CI (bootstrap over test documents within "
                                      f"groups, of the mean over {g.get('n', '?')} probe seeds)")
    elif (test := (bios.get("data") or {}).get("test")) and all("docs" in v for v in test.values()):
        n = int(sum(v["docs"] for v in test.values()))
        lo, how = wilson_lower(float(mean), n), f"a Wilson 95% lower bound from the accuracy and the {n} balanced test documents"
    elif g.get("n", 0) >= 2 and g.get("std") is not None:
        n = int(g["n"])
        lo = float(mean) - float(sps.t.ppf(0.975, n - 1)) * float(g["std"]) / math.sqrt(n)
        how = f"a t 95% lower bound from the spread over {n} probe seeds (no CI or test-set size recorded)"
    else:
        return Precondition(name, False, f"gender accuracy {mean:.3f} with no CI, test-set size or seed spread: no bound")
    return Precondition(name, lo > GENDER_BOUND, f"gender accuracy {float(mean):.3f}, bound {lo:.3f}: {how}")


def shift_test(bios: Mapping[str, Any], ssae_row: str = "SSAE SHIFT", gsae_row: str = "GSAE SHIFT") -> SubTest:
    """C9: SHIFT with the SSAE reaches a higher worst-group accuracy than with the GSAE
    (crossed probe seeds x SSAE selection seeds; module docstring)."""
    name = f"worst-group accuracy, {ssae_row} minus {gsae_row} (per probe seed, averaged over the SSAEs)"
    gender = gender_use_precondition(bios)
    runs = bios.get("runs") or []
    gsae = {int(r["probe_seed"]): float(r["worst_group_acc"]) for r in runs if r["row"] == gsae_row}
    ssae: dict[int, dict[int, float]] = {}
    for r in runs:
        if r["row"] == ssae_row:
            ssae.setdefault(int(r.get("selection_seed") or 0), {})[int(r["probe_seed"])] = float(r["worst_group_acc"])
    probes = sorted(gsae)
    crossed = bool(ssae) and bool(probes) and all(sorted(v) == probes for v in ssae.values())
    pre = [gender,
           Precondition(f"07 has per-run {ssae_row} and {gsae_row} results, every SSAE on every probe seed", crossed,
                        f"probe seeds {probes}; SSAEs (selection seeds) {sorted(ssae)}")]
    if not crossed:
        return SubTest(name, "positive", None, tuple(pre), hierarchical=False, noise=SHIFT_NOISE)
    sel = sorted(ssae)
    x = np.array([[ssae[j][k] - gsae[k] for k in probes] for j in sel])   # [SSAEs, probe seeds]
    g = x.mean(1)
    arm = Arm(g, {"probe seeds": x - g[:, None]}, tuple(sel))
    e = contrast({"SSAE - GSAE": arm}, {"SSAE - GSAE": 1.0})
    rename = {"documents probe seeds": "probe seeds (shared by SSAE and GSAE; crossed with the SSAEs)",
              "seeds SSAE - GSAE": "SSAE selection seeds (own to the SSAE)"}
    comps = tuple(dataclasses.replace(c, source=rename.get(c.source, c.source)) for c in e.components)
    test = (bios.get("data") or {}).get("test") or {}
    n_test = int(sum(v.get("docs", 0) for v in test.values()))
    est = dataclasses.replace(e, components=comps, n_seeds={"SSAE selection seeds": len(sel), "probe seeds": len(probes)},
                              n_docs={"test": n_test} if n_test else {}, unknown_doc_variance=())
    pre += [Precondition(">= 2 probe seeds (the crossed unit)", len(probes) >= 2, f"{len(probes)}"),
            Precondition(">= 2 SSAE selection seeds (the SSAE's own training noise is known)", len(sel) >= 2, f"{len(sel)}")]
    return SubTest(name, "positive", est, tuple(pre), hierarchical=False, noise=SHIFT_NOISE)


# ------------------------------------------------------------------ all of them
def other_arm_subtests(tail: Mapping[str, Any] | None, autointerp: Mapping[str, Any] | None) -> dict[str, list[SubTest]]:
    """C7's tail and breadth sub-tests and C8's for every TERM model but the judged one (the
    bracket shown beside the verdict; ``scorecard`` judges them as a family of their own)."""
    out: dict[str, list[SubTest]] = {"C7": [], "C8": []}
    if tail:
        for term in term_labels(tail["tail_tokens"]["summary"])[1:]:
            out["C7"] += [term_tail_test(tail, term), breadth_test(tail, term=term)]
    if autointerp:
        out["C8"] += [autointerp_test(autointerp, term) for term in term_labels(autointerp["summary"])[1:]]
    return out


def result_subtests(tail: Mapping[str, Any] | None, autointerp: Mapping[str, Any] | None,
                    bios: Mapping[str, Any] | None) -> dict[str, list[SubTest]]:
    """C6, C7 (tail, breadth: its perplexity part is ``stats.pareto.term_ppl_test``), C8 and C9;
    a missing results file makes its sub-tests untestable, naming the file."""
    def gone(name: str, expected: str, file: str) -> SubTest:
        return _missing(name, expected, f"{file} exists", f"run notebook {file[:2]} first")

    tail_file, ai_file, bios_file = "05_tail_tokens.json", "06_autointerp.json", "07_bias_in_bios.json"
    return {
        "C6": [tail_coverage_test(tail) if tail else gone("tail coverage, Dense minus the baseline", "positive", tail_file)],
        "C7": ([term_tail_test(tail), breadth_test(tail)] if tail else
               [gone("net tail gain, TERM minus Dense ERM", "positive", tail_file),
                gone("median per-feature activation count, TERM minus Dense ERM", "positive", tail_file)]),
        "C8": [autointerp_test(autointerp) if autointerp else gone("mean autointerp F1, TERM minus Dense ERM", "positive", ai_file)],
        "C9": [shift_test(bios) if bios else gone("worst-group accuracy, SSAE SHIFT minus GSAE SHIFT", "positive", bios_file)],
    }
