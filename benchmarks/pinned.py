"""What the seeded benchmarks share: the commit they ran at, 95 % intervals over seeds, and cases
run two at a time, each pinned to its own core with one thread.

    from pinned import git_commit, interval, run_on_both_cores   # benchmarks/ is on sys.path
    from pinned import Job, run_jobs   # `unsup` commands on both cores, in dependency order
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T_975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}  # Student t, 95 % two-sided, by sample size


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def provenance(script: str, argv: Sequence[str]) -> dict:
    """The first keys of a result JSON: the command that wrote it (with the ``OMP_NUM_THREADS`` and
    ``taskset`` pinning it ran under), the commit, the machine (torch
    threads, CPU model) and the load averages when it started."""
    prefix = []  # how the process was pinned, so that the command reruns it the same way
    if "OMP_NUM_THREADS" in os.environ:
        prefix.append(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cores and len(cores) < (os.cpu_count() or len(cores)):
        prefix += ["taskset", "-c", ",".join(map(str, cores))]
    return {"command": " ".join([*prefix, "python", script, *argv]), "git_commit": git_commit(), **machine()}


def machine(threads: int | None = None) -> dict:
    """The machine a result was measured on: torch's threads (or ``threads``, those of the
    subprocess that did the work), the CPU model, and the load averages at this moment."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown"
    return {"threads": torch.get_num_threads() if threads is None else threads, "cpu": cpu,
            "load": list(os.getloadavg())}


def interval(values: Sequence[float]) -> dict:
    """Mean and 95 % t-interval of per-seed values (NaN bounds for one value)."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    half = T_975[n] * sd / math.sqrt(n) if n in T_975 else math.nan
    return {"mean": mean, "ci95": [mean - half, mean + half], "values": list(values)}


def percent(i: dict) -> str:
    """An :func:`interval` of fractions as ``mean [low, high]`` in percent, one decimal."""
    return f"{100 * i['mean']:.1f} [{100 * i['ci95'][0]:.1f}, {100 * i['ci95'][1]:.1f}]"


def train_here(runs: Path, commit: str, jobs: list[Job]) -> None:
    """Run the training ``jobs`` (:func:`run_jobs`) into ``runs``, first noting there the commit they
    are trained at (``runs/TRAINED_AT``, read back by :func:`trained_at`)."""
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "TRAINED_AT").write_text(commit + "\n")
    run_jobs(jobs)


def trained_at(runs: Path) -> str | None:
    """The commit :func:`train_here` noted for ``runs`` (None for runs trained otherwise)."""
    path = runs / "TRAINED_AT"
    return path.read_text().strip() if path.exists() else None


def write_result(path: Path, doc: dict, table: Callable[[dict], str]) -> None:
    """Write a benchmark's JSON ``doc`` to ``path`` and print its ``table(doc)``."""
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")
    print(table(doc))


def run_on_both_cores(commands: Sequence[Sequence[str]]) -> None:
    """Run ``commands`` two at a time: core 0 takes the even ones in order, core 1 the odd ones,
    each under ``taskset`` with ``OMP_NUM_THREADS=1``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def worker(core: int) -> None:
        for argv in commands[core::2]:
            subprocess.run(["taskset", "-c", str(core), *argv], cwd=ROOT, env=env, check=True)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(worker, (0, 1)))


@dataclass
class Job:
    name: str
    argv: list[str]
    after: tuple[str, ...] = ()
    stdout: Path | None = None  # where the command's standard output goes (its --json)
    record: Path | None = None  # where its exit status, error and times go (training jobs)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


def run_jobs(jobs: list[Job]) -> None:
    """Run ``jobs`` two at a time, each on its own core with one thread, a job only once the jobs it
    comes ``after`` are done (a failed one counts as done; its dependants then fail on their own)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    commit = git_commit()  # recorded with each training job: the code its run was made with
    by_name, lock, pending = {j.name: j for j in jobs}, threading.Lock(), list(jobs)

    def take() -> Job | None:
        while True:
            with lock:
                if not pending:
                    return None
                for job in pending:
                    if all(by_name[a].done.is_set() for a in job.after if a in by_name):
                        pending.remove(job)
                        return job
            time.sleep(1)

    def worker(core: int) -> None:
        while (job := take()) is not None:
            start = time.perf_counter()
            argv = [sys.executable, "-m", "unsup.cli", *job.argv[1:]]
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
                proc = subprocess.Popen(["taskset", "-c", str(core), *argv], cwd=ROOT, env=env,
                                        stdout=out, stderr=err, text=True)
                _, status, usage = os.wait4(proc.pid, 0)  # this job's own CPU time, not the other core's
                returncode = os.waitstatus_to_exitcode(status)
                out.seek(0)
                err.seek(0)
                stdout, stderr = out.read(), err.read()
            job.seconds = time.perf_counter() - start
            job.cpu_seconds = usage.ru_utime + usage.ru_stime
            if returncode:
                job.error = (stderr.strip().splitlines() or ["(no message)"])[-1]
                print(f"[core {core}] FAILED {job.name}: {job.error}", flush=True)
            else:
                if job.stdout is not None:
                    job.stdout.write_text(stdout)
                print(f"[core {core}] {job.name}: {job.seconds:.0f} s", flush=True)
            if job.record is not None and job.record.parent.is_dir():
                job.record.write_text(json.dumps({
                    "command": " ".join(job.argv), "git_commit": commit, "core": core,
                    "returncode": returncode, "error": job.error, "seconds": job.seconds,
                    "cpu_seconds": job.cpu_seconds, "cpu_seconds_of": "this job (os.wait4)"}, indent=1))
            job.done.set()

    threads = [threading.Thread(target=worker, args=(core,)) for core in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
