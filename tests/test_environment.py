"""environment.yml (GPU box) must agree with pyproject.toml, and CI must run the README's test command."""

from __future__ import annotations

import re
import tomllib

import yaml

from ssae_utils.paths import REPO_ROOT


def _pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _conda_pip():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return [p for p in pip_section if not p.startswith("-e")]


def test_environment_yml_mirrors_pyproject_with_gpu_faiss():
    project = _pyproject()
    expected = project["dependencies"] + project["optional-dependencies"]["gpu"]
    assert sorted(_conda_pip()) == sorted(expected)


def test_every_dependency_is_pinned():
    project = _pyproject()
    every = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    loose = [d for d in every if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][A-Za-z0-9.+\-]*", d)]
    assert not loose, f"unpinned dependencies: {loose}"


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
