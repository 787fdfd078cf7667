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
"""

import os
import re
import shlex
import subprocess
import sys
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


def test_every_readme_command_runs_on_the_repository_alone(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("UNSUP_DATA", "UNSUP_SHARED")}
    env.update(UNSUP_CACHE=str(tmp_path / "cache"), UNSUP_PROGRESS_EVERY="600")
    for command in readme_commands():
        argv = shlex.split(shrunk(command))
        if argv[0] == "unsup":
            argv = [sys.executable, "-m", "unsup.cli", *argv[1:]]
        elif argv[0] == "torchrun":
            argv = [sys.executable, "-m", "torch.distributed.run", *argv[1:]]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            pytest.fail(f"`{command}` (run as `{shrunk(command)}`) failed with {done.returncode}:\n"
                        f"{done.stderr[-3000:]}")
    assert (tmp_path / "runs" / "digits" / "samples.png").exists()
    assert (tmp_path / "speech.wav").exists() and (tmp_path / "s.png").exists()
