#!/usr/bin/env python
"""Corpora memory: building and loading a synthetic OpenWebText-like pool with
``data.storage="jsonl"`` (lists of Documents) vs ``"arrow"`` (memory-mapped DocumentTables).

    python bench/bench_corpora.py                       # 100k documents, ~5 min on 2 cores
    python bench/bench_corpora.py --docs 20000 --out /tmp/c.json

One run writes a local parquet file with OpenWebText's ``text`` column (``--docs`` rows,
~``--words`` words each, 3% exact duplicates, 5% long enough to be chunked) and points the
paper preset's ``openwebtext`` source at it (the subdomains and biographies are the small
test fixtures). Each measurement runs in a fresh child process, which reports its own peak
RSS (``ru_maxrss``, which includes the file pages of memory-mapped tables it read) and its
peak anonymous RSS (heap only, sampled), each above its RSS after the imports:

- ``build``: ``build_corpora`` on an empty cache;
- ``load``:  ``build_corpora`` on the warm cache (JSONL parsed vs tables memory-mapped);
- ``load_and_read``: load, then read every pool text once (what a stage's pass does).

The token-count section counts ``--token-docs`` distinct synthetic texts with the smoke
model's fast tokenizer through ``document_token_counts`` (a DocumentTable, batch by batch)
and times the cache (one JSON map, document hash -> count), extrapolated linearly to 1M.
Writes bench/results/corpora.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures" / "paper"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _anon_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _AnonPeak:
    """Peak anonymous RSS (heap, not file pages), sampled every 5 ms: ``ru_maxrss`` also
    counts the pages of a memory-mapped table that were read, which the kernel can drop."""

    def __init__(self) -> None:
        import threading

        self.peak = _anon_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _anon_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _anon_mb())


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


def write_pool(path: Path, n_docs: int, words: int, seed: int = 0) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    vocab = [f"tok{i}" for i in range(20_000)]
    writer, pending, recent, size = None, [], [], 0
    for i in range(n_docs):
        if recent and rng.random() < 0.03:
            text = rng.choice(recent)                           # exact duplicate
        else:
            n = words * 6 if rng.random() < 0.05 else rng.randint(words // 2, words * 3 // 2)
            text = "\n\n".join(" ".join(rng.choices(vocab, k=min(80, n - k))) + "." for k in range(0, n, 80))
            recent = (recent + [text])[-50:]
        pending.append(text)
        size += len(text)
        if len(pending) == 5_000 or i == n_docs - 1:
            table = pa.table({"text": pending})
            writer = writer or pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table)
            pending = []
    writer.close()
    return size


def _config(pool: Path, storage: str):
    from ssae_utils.data import DataConfig

    options = {"openwebtext": {"path": str(pool)},
               "arxiv_physics": {"path": str(FIXTURES / "arxiv_physics.jsonl")},
               "physics_instruct": {"path": str(FIXTURES / "physics_instruct.jsonl")},
               "pile_toxicity": {"path": str(FIXTURES / "pile_toxicity.jsonl")},
               "bias_in_bios": {"path": str(FIXTURES / "bias_in_bios")}}
    return DataConfig.paper(source_options=options, storage=storage, max_words=1_000)


def _domains():
    import dataclasses

    from ssae_utils.domains import preset_domains

    d = preset_domains("paper")
    return {"physics": dataclasses.replace(d["physics"], seed_words=20, val_words=20, test_words=None, ood_words=None),
            "toxicity": dataclasses.replace(d["toxicity"], seed_words=10, val_words=10, test_words=None)}


def child(pool: str, storage: str, phase: str) -> None:
    """One measurement in this process: prints a JSON line."""
    from ssae_utils.data import build_corpora  # noqa: F401  (imports before the baseline)
    import datasets  # noqa: F401

    base, base_anon = _rss_mb(), _anon_mb()
    sampler = _AnonPeak()
    t = time.perf_counter()
    corpora = build_corpora(_config(Path(pool), storage), _domains())
    chars = 0
    if phase == "load_and_read":
        pool_docs = corpora["general_pool"]
        if hasattr(pool_docs, "iter_text_batches"):
            chars = sum(len(t) for b in pool_docs.iter_text_batches(2048) for t in b)
        else:
            chars = sum(len(d.text) for d in pool_docs)
    anon_peak = sampler.stop()
    print(json.dumps({"storage": storage, "phase": phase, "seconds": round(time.perf_counter() - t, 2),
                      "peak_anon_above_imports_mb": round(anon_peak - base_anon, 1),
                      "peak_rss_mb": round(_peak_mb(), 1), "rss_after_imports_mb": round(base, 1),
                      "peak_above_imports_mb": round(_peak_mb() - base, 1),
                      "pool_docs": len(corpora["general_pool"]), "chars_read": chars}))


def _run_child(pool: Path, storage: str, phase: str, cache: Path) -> dict:
    env = {**os.environ, "SSAE_CACHE": str(cache), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, "--child", str(pool), storage, phase], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{storage}/{phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def token_section(n_docs: int, work: Path) -> dict:
    from ssae_utils.activations import document_hash
    from ssae_utils.data.documents import make_document
    from ssae_utils.data.table import DocumentTable
    from ssae_utils.model.config import ModelConfig
    from ssae_utils.model.registry import load_model
    from ssae_utils.token_counts import _cache, document_token_counts

    os.environ["SSAE_CACHE"] = str(work / "tok_cache")
    rng = random.Random(1)
    vocab = [f"tok{i}" for i in range(20_000)]
    table = DocumentTable.write((make_document(" ".join(rng.choices(vocab, k=rng.randint(100, 300))) + f" d{i}", "s")
                                 for i in range(n_docs)), work / "tok.arrow")
    tok = load_model(ModelConfig.smoke()).tokenizer
    t = time.perf_counter()
    counts = document_token_counts(table, tok, "bench")
    cold = time.perf_counter() - t
    t = time.perf_counter()
    document_token_counts(table, tok, "bench")
    warm = time.perf_counter() - t
    t = time.perf_counter()
    hashes = [document_hash(x) for b in table.iter_text_batches(2048) for x in b]
    hashing = time.perf_counter() - t
    path, known = _cache("bench")
    t = time.perf_counter()
    json.loads(path.read_text())
    cache_load = time.perf_counter() - t
    scale = 1_000_000 / n_docs
    return {"docs": n_docs, "tokens": int(sum(counts)), "tokenizer": "smoke model's fast tokenizer",
            "cold_s": round(cold, 2), "warm_s": round(warm, 3), "hashing_s": round(hashing, 3),
            "cache_json_mb": round(path.stat().st_size / 2**20, 2), "cache_json_load_s": round(cache_load, 3),
            "extrapolated_to_1M": {"cold_s": round(cold * scale, 1), "warm_s": round(warm * scale, 1),
                                   "cache_json_mb": round(path.stat().st_size / 2**20 * scale, 1),
                                   "cache_json_load_s": round(cache_load * scale, 2)},
            "distinct_hashes": len(set(hashes)) == n_docs}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--words", type=int, default=200, help="mean words per document")
    ap.add_argument("--token-docs", type=int, default=50_000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "corpora.json")
    args = ap.parse_args()
    from ssae_utils.io import write_json_atomic

    with tempfile.TemporaryDirectory(prefix="bench_corpora_") as tmp:
        work = Path(tmp)
        pool = work / "owt.parquet"
        chars = write_pool(pool, args.docs, args.words)
        rows = {}
        for storage in ("jsonl", "arrow"):
            cache = work / f"cache_{storage}"
            for phase in ("build", "load", "load_and_read"):
                rows[f"{storage}_{phase}"] = r = _run_child(pool, storage, phase, cache)
                print(json.dumps(r), flush=True)
        disk = {s: round(sum(p.stat().st_size for p in (work / f"cache_{s}").rglob("*") if p.is_file()) / 2**20, 1)
                for s in ("jsonl", "arrow")}
        tokens = token_section(args.token_docs, work) if args.token_docs else None
    ratios = {f"{phase}_{kind}": round(rows[f"jsonl_{phase}"][key] / max(rows[f"arrow_{phase}"][key], 0.1), 2)
              for phase in ("build", "load", "load_and_read")
              for kind, key in (("rss", "peak_above_imports_mb"), ("anon", "peak_anon_above_imports_mb"))}
    out = {"docs": args.docs, "mean_words": args.words, "text_mb": round(chars / 2**20, 1), "runs": rows,
           "peak_rss_ratio_jsonl_over_arrow": ratios, "cache_disk_mb": disk, "token_counts": tokens,
           "python": sys.version.split()[0]}
    write_json_atomic(args.out, out)
    print(json.dumps({"ratios": ratios, "disk": disk, "token_counts": tokens}, indent=1))


if __name__ == "__main__":
    main()
