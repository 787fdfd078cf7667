"""What the seeded benchmarks share: the commit they ran at, 95 % intervals over seeds, and cases
run two at a time, each pinned to its own core with one thread.

    from pinned import git_commit, interval, run_on_both_cores   # benchmarks/ is on sys.path
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T_975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}  # Student t, 95 % two-sided, by sample size


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def provenance(script: str, argv: Sequence[str]) -> dict:
    """The first keys of a result JSON: the command that wrote it, the commit, the machine (torch
    threads, CPU model) and the load averages when it started."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown"
    return {"command": " ".join(["python", script, *argv]), "git_commit": git_commit(),
            "threads": torch.get_num_threads(), "cpu": cpu, "load": list(os.getloadavg())}


def interval(values: Sequence[float]) -> dict:
    """Mean and 95 % t-interval of per-seed values (NaN bounds for one value)."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    half = T_975[n] * sd / math.sqrt(n) if n in T_975 else math.nan
    return {"mean": mean, "ci95": [mean - half, mean + half], "values": list(values)}


def run_on_both_cores(commands: Sequence[Sequence[str]]) -> None:
    """Run ``commands`` two at a time: core 0 takes the even ones in order, core 1 the odd ones,
    each under ``taskset`` with ``OMP_NUM_THREADS=1``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def worker(core: int) -> None:
        for argv in commands[core::2]:
            subprocess.run(["taskset", "-c", str(core), *argv], cwd=ROOT, env=env, check=True)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(worker, (0, 1)))
