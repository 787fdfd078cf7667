"""One run per run directory: an exclusive lock held for the whole of a run.

Two ``unsup train`` commands writing into the same ``--out`` would interleave ``metrics.csv`` and
overwrite each other's checkpoints. :func:`run_lock` takes an exclusive, non-blocking lock on
``DIR/.lock`` with `filelock <https://py-filelock.readthedocs.io>`_ (``flock`` on POSIX,
``msvcrt.locking`` on Windows). The operating system drops such a lock when its process ends,
however it ends, so a lock left by a killed run is never stale: the next run simply takes it.
The holder writes its process id, host and start time to ``DIR/.lock-owner`` so that the second
run's error can say who holds the directory.

The lock is re-entrant within a process (the CLI holds it for the whole command, the trainer
inside it for training), and creating it is the first write into the directory, so an
unwritable ``--out`` is found before any data is loaded. A directory that the lock created and
that holds nothing else when the run ends (a command refused before it wrote anything) is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from unsup.errors import ConfigError

LOCK, OWNER = ".lock", ".lock-owner"
_held: dict[Path, int] = {}  # run directory -> depth of run_lock() in this process


def prepare_run_dir(out: str | Path) -> Path:
    """Create ``out`` (and parents) or raise a one-line :class:`ConfigError` saying why not."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the directory ({e.strerror}); choose a "
                          f"writable --out") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out} is not writable; choose a writable --out")
    return out


@contextlib.contextmanager
def run_lock(out: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of run directory ``out`` (created if missing) inside the block.

    Raises:
        ConfigError: another process holds the directory (its pid and host are named), or the
            directory cannot be created or written.
    """
    from filelock import FileLock, Timeout

    created = not Path(out).exists()
    out = prepare_run_dir(out)
    key = out.resolve()
    if key in _held:  # this process holds it already
        _held[key] += 1
        try:
            yield out
        finally:
            _held[key] -= 1
        return
    lock = FileLock(str(out / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(f"{out} is in use by another run ({_owner(out)}); wait for it to end, or "
                          f"choose another --out") from None
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create its lock file ({e.strerror}); choose a "
                          f"writable --out") from None
    _held[key] = 1
    try:
        (out / OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
        yield out
    finally:
        del _held[key]
        (out / OWNER).unlink(missing_ok=True)
        if created and {p.name for p in out.iterdir()} <= {LOCK}:  # refused before writing
            (out / LOCK).unlink(missing_ok=True)  # while held: no other run can hold this file
            lock.release()
            with contextlib.suppress(OSError):  # another run may have just made it its own
                out.rmdir()
        else:
            lock.release()


def _owner(out: Path) -> str:
    """Who holds ``out``, as far as its owner file says."""
    try:
        o = json.loads((out / OWNER).read_text())
        return f"process {o['pid']} on {o['host']}, started {o['started']}"
    except (OSError, ValueError, KeyError):
        return "a process that is starting or ending"
