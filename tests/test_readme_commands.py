"""Every shell command README.md shows is run (in the smoke profile, or checked to reach the
step it needs when that step needs a GPU, the hub or Claude), so a README command that no
longer works fails the suite."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from ssae_utils.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "domain_biology"

# Commands that cannot run on a CPU test machine without network, each with why (the test
# fails when README gains a command that is neither run below nor listed here).
NOT_RUN_HERE = {
    "conda env create -f environment.yml && conda activate ssae": "builds the GPU environment (conda, CUDA)",
    "hf auth login": "logs in to the Hugging Face hub",
    "python run_all.py --profile paper": "needs a GPU box and the hub (its --plan runs below; tests/test_paper_path.py runs its code paths)",
    "python run_all.py --profile paper --nproc 8 --nnodes 2 --rdzv-endpoint node0:29500 --only 03":
        "needs a second machine at the rendezvous (tests/test_dist.py runs --nproc 2 on one)",
}


def readme_commands() -> list[str]:
    """Shell lines of the ```bash blocks and every inline `... python run_all.py ...` span."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        out += [line.split("  #")[0].strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    out += [" ".join(span.split()) for span in re.findall(r"`((?:[A-Z_]+=\S+ )*python run_all\.py[^`]*)`", README)]
    return list(dict.fromkeys(out))


def test_the_readme_test_command_is_what_ci_runs():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    command = next(c for c in readme_commands() if "pytest" in c)
    for part in command.split(" && "):
        assert part.replace("pip install", "python -m pip install --quiet").split()[-1] in ci, part


@pytest.mark.slow
def test_every_readme_run_all_command_works_on_the_smoke_profile(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update({f"SSAE_{k.upper()}": str(tmp_path / k) for k in ("cache", "results", "figures", "runs")})
    (tmp_path / "biology.json").write_text(json.dumps({"seed_source": str(FIXTURE / "seed"), "test_source": str(FIXTURE / "test.jsonl"),
                                                        "seed_words": 60, "val_words": 40, "token_budget": 600, "steps": 6,
                                                        "l0_window": [2, 60], "term": True}))
    commands = readme_commands()
    runnable = [c for c in commands if "python run_all.py" in c and c not in NOT_RUN_HERE]
    others = [c for c in commands if c not in runnable]
    assert all(c in NOT_RUN_HERE or "pip install" in c for c in others), others
    # the plain run first, so every later command starts from a complete smoke run (and the
    # --only commands find it up to date); adding a domain changes every stage, so it goes last
    runnable.sort(key=lambda c: (c.split("&&")[-1].strip() != "python run_all.py", "domains." in c))
    for command in runnable:
        command = command.split("&&")[-1].strip()      # "pip install ... && python run_all.py": CI did the install
        words = shlex.split(command)
        assign = {}
        while "=" in words[0] and not words[0].startswith("python"):
            k, v = words.pop(0).split("=", 1)
            assign[k] = v
        args = words[2:]
        run_env = dict(env)
        for k, v in assign.items():
            if k.startswith("SSAE_"):                  # README's scratch folders, under tmp_path here
                v = str(tmp_path / v.strip("/").replace("/", "_"))
            run_env[k] = v
        if "SSAE_RESULTS" in assign:                   # README: copy the results there first
            shutil.copytree(tmp_path / "results", run_env["SSAE_RESULTS"], dirs_exist_ok=True)
        claude = "ANTHROPIC_API_KEY" in assign
        if claude:                                     # a key, but Claude on a closed loopback port
            run_env.update({"ANTHROPIC_API_KEY": "not-a-real-key", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"})
        if "--profile" in args:
            args[args.index("--profile") + 1] = "smoke"
        else:
            args = ["--profile", "smoke", *args]
        proc = subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), *args], cwd=tmp_path, env=run_env,
                              capture_output=True, text=True, timeout=900)
        output = proc.stdout[-3000:] + proc.stderr[-3000:]
        if claude:
            assert proc.returncode != 0 and "network unreachable" in output, (command, output)
        else:
            assert proc.returncode == 0, (command, output)
