"""Feature dashboards: one static HTML page per feature the report talks about.

For a feature of an SAE: its top-activating token windows (each token shaded by the
feature's activation), the histogram of its nonzero activations over the sample, how often it
fires, and its logit-lens tokens (the decoder direction through the final norm's scale and the
unembedding, ``ssae_utils.analysis.logit_lens``: the tokens it promotes and suppresses).
``sae-dashboard`` would do this but cannot be installed beside this project's pins (it pulls
another torch and TransformerLens 2), so the pages come from the small template below.

``build_dashboards`` computes the numbers (torch, the SAE and the activations in memory);
``render_dashboards`` writes the pages from them alone (plain data, JSON-able), so a results
file can keep them and the pages can be redrawn without the model.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ssae_utils.io import atomic_path


@dataclass
class FeatureDashboard:
    model: str
    feature: int
    why: str                                   # why the report shows it ("Dense-only tail feature", ...)
    firing_share: float                        # share of sample tokens where it is > 0
    max_activation: float
    windows: list[dict[str, Any]]              # {"tokens": [str], "acts": [float], "max": float, "doc": int}
    histogram: dict[str, list[float]]          # {"edges": [...], "counts": [...]} of the nonzero activations
    promoted: list[tuple[str, float]] = field(default_factory=list)   # logit lens, highest
    suppressed: list[tuple[str, float]] = field(default_factory=list)  # logit lens, lowest

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def slug(self) -> str:
        safe = "".join(c if c.isalnum() else "_" for c in self.model).strip("_")
        return f"{safe}_f{self.feature}"


def top_windows(values: np.ndarray, doc_index: np.ndarray, token_text: Sequence[str], k: int,
                width: int) -> list[dict[str, Any]]:
    """The ``k`` highest activations of one feature (at most one per document), each with the
    tokens of its document around it (``width`` before, ``width // 2`` after)."""
    order = np.argsort(-values, kind="stable")
    seen: set[int] = set()
    out = []
    for i in order:
        if values[i] <= 0 or len(out) >= k:
            break
        doc = int(doc_index[i])
        if doc in seen:
            continue
        seen.add(doc)
        lo, hi = i, i
        while lo > 0 and doc_index[lo - 1] == doc and i - lo < width:
            lo -= 1
        while hi + 1 < len(values) and doc_index[hi + 1] == doc and hi - i < width // 2:
            hi += 1
        out.append({"tokens": [token_text[j] for j in range(lo, hi + 1)],
                    "acts": [round(float(values[j]), 4) for j in range(lo, hi + 1)],
                    "max": round(float(values[i]), 4), "doc": doc})
    return out


def histogram(values: np.ndarray, bins: int) -> dict[str, list[float]]:
    nonzero = values[values > 0]
    if nonzero.size == 0:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(nonzero, bins=bins)
    return {"edges": [round(float(e), 5) for e in edges], "counts": [int(c) for c in counts]}


def build_dashboards(model: str, encode: Callable[[Any], Any], acts: Any, doc_index: Sequence[int],
                     token_text: Sequence[str], features: dict[int, str], logit_lens: dict[int, tuple[list, list]] | None = None,
                     k: int = 8, width: int = 12, bins: int = 30, chunk: int = 4096) -> list[FeatureDashboard]:
    """Dashboards of ``features`` (feature -> why it is shown) of one SAE: ``encode`` maps
    activations [n, d_in] to features [n, d_sae]; ``acts`` [n_tokens, d_in] in document order
    with ``doc_index`` and each token's text; ``logit_lens`` feature -> (promoted, suppressed)
    [(token, value)] from ``logit_lens.top_tokens`` when given."""
    import torch

    ids = sorted(features)
    columns = []
    with torch.no_grad():
        for start in range(0, len(acts), chunk):
            f = encode(torch.as_tensor(acts[start:start + chunk]))
            columns.append(f[:, ids].float().cpu().numpy())
    values = np.concatenate(columns) if columns else np.zeros((0, len(ids)), dtype=np.float32)
    doc_index = np.asarray(doc_index)
    out = []
    for c, feature in enumerate(ids):
        v = values[:, c]
        promoted, suppressed = (logit_lens or {}).get(feature, ([], []))
        out.append(FeatureDashboard(model, feature, features[feature], float((v > 0).mean()) if len(v) else 0.0,
                                    float(v.max()) if len(v) else 0.0, top_windows(v, doc_index, token_text, k, width),
                                    histogram(v, bins), list(promoted), list(suppressed)))
    return out


# ---------------------------------------------------------------------------- pages
_STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:1.5em auto;padding:0 1em;color:#222}
.win{font-family:ui-monospace,monospace;font-size:13px;line-height:1.9;margin:.3em 0;padding:.2em .4em;border-left:3px solid #ddd}
.tok{padding:1px 0;border-radius:2px;white-space:pre}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}
a{color:#0969da}p{overflow-wrap:anywhere}"""


def _shade(value: float, top: float) -> str:
    alpha = 0.0 if top <= 0 else max(0.0, min(1.0, value / top))
    return f"rgba(230,120,20,{alpha:.2f})"


def _histogram_svg(h: dict[str, list[float]], width: int = 480, height: int = 120) -> str:
    if not h["counts"]:
        return "<p>never fires on the sample</p>"
    top = max(h["counts"]) or 1
    n = len(h["counts"])
    bar = width / n
    rects = "".join(f"<rect x='{i * bar:.1f}' y='{height - height * c / top:.1f}' width='{bar - 1:.1f}' "
                    f"height='{height * c / top:.1f}' fill='#e67814'><title>{h['edges'][i]:.3g}-{h['edges'][i + 1]:.3g}: {c}"
                    f"</title></rect>" for i, c in enumerate(h["counts"]))
    return (f"<svg width='{width}' height='{height + 16}' role='img' aria-label='activation histogram'>{rects}"
            f"<text x='0' y='{height + 14}' font-size='11'>{h['edges'][0]:.3g}</text>"
            f"<text x='{width - 40}' y='{height + 14}' font-size='11'>{h['edges'][-1]:.3g}</text></svg>")


def _page(d: FeatureDashboard, index_name: str) -> str:
    windows = "".join(
        "<div class='win'>" + "".join(
            f"<span class='tok' style='background:{_shade(a, d.max_activation)}' title='{a:.3g}'>{html.escape(t)}</span>"
            for t, a in zip(w["tokens"], w["acts"])) + f" <small>(max {w['max']:.3g}, document {w['doc']})</small></div>"
        for w in d.windows) or "<p>no firing window in the sample</p>"
    lens = lambda rows: ", ".join(f"<code>{html.escape(repr(t))}</code> {v:+.2f}" for t, v in rows) or "&ndash;"  # noqa: E731
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(d.model)} feature {d.feature}</title>
<style>{_STYLE}</style></head><body><p><a href='{index_name}'>all dashboards</a></p>
<h1>{html.escape(d.model)}, feature {d.feature}</h1><p>{html.escape(d.why)}. Fires on {100 * d.firing_share:.2f}% of the
sample's tokens; largest activation {d.max_activation:.3g}.</p>
<h2>Top-activating windows</h2>{windows}
<h2>Activations where it fires</h2>{_histogram_svg(d.histogram)}
<h2>Logit lens</h2><p>promotes: {lens(d.promoted)}</p><p>suppresses: {lens(d.suppressed)}</p></body></html>
"""


def render_dashboards(dashboards: Sequence[FeatureDashboard | dict[str, Any]], out_dir: Path, title: str) -> Path:
    """One page per feature and ``index.html`` listing them by model; returns the index."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    boards = [d if isinstance(d, FeatureDashboard) else FeatureDashboard(**d) for d in dashboards]
    rows = []
    for d in boards:
        with atomic_path(out_dir / f"{d.slug}.html") as tmp:
            tmp.write_text(_page(d, "index.html"), encoding="utf-8")
        rows.append(f"<tr><td>{html.escape(d.model)}</td><td><a href='{d.slug}.html'>{d.feature}</a></td>"
                    f"<td>{html.escape(d.why)}</td><td>{100 * d.firing_share:.2f}%</td></tr>")
    index = out_dir / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>
<table><tr><th>model</th><th>feature</th><th>why it is shown</th><th>fires on</th></tr>{''.join(rows)}</table></body></html>
""", encoding="utf-8")
    with atomic_path(out_dir / "dashboards.json") as tmp:
        tmp.write_text(json.dumps([d.to_dict() for d in boards]))
    return index
