"""Does a command with a time budget end when the user expects? (issue #17)

    python benchmarks/budgets.py              # about 10 minutes on 2 idle cores
    python benchmarks/budgets.py --only glow-30s

Runs the README's budgeted quick commands and the ones the fresh-clone review timed, one after
the other on an otherwise idle machine with torch's default threads (every core), each into a
fresh run directory, and records for each: the wall time of the whole command (start-up, data,
training, final validation, test, sample grid), the CPU seconds it used (user + system, from
``getrusage`` of the child), its peak memory, the split of its time that ``unsup train`` prints
(``train.json``'s ``seconds``), and the ratio of the wall time to the ``--time`` budget. Also times
the commands that must answer at once (``--help``, ``list``, a bad argument) against a bare
``import torch``. Writes ``benchmarks/results/budgets.json`` (with the git commit and the threads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# name -> (budget in seconds, the `unsup train` arguments before --out)
COMMANDS: dict[str, tuple[float, list[str]]] = {
    "readme-pixelcnn-digits-2m": (120, ["pixelcnn", "--data", "digits", "--represent", "binary",
                                        "--time", "2m"]),
    "glow-30s": (30, ["glow", "--data", "fashion-mnist", "--time", "30s"]),
    "lstm-bible-30s": (30, ["lstm", "--data", "bible", "--time", "30s"]),
    "wavenet-speech-30s": (30, ["wavenet", "--data", "speech", "--conditional", "--time", "30s"]),
    "readme-wavenet-speech-30s": (30, ["wavenet", "--data", "speech", "--data-opt", "length=4000",
                                       "--conditional", "--batch-size", "8", "--time", "30s"]),
}
QUICK = {"help": ["--help"], "list": ["list"], "train-help": ["train", "made", "--help"],
         "bad-argument": ["train", "nosuchmodel", "--steps", "1", "--out", "/tmp/unsup-nosuch"]}


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def timed(argv: list[str]) -> dict[str, Any]:
    """Run ``argv``; its wall seconds, CPU seconds (user + system), peak RSS and exit code (the
    resource usage of that child alone, from ``wait4``)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "max_rss_mb": round(usage.ru_maxrss / 1024), "exit": proc.returncode,
            "stderr_tail": stderr.strip().splitlines()[-3:], "stdout": stdout.strip()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=list(COMMANDS), default=list(COMMANDS),
                   help="the budgeted commands to run (none: only the quick ones)")
    p.add_argument("--merge", action="store_true",
                   help="keep the other entries of an existing --json file (a partial rerun)")
    p.add_argument("--repeats", type=int, default=5, help="repeats of each quick command")
    p.add_argument("--json", default=str(RESULTS / "budgets.json"), help="'' to write nothing")
    args = p.parse_args()
    res: dict[str, Any] = {"command": "python benchmarks/" + " ".join([Path(__file__).name, *sys.argv[1:]]),
                           "commit": git_commit(), "threads": torch.get_num_threads(),
                           "cpus": os.cpu_count(), "load_before": os.getloadavg(), "quick": {},
                           "runs": {}}
    unsup = [sys.executable, "-m", "unsup.cli"]
    base = [timed([sys.executable, "-c", "import torch"])["cpu_s"] for _ in range(args.repeats)]
    res["quick"]["import-torch"] = {"cpu_s_min": min(base), "cpu_s_all": base}
    for name, argv in QUICK.items():
        cpu = [timed(unsup + argv)["cpu_s"] for _ in range(args.repeats)]
        res["quick"][name] = {"argv": argv, "cpu_s_min": min(cpu), "cpu_s_all": cpu,
                              "beyond_torch_s": round(min(cpu) - min(base), 2)}
        print(f"{name}: {min(cpu):.2f} CPU s ({min(cpu) - min(base):+.2f} beyond import torch)",
              flush=True)
    for name in args.only:
        budget, argv = COMMANDS[name]
        out = ROOT / "runs" / "budgets" / name
        shutil.rmtree(out, ignore_errors=True)
        r = timed(unsup + ["train", *argv, "--out", str(out)])
        train = json.loads((out / "train.json").read_text()) if (out / "train.json").exists() else {}
        test = json.loads((out / "test.json").read_text()) if (out / "test.json").exists() else {}
        r.update(argv=["unsup", "train", *argv, "--out", f"runs/budgets/{name}"], budget_s=budget,
                 wall_over_budget=round(r["wall_s"] / budget, 2), seconds=train.get("seconds"),
                 steps=train.get("steps"), partial=test.get("partial"), bpd=test.get("bpd"))
        res["runs"][name] = r
        print(f"{name}: {r['wall_s']:.0f} s wall ({r['wall_over_budget']:.1f}x the budget), "
              f"{r['cpu_s']:.0f} CPU s, {r['max_rss_mb']} MB; {r['seconds']}", flush=True)
    if args.json:
        path = Path(args.json)
        if args.merge and path.exists():  # the runs not repeated keep their own command and commit
            old = json.loads(path.read_text())
            for name, run in old["runs"].items():
                res["runs"].setdefault(name, {**run, "commit": old["commit"], "command": old["command"]})
        path.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
