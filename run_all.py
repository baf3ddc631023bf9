#!/usr/bin/env python
"""Run the report's numbered notebooks in order with papermill.

    python run_all.py                          # embedded profile, every notebook
    python run_all.py --profile smoke          # tiny model and corpora, seconds
    python run_all.py --only 00 01             # just these notebooks
    python run_all.py --from 03                # this notebook and the ones after it
    python run_all.py --force                  # rerun even notebooks that are up to date
    python run_all.py --set gsae.d_sae=2048    # override any config knob (repeatable)
    python run_all.py --set domains.biology=@biology.json --show-config   # the resolved config, then stop
    python run_all.py --profile paper --plan --machine gpu-h100   # will it fit? estimates, then stop
    python run_all.py --plan --json                               # the same as JSON (this machine)
    python run_all.py --profile smoke --nproc 2                   # stages 01, 02, 03, 07 over 2 torchrun processes
    python run_all.py --profile paper --nproc 8 --nnodes 2 --rdzv-endpoint node0:29500 --only 03

Executed copies go to runs/<profile>/<NN>_<name>.ipynb; the source notebooks are never
overwritten. Notebooks talk to each other only through files in results/<profile>/. A
notebook whose inputs (its source, the config sections of its stage and earlier ones, with
overrides, and the results of earlier notebooks) are unchanged since its last successful run
on this machine, and whose own results are still there, is skipped unless --force is given.

Will it fit? --plan prints, per notebook, the estimated disk (cumulative), RAM, GPU memory
and wall time of a cold run of the profile (with its --set overrides) on a machine
(--machine cpu-2core | gpu-h100 | detect, default detect; NAME,field=value,... changes a
field, e.g. gpu-h100,disk_free_gb=100), with every assumption, and exits 0 if it fits, 1 if
not. These are estimates (ssae_utils/plan.py), not measurements. A normal run checks the
notebooks it will run first and refuses, before any work, one that does not fit in RAM or
GPU memory (and, with --machine given, disk): one line naming the stage, the resource, the
estimate vs what is available, and the knob to turn. --no-plan-check skips that check.

Several processes, GPUs or machines: --nproc N runs stage 03's sweep (each lambda grid of
domain x strategy x tilt x seed, and the activations they need), stage 02's activation
caching and streamed TracIn scoring, stage 01's pool embedding and stage 07's biographies SSAEs over N torchrun processes per machine (python -m
ssae_utils.dist; cuda:LOCAL_RANK each on GPUs, gloo with cores // N torch threads each on
the CPU); the notebook then finishes the stage as usual, so the results file is the one a
single process writes. --nnodes M --rdzv-endpoint HOST:PORT joins
M machines sharing SSAE_CACHE: run the same torchrun worker on the others (README,
"Several GPUs and machines"). A failing rank fails the notebook with that rank's error.

Environment variables:
    SSAE_CACHE     content-addressed caches: models, corpora, activations, SAEs (default .cache/)
    SSAE_RESULTS   results/<profile>/ JSON and CSV files (default results/)
    SSAE_FIGURES   figures/<profile>/ (default figures/)
    SSAE_RUNS      executed notebooks, runs/<profile>/ (default runs/)
    ANTHROPIC_API_KEY   Claude for notebook 06 (read from the environment only, never written)
    SSAE_DEFAULT_MALLOC=1   keep glibc's default allocator settings in the kernels
    SSAE_TORCH_THREADS=K    torch threads per process (kernel and torchrun ranks; default: all
                   cores, cores // N with --nproc N). On the CPU the last bits of the results
                   depend on it, so two runs compared bit for bit use the same K.
Relative folders are taken relative to the current folder; each must be a writable folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent
NOTEBOOKS = REPO / "notebooks"


@dataclass
class Outcome:
    notebook: str
    status: str
    seconds: float
    detail: str = ""


def discover() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _number(text: str, option: str, names: dict[str, Path]) -> str:
    """'3' or '03' -> '03'; anything else (e.g. '003', 'x') is an error listing the notebooks."""
    key = text.zfill(2) if text.isdigit() and len(text) <= 2 else None
    if key not in names:
        raise SystemExit(f"{option}: no notebook numbered {text!r}. Available: {', '.join(names)}")
    return key


def select(notebooks: list[Path], only: list[str] | None, start: str | None) -> list[Path]:
    names = {nb.name[:2]: nb for nb in notebooks}
    if only:
        wanted = {_number(n, "--only", names) for n in only}
        return [nb for nb in notebooks if nb.name[:2] in wanted]
    if start:
        key = _number(start, "--from", names)
        return [nb for nb in notebooks if nb.name[:2] >= key]
    return notebooks


# Which config sections and upstream results a notebook depends on: one mechanism with the
# stages' own lineage checks (ssae_utils/lineage.py).
from ssae_utils.lineage import SECTION_STAGE, config_for, upstream_files  # noqa: E402


def notebook_number(nb: Path) -> str:
    return nb.name[:2]


def own_results(nb: Path, results_folder: Path) -> list[Path]:
    """Result files this notebook wrote (named after its number)."""
    return sorted(p for p in results_folder.glob(f"{notebook_number(nb)}_*") if p.is_file())


def state_file(profile: str, results_folder: Path) -> Path:
    """Where run_all remembers what ran: one file per profile and results folder, so a run
    into a scratch folder (SSAE_RESULTS=...) never marks the default results stale."""
    from ssae_utils.io import stable_hash
    from ssae_utils.paths import REPO_ROOT, cache_dir

    default = (REPO_ROOT / "results" / profile).resolve()
    here = results_folder.resolve()
    suffix = "" if here == default else f"-{stable_hash(str(here), 8)}"
    return cache_dir("run_state") / f"{profile}{suffix}.json"


def read_state(path: Path) -> dict:
    """What ran before (notebook -> fingerprint); a garbled file is dropped with a warning:
    it is only a memo, so every notebook then reruns."""
    from ssae_utils.io import read_json

    try:
        state = read_json(path) if path.exists() else {}
    except ValueError as err:
        print(f"warning: {err} -- ignoring it, so every selected notebook reruns", file=sys.stderr)
        return {}
    return state if isinstance(state, dict) else {}


def fingerprint(nb: Path, config: dict, results_folder: Path) -> str:
    """What a notebook's outputs depend on: its source, its config sections and the upstream
    results on disk."""
    from ssae_utils.io import stable_hash

    number = notebook_number(nb)
    digest = hashlib.sha256(nb.read_bytes())
    digest.update(stable_hash(config_for(number, config)).encode())
    for path in upstream_files(number, results_folder):
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def show_plan(cfg, machine: str | None, as_json: bool) -> int:
    """--plan: the estimates for ``cfg`` on ``machine``; 0 if everything fits, 1 if not."""
    from ssae_utils.paths import results_dir
    from ssae_utils.plan import machine_from_spec, make_plan

    try:
        plan = make_plan(cfg, machine_from_spec(machine), results_dir(cfg.name))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(plan.to_dict(), indent=2) if as_json else plan.report())
    return 0 if plan.fits else 1


def plan_check(cfg, selected: list[Path], machine: str | None, force: bool) -> str | None:
    """Why the run must not start (one line), or None. Only the notebooks that will run count
    (a notebook is skipped when it and every selected one before it are up to date). Disk is
    checked only on a stated --machine: the estimates are for a cold cache, and a warm rerun
    writes next to nothing, so a disk refusal on this machine's detected free space could be
    false; RAM and GPU memory are needed whatever is cached."""
    from ssae_utils.paths import results_dir
    from ssae_utils.plan import machine_from_spec, make_plan

    results_folder = results_dir(cfg.name)
    state = read_state(state_file(cfg.name, results_folder))
    config = cfg.to_dict()
    running, skipping = [], not force
    for nb in selected:
        skipping = skipping and state.get(nb.stem, {}).get("fingerprint") == fingerprint(nb, config, results_folder) \
            and bool(own_results(nb, results_folder))
        if not skipping:
            running.append(notebook_number(nb))
    if not running:
        return None
    try:
        plan = make_plan(cfg, machine_from_spec(machine), results_folder, running)
    except ValueError as err:
        return str(err)
    resources = ("disk", "RAM", "GPU memory") if machine else ("RAM", "GPU memory")
    misfits = plan.misfits(resources)
    return f"{misfits[0].message()} [machine {plan.machine.name}]" if misfits else None


def stream_cell_output() -> None:
    """papermill's log of the cells' output (``log_output``) to stdout, one line per message,
    progress bars' carriage returns dropped (a log is read line by line)."""
    import logging

    class OneLine(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            text = str(record.getMessage()).replace("\r", "\n").strip()
            record.msg, record.args = "\n".join(f"    | {ln}" for ln in text.splitlines() if ln.strip()), None
            return bool(record.msg)

    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(OneLine())
    logger = logging.getLogger("papermill")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def figures_only(profile: str | None) -> int:
    """Redraw the profile's figures from its results files (``ssae_utils.plots.redraw``):
    matplotlib and the results only, no model, cache or torch."""
    from ssae_utils.paths import DEFAULT_PROFILE, check_folder_variables, figures_dir, results_dir
    from ssae_utils.plots.redraw import redraw_all

    profile = profile or DEFAULT_PROFILE
    try:
        os.environ.update(check_folder_variables())
    except ValueError as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    folder = results_dir(profile)
    start = time.perf_counter()
    drawn, missing = redraw_all(folder, log=lambda text: print(f"  {text}", flush=True))
    if not drawn:
        print(f"error: no results files in {folder}: run the notebooks first (python run_all.py --profile {profile})", file=sys.stderr)
        return 1
    print(f"{len(drawn)} figure(s) redrawn from {folder} into {figures_dir(profile)} in {time.perf_counter() - start:.1f} s"
          + (f"; no results yet for {', '.join(missing)}" if missing else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="smoke, embedded (default) or paper")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these notebook numbers")
    parser.add_argument("--from", dest="start", metavar="NN", help="run from this notebook number on")
    parser.add_argument("--force", action="store_true", help="rerun notebooks even if they are up to date")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config knob, e.g. gsae.d_sae=2048")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config (profile and --set applied) as JSON and stop")
    parser.add_argument("--plan", action="store_true", help="print estimated disk, RAM, GPU memory and time per notebook and stop (exit 1 if it does not fit)")
    parser.add_argument("--json", action="store_true", help="with --plan: print the plan as JSON")
    parser.add_argument("--machine", default=None, metavar="NAME", help="the machine --plan and the check assume: cpu-2core, gpu-h100 or detect (default); NAME,field=value,... changes fields")
    parser.add_argument("--no-plan-check", action="store_true", help="skip the will-it-fit check before a normal run")
    parser.add_argument("--nproc", type=int, default=1, metavar="N", help="torchrun processes per machine for stages 01, 02, 03 and 07 (one per GPU; default 1: no torchrun)")
    parser.add_argument("--nnodes", default="1", metavar="M", help="machines taking part (torchrun --nnodes; needs --rdzv-endpoint)")
    parser.add_argument("--rdzv-endpoint", default=None, metavar="HOST:PORT", help="torchrun's rendezvous on several machines (c10d backend)")
    parser.add_argument("--rdzv-id", default=None, metavar="ID", help="torchrun's job id, the same on every machine (default ssae-<stage>)")
    parser.add_argument("--figures-only", action="store_true", help="redraw every figure from the results on disk (seconds, no torch needed) and stop")
    args = parser.parse_args(argv)
    if args.figures_only:
        return figures_only(args.profile)

    # Imported here so that --help works before the package is installed.
    import papermill as pm

    from ssae_utils.config import DEFAULT_PROFILE, absolute_source_paths, load_profile, parse_override
    from ssae_utils.io import write_json_atomic
    from ssae_utils.paths import check_folder_variables, results_dir

    profile = args.profile or DEFAULT_PROFILE
    try:
        # absolute, writable folders: kernels run in notebooks/, where a relative path means something else
        os.environ.update(check_folder_variables())
        # a domain's relative files are the caller's, not relative to notebooks/ where kernels run
        overrides = absolute_source_paths(dict(parse_override(o) for o in args.overrides))
        cfg = load_profile(profile, overrides)  # fail fast on unknown profiles or knobs
    except (ValueError, KeyError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    if args.show_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    if args.plan:
        return show_plan(cfg, args.machine, args.json)
    selected = select(discover(), args.only, args.start)
    if not selected:
        print("error: no notebooks selected", file=sys.stderr)
        return 2
    try:  # a CUDA profile on a machine without CUDA stops here, not minutes into notebook 00
        cfg.model.resolved_device
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.no_plan_check:
        refusal = plan_check(cfg, selected, args.machine, args.force)
        if refusal:
            print(f"error: {refusal} (estimates: python run_all.py --plan ...; skip with --no-plan-check)", file=sys.stderr)
            return 1

    if args.nproc < 1:
        print(f"error: --nproc must be at least 1, not {args.nproc}", file=sys.stderr)
        return 2
    if args.nnodes != "1" and not args.rdzv_endpoint:
        print(f"error: --nnodes {args.nnodes} needs --rdzv-endpoint HOST:PORT (a machine every node reaches)", file=sys.stderr)
        return 2

    from ssae_utils.runtime import apply_allocator_env, apply_dist_env

    apply_allocator_env()  # inherited by every kernel papermill starts (see ssae_utils/runtime.py)
    # how to spread the work, never what is computed: read by ssae_utils.dist, kept out of
    # the results and of the up-to-date fingerprints
    apply_dist_env(args.nproc, args.nnodes, args.rdzv_endpoint, args.rdzv_id)
    # plain text progress bars in the kernels (their final line stays in the executed copy);
    # under nohup or a scheduler the cells' output is streamed here, a bar at most every 30 s
    os.environ["SSAE_PROGRESS"] = "text"
    stream = not sys.stdout.isatty()
    if stream:
        os.environ.setdefault("TQDM_MININTERVAL", "30")
        stream_cell_output()
    from ssae_utils.executed import tidy_file

    run_dir = Path(os.environ.get("SSAE_RUNS", REPO / "runs")) / profile
    run_dir.mkdir(parents=True, exist_ok=True)
    # Machine-local (in the cache, not in results/): a fresh clone has none and runs everything.
    results_folder = results_dir(profile)
    state_path = state_file(profile, results_folder)
    state = read_state(state_path)
    config = cfg.to_dict()
    outcomes: list[Outcome] = []
    failed = False
    for i, nb in enumerate(selected, 1):
        key = fingerprint(nb, config, results_folder)
        up_to_date = state.get(nb.stem, {}).get("fingerprint") == key and own_results(nb, results_folder)
        if not args.force and up_to_date:
            print(f"[{i}/{len(selected)}] {nb.stem}: up to date, skipped (use --force to rerun)")
            outcomes.append(Outcome(nb.stem, "skipped", 0.0))
            continue
        print(f"[{i}/{len(selected)}] {nb.stem} (profile {profile}) ...", flush=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb),
                str(run_dir / nb.name),
                parameters={"profile": profile, "overrides": overrides},
                cwd=str(NOTEBOOKS),
                progress_bar=sys.stderr.isatty(),
                log_output=stream,
                kernel_name="python3",
            )
        except pm.PapermillExecutionError as err:
            seconds = time.perf_counter() - start
            detail = f"cell {err.exec_count}: {err.ename}: {err.evalue}"
            outcomes.append(Outcome(nb.stem, "FAILED", seconds, detail))
            print(f"    FAILED in {nb.name}, {detail}\n    executed copy: {run_dir / nb.name}", file=sys.stderr)
            # a failed notebook is never up to date, even if its earlier results are still on disk
            state[nb.stem] = {"failed": time.strftime("%Y-%m-%dT%H:%M:%S"), "detail": detail[:500]}
            write_json_atomic(state_path, state)
            failed = True
            break
        seconds = time.perf_counter() - start
        tidy_file(run_dir / nb.name)
        outcomes.append(Outcome(nb.stem, "ok", seconds))
        state[nb.stem] = {"fingerprint": key, "seconds": round(seconds, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json_atomic(state_path, state)
        print(f"    done in {seconds:.1f} s", flush=True)

    if not failed and all((run_dir / nb.name).exists() for nb in discover()):
        from ssae_utils.report import build_report

        index = build_report(profile, run_dir)
        print(f"report: {index} (executed notebooks in {index.parent / 'notebooks'})")

    print("\nnotebook                     status    wall time")
    for o in outcomes:
        print(f"{o.notebook:<28} {o.status:<9} {o.seconds:8.1f} s  {o.detail}")
    print(f"total {sum(o.seconds for o in outcomes):.1f} s; executed notebooks in {run_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
