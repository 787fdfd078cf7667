"""Finding data files on disk, downloading the missing ones, and unpacking archives safely.

A source names the files it needs with their official URL and SHA-256. :func:`find_or_fetch`
looks for each file, in order, in

1. ``req.root`` (``--data-dir`` or ``$UNSUP_DATA``) and ``req.root/<dataset>``,
2. the system directories the source passes (e.g. ``/usr/share/datasets/fashion-mnist``, where
   Debian's ``dataset-fashion-mnist`` puts the files),
3. the cache, ``cache_dir()/<dataset>`` (``$UNSUP_CACHE``, default ``~/.cache/unsup``),

and, only if the request allows it, downloads what is still missing into the cache. Downloads are
verified against the SHA-256 before they become visible; files found on disk are trusted (they may
be decompressed or re-compressed copies) and each source checks their structure instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

from unsup.data.registry import Request, cache_dir
from unsup.errors import DataError
from unsup.progress import progress

_CHUNK = 1 << 20


def sha256sum(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def search_dirs(req: Request, dataset: str, system_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """The directories to look in, in order (see the module docstring); the cache is last."""
    dirs: list[Path] = []
    if req.root is not None:
        dirs += [req.root, req.root / dataset]
    dirs += [Path(d) for d in system_dirs]
    dirs.append(cache_dir() / dataset)
    return dirs


def _local_names(name: str) -> list[str]:
    # A decompressed copy serves as well as the archive the server has (IDX readers accept both).
    return [name, name[: -len(".gz")]] if name.endswith(".gz") else [name]


def find_or_fetch(
    req: Request,
    dataset: str,
    files: Mapping[str, tuple[str, str]],
    system_dirs: Iterable[str | Path] = (),
    *,
    install_hint: str | None = None,
) -> dict[str, Path]:
    """Locate every file of ``files`` on disk, downloading missing ones when ``req.download``.

    Args:
        req: the request (its ``root`` is searched first; its ``download`` allows fetching).
        dataset: the dataset's name, used for sub-directories and messages.
        files: file name -> (official URL, SHA-256 of the file at that URL).
        system_dirs: extra directories to search after ``req.root`` (package installs).
        install_hint: a command that installs the files system-wide, for the error message.

    Returns:
        File name -> path of the file found (possibly the decompressed twin of a ``.gz`` name).

    Raises:
        DataError: a file is missing and downloading is off, a download fails, or a downloaded
            file does not have the expected SHA-256.
    """
    dirs = search_dirs(req, dataset, system_dirs)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in files:
        path = next(
            (d / n for d in dirs for n in _local_names(name) if (d / n).is_file()), None
        )
        if path is not None:
            found[name] = path
        else:
            missing.append(name)
    if missing and not req.download:
        ways = ([f"run `{install_hint}`"] if install_hint else []) + [
            "pass --data-dir DIR (a directory holding the files)",
            "or add --download to fetch them from the official site",
        ]
        raise DataError(
            f"{dataset}: {', '.join(missing)} not found in {', '.join(map(str, dirs))}; "
            + ", ".join(ways)
        )
    for name in missing:
        url, sha256 = files[name]
        found[name] = download(url, cache_dir() / dataset / name, sha256)
    return found


def download(url: str, dest: Path, sha256: str) -> Path:
    """Download ``url`` to ``dest``, verifying its SHA-256 before ``dest`` appears.

    The bytes go to a temporary file beside ``dest`` and are renamed into place only once the
    checksum matches, so an interrupted or corrupt download never looks like a cached file.

    Raises:
        DataError: the download fails or the checksum does not match.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as resp:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with progress(total, dest.name, "byte", unit_scale=True,
                                  disable=total is not None and total < 10 * _CHUNK) as bar:
                        while chunk := resp.read(_CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, OSError) as e:
                raise DataError(
                    f"could not download {url}: {getattr(e, 'reason', e)}; fetch it by hand and "
                    f"pass --data-dir DIR"
                ) from None
        actual = h.hexdigest()
        if actual != sha256.lower():
            raise DataError(
                f"{dest.name}: checksum mismatch for the download from {url}: expected sha256 "
                f"{sha256.lower()}, got {actual}; the file was not kept (retry, or fetch it by "
                f"hand and pass --data-dir DIR)"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a tar archive into ``dest``, refusing members that could escape it.

    Only regular files and directories with relative paths and no ``..`` are accepted (no links,
    devices or absolute paths). Extraction goes to a temporary sibling directory that is renamed
    to ``dest`` when complete, so a half-extracted tree is never mistaken for a finished one.

    Returns:
        ``dest``.

    Raises:
        DataError: the archive is unreadable or has an unsafe member.
    """
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tarfile.open(archive) as tar:
            for m in tar:
                parts = Path(m.name).parts
                if Path(m.name).is_absolute() or ".." in parts or not (m.isfile() or m.isdir()):
                    raise DataError(
                        f"{archive}: refusing to extract unsafe member {m.name!r} (absolute path, "
                        f"'..' or a link/device); the archive may be malicious"
                    )
                target = tmp.joinpath(*parts) if parts else tmp
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None  # regular files always have content
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        try:
            os.replace(tmp, dest)
        except OSError:  # another process finished first
            if not dest.is_dir():
                raise
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{archive}: cannot extract ({e}); the archive is truncated or corrupt") \
            from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest

