"""Spreading a stage over processes, GPUs and machines with torchrun.

    python run_all.py --profile smoke --nproc 2                 # this machine, 2 processes
    torchrun --standalone --nproc-per-node 2 -m ssae_utils.dist finetune --profile smoke   # or retrieval, tracin, bias_in_bios

A stage's independent work items (stage 03: one lambda grid per domain x strategy x tilt x
seed, trained, then picked and evaluated; stage 02: activation shards and chunks of the TracIn
candidate stream; stage 01: batches or shards of the pool embedding; stage 07: one
biographies SSAE per selection seed) are listed in the order the single-process run meets
them and shared out over the ranks (``assign``: cost-balanced, deterministic). Every rank runs
the existing cached functions on its own device (``cuda:LOCAL_RANK``; the CPU here, with
``cores // local processes`` torch threads), so its outputs land in the shared,
content-addressed cache under the names the single-process run would use, written
atomically. Nothing is merged by hand: the notebook's own single-process pass then finds
every item in the cache and writes the stage's one results file (rank 0's job in the
issue's terms), exactly as a rerun of a finished stage does. A rerun computes only the items
not yet in the cache.

Stage 01 (``embed_worker``): only the pool embedding; BM25, the seed embeddings, the dense
search and the selections stay in the notebook's one process. The embedder's own batches
(``embedder.batches``: for a transformer, the texts sorted by length in fixed batches of
``retrieval.embed_batch_size``, so a row depends on its batch's padding) are the items:
rank r embeds the batches j with j % world_size == r (``embedder.embed_batches``, the code
``embed`` runs), so every row is bit-identical to a single process's. float32
(``embed_cached``'s one ``.npy``): each rank saves its rows and their indices as a part
(``embed_part_path``, content-addressed, atomic); after a barrier rank 0 assembles the array
and stores it with ``store_embedding``, exactly as ``embed_cached`` would (same path, same
digest), then removes the parts. float16 shards (``embed_to_shards``): rank r writes the
shards i with i % world_size == r with the same ``write_shard``; the notebook's own
``embed_to_shards`` then resumes from them (content-checking each) and writes the manifest.

Stage 02 (``tracin_worker``): the seed (and, unless streamed, candidate) activation shards
as below; streamed (``retrieval.tracin_stream``), rank r runs the chunks i with
i % world_size == r of each domain's candidate stream, and the per-document float64 token
sums are all-reduced (exact: every document lies in one chunk) and saved by rank 0 under
``pipeline.tracin.streamed_sums_key``, where the notebook's own pass finds them.

Stage 03 in three phases, each ended by a barrier:

1. activations: the shards the single-process run would write (evaluation documents and
   the training documents of every grid not yet trained, in its order, planned exactly as
   ``ActivationStore.ensure`` does) are computed, shard by shard, round robin over the
   ranks. Planning them up front keeps the shard layout, and so every activation, the same
   as in a single-process run, whatever the number of processes.
2. training: each rank trains its grids (``train_grid``: every kept checkpoint is saved).
3. evaluation: every grid's checkpoint pick and patched CE (the stage's largest part on the
   embedded profile), shared out over the ranks into the evaluation cache
   (``pipeline.eval_cache``: one entry per SSAE and evaluation set); the notebook's pass
   then reads them, and evaluates only the GSAE and the clean model (once per split).

Stage 07 (``bios_worker``) the same way, for its biographies SSAEs only (probes, SHIFT and
SCR stay in the notebook's one process): every rank lists the SSAEs ``bios_ssaes`` trains
(``pipeline.bias_in_bios.bios_trainings``: seed bios -> dense selection -> training documents
and config; rank 0 first, so the seed embeddings it caches have one writer), caches the
shards of the study's biographies and then of the training documents of every SSAE not yet
trained, in that order (what the single-process stage caches before and for them), round
robin as above, and trains its share with ``train_grid``.

Equality with a single process: on the CPU, float sums depend on how many threads split
them, so an SSAE trained with 2 threads differs in the last bits from one trained with 1
(measured on the smoke sweep, see ``tests/test_dist.py``). ``SSAE_TORCH_THREADS`` (set by
the launcher) fixes the thread count of every rank; the equivalence test compares against
a single-process run with the same thread count. On GPUs the thread count does not enter.

A rank that raises (or dies) makes torchrun stop the others and exit non-zero; ``launch``
then raises with the failing rank's error, so the notebook fails before any results file is
written. ``SSAE_DIST_FAULT=RANK:N:raise|exit`` makes rank RANK fail after its N-th item (a
grid, a candidate chunk, an embedding batch or shard, a biographies SSAE; the fault tests).

Several machines: every node runs the same torchrun command with ``--nnodes``,
``--rdzv-backend c10d --rdzv-endpoint HOST:PORT`` and the same ``--rdzv-id``, and they all
need the same cache folder (SSAE_CACHE on a shared file system); see the README.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

log = logging.getLogger(__name__)

STAGES = ("retrieval", "tracin", "finetune", "bias_in_bios")
ENV_NPROC, ENV_NNODES, ENV_RDZV = "SSAE_NPROC", "SSAE_NNODES", "SSAE_RDZV_ENDPOINT"
ENV_RDZV_ID, ENV_THREADS, ENV_FAULT = "SSAE_RDZV_ID", "SSAE_TORCH_THREADS", "SSAE_DIST_FAULT"
ENV_TIMEOUT = "SSAE_DIST_TIMEOUT_S"
PEER_FAILURE_GRACE_S = 5.0

T = TypeVar("T")


# ------------------------------------------------------------------ sharing out the work
def assign(costs: Sequence[float], world_size: int) -> list[int]:
    """The rank of each item: longest first onto the least-loaded rank (ties: the earlier
    item, the lower rank). Deterministic, so every rank computes the same answer."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, not {world_size}")
    load = [0.0] * world_size
    ranks = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(world_size), key=lambda r: (load[r], r))
        ranks[i] = r
        load[r] += costs[i]
    return ranks


