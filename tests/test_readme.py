"""Every command of the README runs on the repository alone, in the order the README gives them.

The commands are read from the README's ``bash`` blocks and run in a fresh directory (so the run
directories of one command are there for the next), with nothing but the repository and what
``install.sh`` installs. Only their budgets are cut, so that the whole README takes minutes
instead of hours: each ``--time`` becomes a few steps, and the counts of importance samples,
evaluated examples and batches, samples scored for quality, probe labels, fine-tuning steps and
sampled audio are divided (:data:`SHRINK`). Everything
else -- model, data, options, paths, outputs -- is as written. ``benchmarks/budgets.py`` runs the
main quick command with its real budget. Not run here: ``bash install.sh`` (CI has just run it),
``python3 -m pytest`` (this suite) and ``tensorboard`` (a server that does not end).

The commands form chains, one per run directory (``runs/NAME``) they use; a command that names no
run directory belongs to the chain before it, and one that names run directories of several chains
runs after all of them. Each chain keeps the README's order; independent chains run two at a time,
one thread each, so that the test takes half the time on the two cores CI has.
"""

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = ("bash install.sh", "python3 -m pytest", "tensorboard ")
SHRINK = [  # (pattern, replacement): the budgets, cut
    (r"--time \S+", "--steps 3 --eval-every 3 --eval-time 2s --eval-batches 1 --samples 8"),
    (r"--importance-samples \d+", "--importance-samples 8"),
    (r"--examples \d+", "--examples 16"),
    (r"--finetune-steps \d+", "--finetune-steps 4"),
    (r"--length \d+", "--length 400"),
    (r"--n 64", "--n 8"),
    (r"--labels 10%", "--labels 1%"),  # the probes' label budget: 540 examples instead of 5,401
    (r"--eval-batches \d+", "--eval-batches 1"),
    (r"--sample-quality \d+", "--sample-quality 64"),
]


def readme_commands() -> list[str]:
    """The README's shell commands, in order, without comments or continuation comment lines."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in re.sub(r"\\\n\s*", "", block).splitlines():  # continuation lines joined
            command = line.split("  #")[0].split(" # ")[0].strip()
            if command and not command.startswith("#") and not command.startswith(SKIP):
                commands.append(command)
    return commands


def shrunk(command: str) -> str:
    for pattern, replacement in SHRINK:
        command = re.sub(pattern, replacement, command)
    return command


def test_the_readme_has_the_commands_this_test_expects():
    commands = readme_commands()
    assert commands[0].startswith("unsup train pixelcnn --data digits")
    assert any(c.startswith("torchrun ") for c in commands)
    assert len(commands) >= 15


def chains(commands: list[str]) -> tuple[list[list[str]], list[str]]:
    """The commands grouped by the run directories they name, and those that join several."""
    groups: dict[str, list[str]] = {}
    last, joins = None, []
    for command in commands:
        runs = list(dict.fromkeys(re.findall(r"runs/[\w.-]+", command)))
        known = [r for r in runs if r in groups]
        if len(known) > 1:
            joins.append(command)
            continue
        key = known[0] if known else runs[0] if runs else last
        groups.setdefault(key, []).append(command)
        last = key
    return list(groups.values()), joins


def test_chains_keep_the_readme_order_and_its_dependencies():
    commands = readme_commands()
    groups, joins = chains(commands)
    assert sorted([c for g in groups for c in g] + joins) == sorted(commands)
    for group in groups:
        assert [commands.index(c) for c in group] == sorted(commands.index(c) for c in group)
    digits = next(g for g in groups if g[0].startswith("unsup train pixelcnn --data digits"))
    assert digits[-1] == "unsup eval runs/digits --checkpoint last"
    assert any("runs/digits" in c and "--resume" in c for c in digits)
    assert joins == ["unsup report runs/digits runs/vae -o report.html"]


def run(command: str, cwd: Path, env: dict) -> str | None:
    """Run one README command with its budget cut; the failure message, or None."""
    argv = shlex.split(shrunk(command))
    if argv[0] == "unsup":
        argv = [sys.executable, "-m", "unsup.cli", *argv[1:]]
    elif argv[0] == "torchrun":
        argv = [sys.executable, "-m", "torch.distributed.run", *argv[1:]]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        return (f"`{command}` (run as `{shrunk(command)}`) failed with {done.returncode}:\n"
                f"{done.stderr[-3000:]}")
    return None


def test_every_readme_command_runs_on_the_repository_alone(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("UNSUP_DATA", "UNSUP_SHARED")}
    env.update(UNSUP_CACHE=str(tmp_path / "cache"), UNSUP_PROGRESS_EVERY="600",
               OMP_NUM_THREADS="1")
    groups, joins = chains(readme_commands())

    def run_chain(chain: list[str]) -> str | None:
        for command in chain:
            failure = run(command, tmp_path, env)
            if failure:
                return failure
        return None

    with ThreadPoolExecutor(2) as pool:
        failures = [f for f in pool.map(run_chain, groups) if f]
    if not failures and (failure := run_chain(joins)):
        failures.append(failure)
    if failures:
        pytest.fail("\n\n".join(failures))
    assert (tmp_path / "runs" / "digits" / "samples.png").exists()
    assert (tmp_path / "speech.wav").exists() and (tmp_path / "s.png").exists()
    assert (tmp_path / "report.html").exists()
