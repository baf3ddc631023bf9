"""Feature dashboards: windows around the top activations, histogram, pages that link up."""

from __future__ import annotations

import numpy as np
import torch

from ssae_utils.analysis.dashboards import build_dashboards, render_dashboards, top_windows
from tests.report_check import check_links


def test_top_windows_take_one_peak_per_document_and_stay_inside_it():
    values = np.array([0.0, 3.0, 1.0, 0.0, 5.0, 4.0, 0.0])
    docs = np.array([0, 0, 0, 1, 1, 1, 2])
    text = [f"t{i}" for i in range(7)]
    wins = top_windows(values, docs, text, k=5, width=4)
    assert [w["max"] for w in wins] == [5.0, 3.0]            # doc 1's second peak is not repeated
    assert wins[0]["tokens"] == ["t3", "t4", "t5"] and wins[1]["tokens"] == ["t0", "t1", "t2"]


def test_dashboards_of_a_toy_sae_render_into_linked_pages(tmp_path):
    acts = torch.zeros(40, 2)
    acts[::7, 0] = torch.arange(1, 7, dtype=torch.float32)    # feature 0 fires on 6 tokens
    encode = lambda x: torch.relu(x @ torch.eye(2))            # noqa: E731  feature i = input i
    docs = np.repeat(np.arange(8), 5)
    boards = build_dashboards("Dense SSAE", encode, acts, docs, [f"w{i}" for i in range(40)],
                              {0: "a Dense-only tail feature", 1: "a random feature"},
                              logit_lens={0: ([(" Planck", 3.2)], [(" the", -1.0)])}, k=3, width=2, bins=4)
    first, second = boards
    assert first.firing_share == 6 / 40 and first.max_activation == 6.0 and len(first.windows) == 3
    assert sum(first.histogram["counts"]) == 6 and second.histogram == {"edges": [], "counts": []}
    index = render_dashboards(boards, tmp_path / "dash", "Dashboards (smoke)")
    pages = check_links(index)
    assert len(pages) == 3 and "Planck" in (tmp_path / "dash" / f"{first.slug}.html").read_text()
    assert "never fires" in (tmp_path / "dash" / f"{second.slug}.html").read_text()
