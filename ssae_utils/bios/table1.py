"""Table 1 (SHIFT) as a table: Markdown and LaTeX from ``07_bias_in_bios.json``'s rows.

Each cell is the mean over runs with its bootstrap CI; the paper's worst-group accuracy
(Pythia-70M) sits beside ours where it reports one. Torch-free: the report's tables can be
rebuilt from the committed results alone.
"""

from __future__ import annotations

from typing import Any

METRICS = (("profession_acc", "Profession acc."), ("gender_acc", "Gender acc. (ideal 0.5)"),
           ("worst_group_acc", "Worst-group acc."))


def cell(value: dict[str, Any], digits: int = 3) -> str:
    ci = value.get("ci")
    return f"{value['mean']:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def table_rows(results: dict[str, Any], digits: int) -> tuple[list[str], list[list[str]]]:
    header = ["Method", "Runs", *(title for _, title in METRICS), "Paper worst-group"]
    body = []
    for row in results["table"]:
        paper = row.get("paper_worst_group_acc")
        body.append([row["row"], str(row["n_runs"]), *(cell(row[m], digits) for m, _ in METRICS),
                     "" if paper is None else f"{paper:.3f}"])
    return header, body


def caption(results: dict[str, Any]) -> str:
    cfg = results["bios_config"]
    n_test = sum(g["docs"] for g in results["data"]["test"].values())
    return (f"Table 1 (SHIFT), {results['profile']} profile: {cfg['professions'][0]} (male) vs {cfg['professions'][1]} "
            f"(female), balanced test set of {n_test} biographies; mean over runs [{round(100 * cfg['ci_level'])}% "
            "bootstrap CI]. \"+ retrain\": the probe retrained after the ablation. Paper: Pythia-70M, worst-group only.")


def to_markdown(results: dict[str, Any], digits: int = 3) -> str:
    header, body = table_rows(results, digits)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join([caption(results), "", *lines]) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


def to_latex(results: dict[str, Any], digits: int = 3) -> str:
    header, body = table_rows(results, digits)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
             r"\toprule", " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(c) for c in r) + r" \\" for r in body]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex(caption(results))}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"
