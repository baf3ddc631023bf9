"""Table 1 (SHIFT) as Markdown and LaTeX: every row and metric, CIs, the paper's column."""

from __future__ import annotations

from ssae_utils.bios.table1 import to_latex, to_markdown


def _results():
    metric = lambda m, lo, hi: {"mean": m, "std": 0.01, "n": 3, "ci": [lo, hi]}  # noqa: E731
    row = lambda name, paper: {"row": name, "n_runs": 3, "profession_acc": metric(0.95, 0.93, 0.97),  # noqa: E731
                               "gender_acc": metric(0.53, 0.51, 0.55), "worst_group_acc": metric(0.9, 0.85, 0.94),
                               "paper_worst_group_acc": paper}
    return {"profile": "smoke", "bios_config": {"professions": ["professor", "nurse"], "ci_level": 0.95},
            "data": {"test": {"a": {"docs": 10}, "b": {"docs": 12}}},
            "table": [row("Original", None), row("GSAE SHIFT", 0.76), row("SSAE_1/8 & co", None)]}


def test_markdown_has_one_line_per_row_with_mean_and_ci():
    md = to_markdown(_results())
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + 3
    assert "| GSAE SHIFT | 3 | 0.950 [0.930, 0.970] | 0.530 [0.510, 0.550] | 0.900 [0.850, 0.940] | 0.760 |" in lines
    assert "professor (male) vs nurse (female)" in md and "22 biographies" in md


def test_latex_escapes_and_closes_its_environment():
    tex = to_latex(_results())
    assert tex.startswith(r"\begin{table}") and tex.rstrip().endswith(r"\end{table}")
    assert r"SSAE\_1/8 \& co" in tex and tex.count(r"\\") == 1 + 3
