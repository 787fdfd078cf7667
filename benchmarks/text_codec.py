"""`unsup compress` on the bible test split, as a user runs it, beside the general-purpose
compressors on the same bytes (issue #21).

    pip install -e ".[bench]"     # zstandard, pyppmd
    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/text_codec.py RUN \\
        --json benchmarks/results/text-codec-NAME.json

The test split of ``bible`` (the last 10 % of the King James Bible, 404,739 bytes, never seen in
training) is written to a file, then

* ``unsup compress RUN test.txt -o test.unsupz --json`` and ``unsup decompress RUN test.unsupz -o
  DIR`` run as the commands a user types (the round trip is checked byte for byte); their CPU
  seconds are those of the child processes, so they include starting Python and loading the run
  (reported apart: ``startup_cpu_seconds``, the CPU time of ``unsup --help``);
* gzip -9, bzip2 -9, xz -9e, zstd -19 and PPMd order 6 (as in ``benchmarks/compression.py``) code
  the same bytes, timed in CPU seconds of this process.

The model codes the file in windows of its training length, each from an empty context
(:mod:`unsup.codec.sequences`); the compressors adapt as they read. Rates are bits per character
(8 x bytes / characters).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from compression import STREAMS, _timed  # benchmarks/ is on sys.path
from pinned import git_commit

import unsup.data


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _unsup(*args: str) -> tuple[str, float]:
    """Run the ``unsup`` command; its stdout and CPU seconds."""
    t0 = _child_cpu()
    out = subprocess.run([sys.executable, "-m", "unsup.cli", *args], capture_output=True, text=True,
                         env={**os.environ})
    if out.returncode:
        sys.exit(f"unsup {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout, _child_cpu() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a trained text run (unsup train ... --data bible)")
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()
    data = bytes(unsup.data.load("bible", "test", length=256).stream.tolist())
    chars = len(data)
    out: dict[str, Any] = {"run": str(args.run), "chars": chars,
                           "command": " ".join(["python", "benchmarks/text_codec.py", *sys.argv[1:]]),
                           "git_commit": git_commit(), "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        src, stream, back = Path(tmp) / "test.txt", Path(tmp) / "test.unsupz", Path(tmp) / "back"
        src.write_bytes(data)
        _, startup = _unsup("--help")
        printed, enc = _unsup("compress", str(args.run), str(src), "-o", str(stream), "--json")
        _, dec = _unsup("decompress", str(args.run), str(stream), "-o", str(back))
        if not filecmp.cmp(src, back / src.name, shallow=False):
            sys.exit("the round trip changed the text")
        sizes = json.loads(printed.strip().splitlines()[-1])
    out["unsup"] = {"bytes": sizes["bytes"], "bits_per_char": 8 * sizes["bytes"] / chars,
                    "nll_bits_per_char": sizes["nll_bits"] / chars,
                    "coder_excess_bits_per_char": (sizes["payload_bits"] - sizes["nll_bits"]) / chars,
                    "container_bits_per_char": sizes["container_bits"] / chars,
                    "overhead": 8 * sizes["bytes"] / sizes["nll_bits"] - 1, "windows": sizes["count"],
                    "encode_cpu_seconds": enc, "decode_cpu_seconds": dec, "startup_cpu_seconds": startup,
                    "encode_kb_per_cpu_second": chars / 1000 / enc,
                    "decode_kb_per_cpu_second": chars / 1000 / dec}
    out["compressors"] = {}
    for name, codec in STREAMS.items():
        try:
            size, seconds = _timed(lambda codec=codec: len(codec(data)))
        except ImportError as e:
            out["compressors"][name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        out["compressors"][name] = {"bytes": size, "bits_per_char": 8 * size / chars,
                                    "encode_kb_per_cpu_second": chars / 1000 / seconds}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    u = out["unsup"]
    print(f"unsup compress: {u['bits_per_char']:.4f} bits/char (NLL {u['nll_bits_per_char']:.4f}, "
          f"+{100 * u['overhead']:.2f} %); {u['encode_kb_per_cpu_second']:.1f} / "
          f"{u['decode_kb_per_cpu_second']:.1f} KB per CPU s")
    for name, r in out["compressors"].items():
        print(f"{name:>14}: " + (r["error"] if "error" in r else f"{r['bits_per_char']:.4f} bits/char"))


if __name__ == "__main__":
    main()