def local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_rank(local_world_size: int, cores: int | None = None) -> int:
    return max(1, (cores or local_cores()) // max(1, local_world_size))


# ------------------------------------------------------------------ the launcher (notebook side)
def requested() -> dict[str, Any] | None:
    """What run_all asked for (``--nproc`` etc., passed as environment variables), or None
    for one process. Inside a torchrun worker it is always None."""
    if "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ:
        return None
    nproc = int(os.environ.get(ENV_NPROC, "1") or 1)
    nnodes = os.environ.get(ENV_NNODES, "1") or "1"
    if nproc <= 1 and nnodes == "1":
        return None
    return {"nproc": max(1, nproc), "nnodes": nnodes, "rdzv_endpoint": os.environ.get(ENV_RDZV) or None,
            "rdzv_id": os.environ.get(ENV_RDZV_ID) or None}


def torchrun_command(stage: str, worker_args: Sequence[str], nproc: int, nnodes: str = "1",
                     rdzv_endpoint: str | None = None, rdzv_id: str | None = None,
                     log_dir: str | None = None) -> list[str]:
    """The torchrun command line (as ``python -m torch.distributed.run``) for ``stage``."""
    # --tee 3: each rank's lines are marked "[rank]:", so a failure can quote the right one
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--max-restarts", "0", "--tee", "3"]
    if log_dir is not None:   # each rank's complete stdout/stderr (the tee may miss a dying rank's last lines)
        cmd += ["--log-dir", log_dir]
    if rdzv_endpoint is None and str(nnodes) == "1":
        cmd.append("--standalone")
    else:
        if rdzv_endpoint is None:
            raise ValueError(f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT (a node all of them reach)")
        cmd += ["--nnodes", str(nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint,
                "--rdzv-id", rdzv_id or f"ssae-{stage}"]
    return cmd + ["-m", "ssae_utils.dist", stage, *worker_args]


class RankFailed(RuntimeError):
    """A torchrun worker failed; the message holds its error."""


def _last_words(log_dir: str | None, local_rank: str | None) -> list[str]:
    """The last lines a local rank wrote to stderr, from torchrun's ``--log-dir`` (complete,
    unlike the tee, whose tailer can stop before it copies a dying rank's last lines)."""
    if log_dir is None or local_rank is None:
        return []
    lines: list[str] = []
    for path in sorted(Path(log_dir).glob(f"*/attempt_*/{local_rank}/stderr.log")):
        lines += path.read_text(errors="replace").splitlines()
    return lines


def failure_summary(output: str, lines: int = 40, log_dir: str | None = None) -> str:
    """What failed, from torchrun's output: "rank R (exit code C): <its error>" from the
    "Root Cause" block torchrun prints (the traceback's last line; for a rank that died
    without one, the last lines it wrote to stderr, read from ``log_dir`` when the rank ran
    on this node, else the lines ``--tee`` marked "[R]:"), then the block."""
    import re

    text = output.rstrip()
    marker = text.rfind("Root Cause")
    if marker < 0:
        return "\n".join(text.splitlines()[-lines:])
    block = text[marker:]
    rank = re.search(r"rank\s*:\s*(\d+)", block)
    code = re.search(r"exitcode\s*:\s*(-?\d+)", block)
    who = f"rank {rank.group(1) if rank else '?'} (exit code {code.group(1) if code else '?'})"
    error = ""
    if "traceback : Traceback" in block:
        tb = block[block.index("traceback : Traceback"):].splitlines()
        body = [ln.strip() for ln in tb[1:] if ln.strip() and not ln.startswith("=")]
        error = body[-1] if body else ""
    elif rank:
        local = re.search(r"local_rank\s*:\s*(\d+)", block)
        own = [ln.strip() for ln in _last_words(log_dir, local.group(1) if local else None)]
        if not own:
            own = [ln.split("]:", 1)[1].strip() for ln in text[:marker].splitlines()
                   if re.match(rf"\[(default)?{rank.group(1)}\]:", ln)]
        own = [ln for ln in own if ln and not re.search(r"\d+%\|", ln)]   # progress bars say nothing
        error = " | ".join(own[-2:])
    return f"{who}: {error or 'no error message'}\n{block}"


def launch(stage: str, cfg: Any, nproc: int, nnodes: str = "1", rdzv_endpoint: str | None = None,
           rdzv_id: str | None = None, env: dict[str, str] | None = None) -> None:
    """Run ``stage``'s worker under torchrun for ``cfg`` and wait; its output is echoed.
    Raises ``RankFailed`` naming the failing rank and its error when any rank fails."""
    from ssae_utils.paths import cache_dir

    env = {**os.environ, **(env or {})}
    env.setdefault(ENV_THREADS, str(threads_per_rank(nproc)))
    folder = cache_dir("dist")
    fd, name = tempfile.mkstemp(prefix=f"{stage}-", suffix=".pkl", dir=folder)
    log_dir = tempfile.mkdtemp(prefix=f"{stage}-logs-", dir=folder)
    summary = None
    try:
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(cfg, handle)
        cmd = torchrun_command(stage, ["--config-pickle", name], nproc, nnodes, rdzv_endpoint, rdzv_id, log_dir)
        print(f"[dist] {stage}: {nproc} process(es) per node x {nnodes} node(s), {env[ENV_THREADS]} torch thread(s) each", flush=True)
        start = time.perf_counter()
        tail: collections.deque[str] = collections.deque(maxlen=4000)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line)
            sys.stdout.write(line)
        rc = proc.wait()
        if rc != 0:
            summary = failure_summary("".join(tail), log_dir=log_dir)
    finally:
        Path(name).unlink(missing_ok=True)
        shutil.rmtree(log_dir, ignore_errors=True)
    print(f"[dist] {stage}: torchrun finished in {time.perf_counter() - start:.1f} s (exit {rc})", flush=True)
    if rc != 0:
        raise RankFailed(f"stage {stage}: a torchrun rank failed (exit {rc}); nothing was written. {summary}")


def apply_threads() -> int | None:
    """``SSAE_TORCH_THREADS`` (when set) as this process's torch thread count; returns it.
    On the CPU the last bits of the activations and of a trained SSAE depend on the thread
    count, so a run compared bit for bit with another pins it here (see the module docstring)."""
    value = os.environ.get(ENV_THREADS)
    if not value:
        return None
    import torch

    torch.set_num_threads(int(value))
    return int(value)


def launch_if_requested(stage: str, cfg: Any) -> bool:
    """``launch`` when run_all asked for several processes; False (nothing done) otherwise."""
    req = requested()
    if req is None:
        return False
    launch(stage, cfg, req["nproc"], req["nnodes"], req["rdzv_endpoint"], req["rdzv_id"])
    return True


# ------------------------------------------------------------------ the worker (torchrun side)
class Context:
    """This rank: its number, the world's size, its device, and the collectives it needs."""

    def __init__(self) -> None:
        import torch
        import torch.distributed as tdist

        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
        threads = int(os.environ.get(ENV_THREADS) or threads_per_rank(self.local_world_size))
        torch.set_num_threads(threads)
        self.threads = threads
        self.cuda = torch.cuda.is_available()
        if self.cuda:  # "cuda" in the config now means this rank's GPU
            torch.cuda.set_device(self.local_rank)
        self.dist = tdist
        self.initialized = False
        if self.world_size > 1:
            timeout = datetime.timedelta(seconds=float(os.environ.get(ENV_TIMEOUT, 6 * 3600)))
            tdist.init_process_group("nccl" if self.cuda else "gloo", timeout=timeout)
            self.initialized = True
        self.done = 0
        self.config_from_profile = False   # True: --profile/--set, not the launching notebook's config
        fault = os.environ.get(ENV_FAULT, "")
        self.fault = None
        if fault:
            rank, after, mode = fault.split(":")
            self.fault = (int(rank), int(after), mode)

    def barrier(self) -> None:
        if not self.initialized:
            return
        try:                   # NCCL wants to know the rank's GPU
            self.dist.barrier(device_ids=[self.local_rank]) if self.cuda else self.dist.barrier()
        except Exception:
            # most likely a peer died: wait, so that torchrun (polling every 0.1 s) sees that
            # rank fail first and names it the root cause, not this rank's lost connection
            time.sleep(PEER_FAILURE_GRACE_S)
            raise

    def finished_item(self) -> None:
        """Count one finished item; the injected fault (``SSAE_DIST_FAULT``) fires here."""
        self.done += 1
        if self.fault and self.fault[0] == self.rank and self.done >= self.fault[1]:
            msg = f"injected fault on rank {self.rank} after {self.done} item(s) (SSAE_DIST_FAULT)"
            if self.fault[2] == "exit":   # on a line of its own: a progress bar may hold the current one
                print(f"\n{msg}", file=sys.stderr, flush=True)
                os._exit(3)
            raise RuntimeError(msg)

    def close(self) -> None:
        if self.initialized:
            self.dist.destroy_process_group()

    def say(self, text: str) -> None:
        print(f"[rank {self.rank}/{self.world_size}] {text}", flush=True)


def plan_shards(store: Any, text_lists: Sequence[Sequence[str] | tuple[Sequence[str], int | None]]) -> list[tuple[list[dict], list[list[int]]]]:
    """The activation shards ``store.ensure`` would write if called on each list in turn
    (a list, or (list, max_doc_tokens)), starting from what is cached now: (documents,
    contexts) per shard."""
    from ssae_utils.activations import document_key

    seen = set(store._index())
    plans: list[tuple[list[dict], list[list[int]]]] = []
    for entry in text_lists:
        texts, limit = entry if isinstance(entry, tuple) else (entry, None)
        missing = []
        for text in texts:
            h = document_key(text, limit)
            if h not in seen:
                missing.append((h, text))
                seen.add(h)
        if missing:
            plans.extend(store._plan_shards(missing, limit))
    return plans


def cache_shards(ctx: "Context", store: Any, text_lists: Sequence[Any]) -> None:
    """Phase 1 of a stage: the shards a single process would write for ``text_lists`` (in
    its order), computed round robin over the ranks; every rank plans from the same cache
    state (a barrier before anyone writes) and waits for all of them at the end."""
    plans = plan_shards(store, text_lists)
    ctx.barrier()
    mine = [i for i in range(len(plans)) if i % ctx.world_size == ctx.rank]
    ctx.say(f"{len(mine)} of {len(plans)} activation shard(s) to compute")
    write_shards(store, plans, mine, f"rank {ctx.rank}: caching activations")
    ctx.barrier()


def write_shards(store: Any, plans: Sequence[tuple[list[dict], list[list[int]]]], mine: Sequence[int], desc: str) -> None:
    from ssae_utils.progress import tqdm

    with tqdm(total=sum(len(plans[i][1]) for i in mine), desc=desc, unit="ctx") as bar:
        for i in mine:
            store._write_shard(plans[i][0], plans[i][1], bar)


def finetune_worker(cfg: Any, ctx: Context) -> None:
    """Stage 03's sweep, this rank's share (see the module docstring)."""
    from ssae_utils.activations import ActivationStore
    from ssae_utils.data.corpora import build_corpora
    from ssae_utils.model.registry import load_model
    from ssae_utils.pipeline import finetune as ft
    from ssae_utils.pipeline.foundation import load_saved_gsae
    from ssae_utils.pipeline.upstream import gsae_input_space

    selections = ft.load_selections(cfg)
    corpora = build_corpora(cfg.data, cfg.domains)
    model = load_model(cfg.model)
    gsae, setup = load_saved_gsae(cfg)
    act_scale, threshold = gsae_input_space(setup.gsae.training, cfg.gsae.outlier_norm_factor)
    store = ActivationStore(model, cfg.activations)
    if ctx.config_from_profile:
        # a node started by hand (another machine, see the README): the launching node's notebook
        # ran the recipe gate before torchrun and gave its own ranks the gated config; this node
        # gets the profile's, so it derives the same gated lr here. After the rendezvous, so the
        # gate's SSAEs are already in the shared cache (only its small evaluation is redone).
        from ssae_utils.pipeline import recipe_gate

        gate, cfg = recipe_gate.sweep_config(cfg, gsae=gsae, gsae_folder=setup.gsae.folder, store=store,
                                             corpora=corpora, selections=selections, model=model, threshold=threshold,
                                             act_scale=act_scale, batch=cfg.activations.batch_size)
        ctx.say(f"profile config: the recipe gate's lr is {cfg.finetune.lr:g}" if gate else "profile config: no recipe gate")
    keep = cfg.finetune.keep_unpicked_checkpoints

    # what the single-process run would cache and train, in its order
    text_lists: list[list[str]] = []
    todo: list[ft.GridItem] = []
    keys: set[str] = set()
    for name in selections:
        splits = ft.split_eval_documents(cfg, name, corpora, store)
        text_lists += [[d.text for d in stats_docs] for _, stats_docs in splits.values()]
        val_key = ft.eval_key(store, splits["val"][1], threshold)
        for item in ft.domain_grids(cfg, name, selections, corpora):
            # two strategies that selected the same documents share one grid (one cache
            # entry): it is trained once, by one rank, as a single process loads it the second time
            key = ft.grid_key(setup.gsae.folder, item)
            if key not in keys and not ft.grid_cached(setup.gsae.folder, item, val_key, keep):
                text_lists.append([d.text for d in item.train_docs])
                todo.append(item)
            keys.add(key)
    cache_shards(ctx, store, text_lists)

    ranks = assign([item.cost for item in todo], ctx.world_size)
    share = [item for item, r in zip(todo, ranks) if r == ctx.rank]
    ctx.say(f"{len(share)} of {len(todo)} grid(s) to train ({ctx.threads} torch thread(s))")
    for item in share:
        ft.train_grid(gsae, setup.gsae.folder, store, item.train_docs, item.fcfg, act_scale, threshold,
                      model.hook_name, model.name, f"rank {ctx.rank}: {item.label}")
        ctx.finished_item()
    ctx.barrier()
    evaluate_share(cfg, ctx, selections, corpora, model, gsae, setup.gsae.folder, store, act_scale, threshold)


def evaluate_share(cfg: Any, ctx: Context, selections: dict, corpora: Any, model: Any, gsae: Any, gsae_folder: str,
                   store: Any, act_scale: float, threshold: Any) -> None:
    """Phase 3 of stage 03: every grid's checkpoint pick and evaluation (the patched CE on
    each of its splits), shared out over the ranks, into the evaluation cache
    (``pipeline.eval_cache``), where the notebook's own pass then finds them. The clean CE
    and the GSAE's are left to the notebook (once per split)."""
    from ssae_utils.pipeline import finetune as ft

    evals: dict[str, dict[str, Any]] = {}
    items: list[Any] = []
    keys: set[str] = set()
    for name in selections:
        evals[name] = {split: ft.eval_set(store, ce_docs, stats_docs, threshold, f"rank {ctx.rank}: {name} {split}")
                       for split, (ce_docs, stats_docs) in ft.split_eval_documents(cfg, name, corpora, store).items()}
        for item in ft.domain_grids(cfg, name, selections, corpora):
            key = ft.grid_key(gsae_folder, item)
            if key not in keys:   # a grid two strategies share is evaluated once, as in one process
                items.append(item)
            keys.add(key)
    splits = {id(item): ft.row_splits(cfg.domain(item.domain), item.tilt) for item in items}
    ranks = assign([len(item.fcfg.l1_coefficients) * len(splits[id(item)]) for item in items], ctx.world_size)
    share = [item for item, r in zip(items, ranks) if r == ctx.rank]
    ctx.say(f"{len(share)} of {len(items)} grid(s) to evaluate")
    batch = cfg.activations.batch_size
    for item in share:
        label = f"rank {ctx.rank}: {item.label}"
        grid = ft.train_and_pick(gsae, gsae_folder, store, item.train_docs, item.fcfg, act_scale, threshold, model.hook_name,
                                 model.name, evals[item.domain]["val"], cfg.finetune.keep_unpicked_checkpoints, label)
        ft.evaluate_grid(model, grid, item.fcfg, evals[item.domain], splits[id(item)], threshold, batch, label,
                         cfg.finetune.val_patched_ce, clean=False)
        ctx.finished_item()
    ctx.barrier()


def tracin_worker(cfg: Any, ctx: Context) -> None:
    """Stage 02, this rank's share: the activation shards a single process would cache (seed
    sets, and the candidates unless streamed), then, when TracIn is streamed
    (``retrieval.tracin_stream``), every ``ws``-th chunk of each domain's candidate stream:
    the per-document token sums are summed over the ranks (exact: each document lies in one
    chunk) and rank 0 saves them under ``streamed_sums_key``, where the notebook finds them."""
    import torch

    from ssae_utils.activations import ActivationStore
    from ssae_utils.data.corpora import build_corpora
    from ssae_utils.model.registry import load_model
    from ssae_utils.pipeline import tracin as tr
    from ssae_utils.pipeline.foundation import load_saved_gsae
    from ssae_utils.pipeline.retrieval import load_stage01

    first = load_stage01(cfg)
    corpora = build_corpora(cfg.data, cfg.domains)
    model = load_model(cfg.model)
    sae, setup = load_saved_gsae(cfg)
    loss = tr.tracin_settings(cfg.retrieval, setup.gsae.training)
    store = ActivationStore(model, cfg.activations)

    text_lists: list[Any] = []
    work = []
    for domain, first_stage in first.domains.items():
        seeds = tr.seed_documents(cfg, corpora, domain)
        union_docs = tr.candidate_documents(corpora, first_stage)[2]
        text_lists.append([d.text for d in seeds])
        if not loss.stream:
            text_lists.append(([d.text for d in union_docs], loss.max_doc_tokens))
        else:
            key = tr.streamed_sums_key(store, union_docs, seeds, loss, setup.gsae.folder)
            if tr.load_sums(key, len(union_docs)) is None:   # checked before anyone writes one
                work.append((domain, seeds, union_docs, key))
    cache_shards(ctx, store, text_lists)
    for domain, seeds, union_docs, key in work:
        grad, _ = tr.domain_seed_gradient(sae, store, seeds, loss, domain)
        part = tr.streamed_token_sums(sae, store, union_docs, grad, loss, f"rank {ctx.rank}: {domain} TracIn candidates",
                                      only=lambda i: i % ctx.world_size == ctx.rank)
        ctx.say(f"{domain}: scored {part.n_tokens} candidate tokens")
        totals = torch.tensor([part.n_tokens, part.n_outliers, part.seconds], dtype=torch.float64)
        tensors = [part.sums, part.counts, totals]
        if ctx.initialized:
            device = f"cuda:{ctx.local_rank}" if ctx.cuda else "cpu"
            moved = [t.to(device) for t in tensors]
            for t in moved:
                ctx.dist.all_reduce(t)
            tensors = [t.cpu() for t in moved]
        if ctx.rank == 0:
            sums, counts, totals = tensors
            tr.save_sums(key, tr.StreamedSums(sums, counts, int(totals[0]), int(totals[1]), float(totals[2])))
        ctx.finished_item()
    ctx.barrier()


def embed_worker(cfg: Any, ctx: Context) -> None:
    """Stage 01's pool embedding, this rank's share (see the module docstring): into the one
    float32 ``.npy`` of ``embed_cached`` (``retrieval.embedding_dtype="float32"``) or the
    float16 shards of ``embed_to_shards``. Nothing else of stage 01 runs here."""
    from ssae_utils.data.corpora import build_corpora
    from ssae_utils.retrieval import embedder_from_config
    from ssae_utils.retrieval.tokenize import check_texts

    rcfg = cfg.retrieval
    texts = check_texts(build_corpora(cfg.data, cfg.domains).texts("general_pool"))
    embedder = embedder_from_config(rcfg, device=cfg.model.resolved_device)
    if rcfg.embedding_dtype == "float32":
        embed_array_share(ctx, embedder, texts)
    else:
        embed_shards_share(ctx, embedder, texts, rcfg.embedding_dtype, rcfg.embedding_shard_docs)


def embed_array_share(ctx: Context, embedder: Any, texts: list[str]) -> None:
    """The batches j with j % world_size == rank of ``embedder.batches(texts)`` (the global
    order ``embed`` uses), saved as this rank's part; rank 0 then assembles the array and
    stores it as ``embed_cached`` would (same path, same digest), where the notebook finds it."""
    from ssae_utils.progress import tqdm

    from ssae_utils.retrieval.embedders import batch_index, cached_embedding, embedding_cache_path, store_embedding

    path = embedding_cache_path(embedder, texts)
    done = cached_embedding(embedder, texts, path) is not None
    ctx.barrier()          # every rank has looked before rank 0 can write the entry
    if done:
        ctx.say("the pool's embeddings are cached already")
        return
    key = path.stem
    batches = embedder.batches(texts)
    mine = [batches[j] for j in range(len(batches)) if j % ctx.world_size == ctx.rank]
    ctx.say(f"{len(mine)} of {len(batches)} embedding batch(es) to embed ({ctx.threads} torch thread(s))")
    rows, truncated = [], 0
    for batch in tqdm(mine, desc=f"rank {ctx.rank}: embedding the pool", unit="batch"):
        rows.append(embedder.embed_batches(texts, [batch]))
        truncated += getattr(embedder, "n_truncated", 0)
        ctx.finished_item()
    if truncated:
        ctx.say(f"{truncated} of this rank's texts truncated for embedding")
    empty = np.zeros((0, embedder.dim), dtype=np.float32)
    save_embed_part(embed_part_path(key, ctx.rank, ctx.world_size), batch_index(mine),
                    np.concatenate(rows) if rows else empty)
    ctx.barrier()
    if ctx.rank == 0:
        parts = [embed_part_path(key, r, ctx.world_size) for r in range(ctx.world_size)]
        store_embedding(embedder, texts, assemble_parts(parts, len(texts), embedder.dim), path)
        ctx.say(f"assembled the {len(texts)} pool embeddings of {ctx.world_size} rank(s) -> {path}")
    ctx.barrier()          # nobody reads a part any more
    if ctx.rank == 0:      # this run's parts, and any a failed run with another world size left
        for stale in embed_part_path(key, 0, 1).parent.glob(f"embed-{key}-part*.npz"):
            stale.unlink(missing_ok=True)


def embed_part_path(key: str, rank: int, world_size: int) -> Path:
    """Rank ``rank``'s rows of the embedding cache entry ``key`` (content-addressed: a rerun
    overwrites, never mixes, another run's part)."""
    from ssae_utils.paths import cache_dir

    return cache_dir("dist") / f"embed-{key}-part{rank}of{world_size}.npz"


def save_embed_part(path: Path, index: np.ndarray, rows: np.ndarray) -> None:
    from ssae_utils.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, index=np.asarray(index, dtype=np.int64), rows=rows)


def assemble_parts(paths: Sequence[Path], n: int, dim: int) -> np.ndarray:
    """The ``[n, dim]`` float32 array the parts' rows fill, each row exactly once (raises
    naming the first part that overlaps another, or how many rows none covers)."""
    out = np.zeros((n, dim), dtype=np.float32)
    seen = np.zeros(n, dtype=bool)
    for path in paths:
        with np.load(path, allow_pickle=False) as part:
            index, rows = part["index"], part["rows"]
        if rows.shape != (len(index), dim) or rows.dtype != np.float32:
            raise RuntimeError(f"{path} holds {rows.dtype} rows of shape {rows.shape}, expected float32 ({len(index)}, {dim})")
        if seen[index].any() or len(np.unique(index)) != len(index):
            raise RuntimeError(f"{path} repeats rows another part (or itself) already holds")
        out[index] = rows
        seen[index] = True
    if not seen.all():
        raise RuntimeError(f"{int((~seen).sum())} of {n} pool rows are in no rank's part")
    return out


def embed_shards_share(ctx: Context, embedder: Any, texts: list[str], dtype: str, shard_docs: int) -> None:
    """The shards i with i % world_size == rank, each embedded and written exactly as
    ``embed_to_shards`` does; the manifest is left to the notebook's own ``embed_to_shards``,
    which resumes from (and content-checks) the finished shards and writes it last."""
    from ssae_utils.retrieval.emb_shards import finished_shard, shard_plan, shards_folder, write_shard

    folder = shards_folder(embedder, texts, dtype, shard_docs)
    complete = (folder / "manifest.json").exists()
    ctx.barrier()          # every rank has looked before anyone writes a shard
    if complete:           # the notebook checks (and repairs) a complete folder on its own
        ctx.say("the pool's embedding shards are cached already")
        return
    plan = shard_plan(len(texts), shard_docs)
    mine = [i for i in range(len(plan)) if i % ctx.world_size == ctx.rank]
    ctx.say(f"{len(mine)} of {len(plan)} embedding shard(s) to embed ({ctx.threads} torch thread(s))")
    for i in mine:
        name, span = plan[i]
        if not finished_shard(folder / name, span.stop - span.start, embedder.dim, dtype):
            write_shard(embedder, texts[span], folder / name, dtype)
        ctx.finished_item()
    ctx.barrier()


def rank_zero_first(ctx: Context, compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0, then, once it is done, on the others: what it caches on the
    way (embeddings, token counts) is written by one rank and read by the rest."""
    if ctx.rank == 0:
        out = compute()
    ctx.barrier()
    if ctx.rank != 0:
        out = compute()
    return out


def bios_worker(cfg: Any, ctx: Context) -> None:
    """Stage 07's biographies SSAEs, this rank's share: the activation shards a single process
    would cache before and for them (the study's biographies, then the training documents of
    every SSAE not yet trained, in its order), then its share of the SSAEs (``train_grid``)."""
    from ssae_utils.pipeline import bias_in_bios as bb
    from ssae_utils.pipeline.finetune import grid_trained, train_grid
    from ssae_utils.pipeline.foundation import load_saved_gsae, load_world
    from ssae_utils.pipeline.upstream import gsae_input_space

    gsae, setup = load_saved_gsae(cfg)
    world = load_world(cfg)
    act_scale, threshold = gsae_input_space(setup.gsae.training, cfg.gsae.outlier_norm_factor)
    study_texts = bb.build_study_data(world.corpora, cfg.bios).all_texts()   # what the stage caches first
    trainings = rank_zero_first(ctx, lambda: bb.bios_trainings(world))
    # checked by every rank before any rank trains (cache_shards' barriers lie in between)
    todo = [job for job in trainings if not grid_trained(setup.gsae.folder, job.docs, job.fcfg)]
    cache_shards(ctx, world.store, [study_texts] + [[d.text for d in job.docs] for job in todo])

    ranks = assign([float(job.fcfg.steps * len(job.fcfg.l1_coefficients)) for job in todo], ctx.world_size)
    share = [job for job, r in zip(todo, ranks) if r == ctx.rank]
    ctx.say(f"{len(share)} of {len(todo)} biographies SSAE(s) to train ({ctx.threads} torch thread(s))")
    for job in share:
        train_grid(gsae, setup.gsae.folder, world.store, job.docs, job.fcfg, act_scale, threshold,
                   world.model.hook_name, world.model.name, f"rank {ctx.rank}: {bb.bios_grid_label(job.selection_seed)}")
        ctx.finished_item()
    ctx.barrier()


WORKERS = {"retrieval": embed_worker, "finetune": finetune_worker, "tracin": tracin_worker, "bias_in_bios": bios_worker}


def load_config(args: argparse.Namespace) -> Any:
    from ssae_utils.config import absolute_source_paths, load_profile, parse_override

    if args.config_pickle:
        with open(args.config_pickle, "rb") as handle:
            return pickle.load(handle)
    overrides: dict[str, Any] = {}
    if args.overrides_json:
        text = args.overrides_json
        overrides.update(json.loads(Path(text[1:]).read_text() if text.startswith("@") else text))
    overrides.update(dict(parse_override(o) for o in args.overrides))
    return load_profile(args.profile, absolute_source_paths(overrides))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssae_utils.dist",
                                     description="One rank of a stage spread with torchrun (see ssae_utils/dist.py).")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--overrides-json", default=None, help="a JSON object of dotted overrides, or @file")
    parser.add_argument("--config-pickle", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(args)
    ctx = Context()
    ctx.config_from_profile = not args.config_pickle   # not launched by a notebook (see finetune_worker)
    try:
        WORKERS[args.stage](cfg, ctx)
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    sys.exit(record(main)())
