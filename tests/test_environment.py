"""environment.yml (GPU box) must agree with pyproject.toml, and CI must run the README's test command."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ssae_utils.paths import REPO_ROOT


def _pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


LOCK = REPO_ROOT / "requirements" / "lock.txt"


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{LOCK.name}: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    project = _pyproject()
    every = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return [Requirement(d) for d in every]


def test_every_dependency_has_a_range_and_every_upper_bound_a_reason():
    for req in _requirements():
        assert any(spec.operator in (">=", "==") for spec in req.specifier), f"{req}: no lower bound"
    # the reason is the comment on the dependency's line
    for line in (REPO_ROOT / "pyproject.toml").read_text().splitlines():
        if re.match(r'\s*"[^"]*<[^"]*",', line):
            assert "#" in line and "<" in line.split("#", 1)[1], f"upper bound without a reason: {line.strip()}"


def test_the_lock_pins_every_dependency_within_its_range():
    pins = _lock()
    for req in _requirements():
        name = canonicalize_name(req.name)
        if name in ("torch", "faiss-gpu"):       # installed first / from conda: not in the CPU lock
            assert name not in pins
            continue
        assert name in pins, f"{req.name} is not in {LOCK.name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{LOCK.name} pins {name}=={pins[name]}, outside {req}"


def test_environment_yml_builds_the_gpu_environment_from_the_same_sources():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert any(d.startswith("pytorch") and "cuda" in d for d in conda), "pytorch must be a CUDA build"
    assert any(d.startswith("faiss-gpu") for d in conda) and any(d.startswith("cuda-version") for d in conda)
    assert "conda-forge" in env["channels"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-c requirements/lock.txt" in pip
    editable = next(p for p in pip if p.startswith("-e"))
    extras = re.search(r"\[(.+)\]", editable).group(1).split(",")
    optional = _pyproject()["optional-dependencies"]
    installed = {canonicalize_name(Requirement(d).name) for e in extras for d in optional[e]}
    # everything the CPU routes install, except the faiss CPU build (conda brings faiss-gpu)
    wanted = {canonicalize_name(Requirement(d).name) for e in ("embedded", "dev") for d in optional[e]} - {"faiss-cpu"}
    assert wanted <= installed and "faiss-cpu" not in installed


def test_faiss_builds_never_share_an_extra():
    project = _pyproject()
    assert not any(d.startswith("faiss") for d in project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        assert sum(d.startswith("faiss") for d in extra) <= 1, name


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    match = re.search(r"```bash\n# run the tests\n(.+?)\n```", readme, re.S)
    assert match, "README must show the test command in a ```bash block starting with '# run the tests'"
    for part in [p.strip() for p in match.group(1).split("&&")]:
        normalized = part.replace("pip install", "python -m pip install --quiet").replace("python -m pytest", "python -m pytest")
        assert part in ci or normalized in ci, f"CI does not run README step: {part!r}"
