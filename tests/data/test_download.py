"""Finding files, downloading them (through file:// URLs: no network), and safe extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from unsup.data.download import find_or_fetch, safe_extract, sha256sum
from unsup.data.registry import Request
from unsup.errors import DataError


def req(root: Path | None = None, download: bool = False) -> Request:
    return Request("thing", "train", root=root, download=download)


def served(tmp_path: Path, name: str, data: bytes) -> tuple[str, str]:
    """Write ``data`` where a file:// URL can serve it; return (url, sha256)."""
    server = tmp_path / "server"
    server.mkdir(exist_ok=True)
    (server / name).write_bytes(data)
    return (server / name).as_uri(), hashlib.sha256(data).hexdigest()


def test_sha256sum(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert sha256sum(p) == hashlib.sha256(b"abc").hexdigest()


def test_search_order_root_then_subdir_then_system_then_cache(
    tmp_path: Path, isolated_cache: Path
) -> None:
    root, system = tmp_path / "root", tmp_path / "system"
    places = [root, root / "thing", system, isolated_cache / "thing"]
    for p in places:
        p.mkdir(parents=True)
        (p / "a.bin").write_bytes(str(p).encode())
    files = {"a.bin": ("file:///nonexistent", "0" * 64)}
    for expected in places:
        got = find_or_fetch(req(root), "thing", files, [system])["a.bin"]
        assert got == expected / "a.bin"
        got.unlink()


def test_decompressed_twin_of_gz_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "x-idx1-ubyte").write_bytes(b"raw")
    files = {"x-idx1-ubyte.gz": ("file:///nonexistent", "0" * 64)}
    assert find_or_fetch(req(tmp_path), "thing", files)["x-idx1-ubyte.gz"].name == "x-idx1-ubyte"


def test_missing_without_download_names_every_fix(tmp_path: Path) -> None:
    files = {"a.bin": ("file:///nonexistent", "0" * 64)}
    with pytest.raises(DataError) as e:
        find_or_fetch(req(tmp_path), "thing", files, install_hint="apt-get install -y thing-data")
    msg = str(e.value)
    for part in ("thing: a.bin not found", str(tmp_path), "apt-get install -y thing-data",
                 "--data-dir", "--download"):
        assert part in msg


def test_download_verifies_and_caches(tmp_path: Path, isolated_cache: Path) -> None:
    url, digest = served(tmp_path, "a.bin", b"payload" * 1000)
    got = find_or_fetch(req(download=True), "thing", {"a.bin": (url, digest)})["a.bin"]
    assert got == isolated_cache / "thing" / "a.bin"
    assert got.read_bytes() == b"payload" * 1000
    # Found in the cache from now on: a broken URL no longer matters.
    again = find_or_fetch(req(), "thing", {"a.bin": ("file:///nonexistent", digest)})
    assert again["a.bin"] == got


def test_download_checksum_mismatch_keeps_nothing(tmp_path: Path, isolated_cache: Path) -> None:
    url, digest = served(tmp_path, "a.bin", b"tampered")
    wrong = "f" * 64
    with pytest.raises(DataError) as e:
        find_or_fetch(req(download=True), "thing", {"a.bin": (url, wrong)})
    msg = str(e.value)
    assert "a.bin" in msg and "checksum mismatch" in msg and wrong in msg and digest in msg
    assert not any((isolated_cache / "thing").iterdir())  # no file, no .part left behind


def test_download_failure_is_a_data_error(tmp_path: Path) -> None:
    url = (tmp_path / "absent.bin").as_uri()
    with pytest.raises(DataError, match="could not download"):
        find_or_fetch(req(download=True), "thing", {"a.bin": (url, "0" * 64)})


def tar_bytes(members: list[tarfile.TarInfo], data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m in members:
            if m.isfile():
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
            else:
                tar.addfile(m)
    return buf.getvalue()


def test_safe_extract(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(tar_bytes([tarfile.TarInfo("top/sub/f.txt")]))
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "top" / "sub" / "f.txt").read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_safe_extract_refuses_escapes(tmp_path: Path, kind: str) -> None:
    if kind == "symlink":
        m = tarfile.TarInfo("link")
        m.type, m.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        m = tarfile.TarInfo("../evil.txt" if kind == "dotdot" else "/tmp/evil.txt")
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(tar_bytes([m]))
    with pytest.raises(DataError, match="unsafe member"):
        safe_extract(archive, tmp_path / "out" / "x")
    assert not (tmp_path / "out" / "evil.txt").exists()
    assert not (tmp_path / "out" / "x").exists()


def test_safe_extract_truncated(tmp_path: Path) -> None:
    data = tar_bytes([tarfile.TarInfo(f"f{i}") for i in range(50)], data=bytes(range(256)) * 40)
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()

