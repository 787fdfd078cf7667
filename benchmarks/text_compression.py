"""Bits per character on the held-out bible text: general-purpose compressors vs trained models.

The test split of ``bible`` is the last 10 % of the King James Bible (``bible.txt`` of the
Canterbury Large Corpus), 404,739 bytes, never seen in training. A compressor's rate is
``8 * compressed size / bytes``:

* ``bzip2 -9`` (Burrows-Wheeler), ``xz -9e`` (LZMA2, extreme preset) -- both as stream files;
* PPMd (prediction by partial matching, the strongest classical text compressor here) via
  ``7z a -m0=PPMd -mx=9`` (p7zip-full); its size includes the 7z container's header, about
  a hundred bytes, ~0.002 bits/char on the test split.

Compressors adapt to the text as they read it; a model carries what it learnt from the training
split. ``--full`` adds the whole 4 MB file for reference (compressors do better with more text).

``--run DIR`` (repeatable) evaluates a trained run directory (``unsup train ... --data bible``)
on the same test split: its test NLL in bits per symbol is bits per character (every symbol is
one byte in both ``mode=bytes`` and ``mode=char``). The model sees the split as non-overlapping
windows of its training length, each predicted from scratch (no context carried across window
boundaries), and the tail shorter than one window is left out (``chars`` in the JSON).

    OMP_NUM_THREADS=1 python benchmarks/text_compression.py [--run runs/bible-transformer]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import unsup
from unsup.data.text import split_bounds
from unsup.train import evaluate, load_run


def compressed_sizes(data: bytes) -> dict[str, dict[str, Any]]:
    """Size in bytes and bits/char of ``data`` under each available compressor."""
    out: dict[str, dict[str, Any]] = {}
    commands = {"bzip2 -9": ["bzip2", "-9", "-c"], "xz -9e": ["xz", "-9e", "-c", "--threads=1"]}
    for name, cmd in commands.items():
        if shutil.which(cmd[0]) is None:
            out[name] = {"error": f"{cmd[0]} not installed"}
            continue
        t0 = time.perf_counter()
        size = len(subprocess.run(cmd, input=data, capture_output=True, check=True).stdout)
        out[name] = {"bytes": size, "bits_per_char": round(8 * size / len(data), 4),
                     "seconds": round(time.perf_counter() - t0, 2)}
    name = "PPMd (7z -m0=PPMd -mx=9)"
    if shutil.which("7z") is None:
        out[name] = {"error": "7z not installed (apt-get install p7zip-full)"}
        return out
    with tempfile.TemporaryDirectory() as tmp:
        src, archive = Path(tmp) / "t", Path(tmp) / "t.7z"
        src.write_bytes(data)
        t0 = time.perf_counter()
        subprocess.run(["7z", "a", "-bd", "-m0=PPMd", "-mx=9", str(archive), str(src)],
                       capture_output=True, check=True)
        size = archive.stat().st_size
        out[name] = {"bytes": size, "bits_per_char": round(8 * size / len(data), 4),
                     "seconds": round(time.perf_counter() - t0, 2),
                     "note": "includes the 7z container header"}
    return out


def evaluate_run(run: str, batch_size: int, context: int = 0) -> dict[str, Any]:
    """Test bits/char of a trained text model (see the module docstring)."""
    model, meta = load_run(run, "best")
    d = meta["data"]
    if d.get("representation", "native") != "native":
        raise SystemExit(f"{run}: trained on representation {d['representation']!r}; "
                         f"bits/char needs the native bytes or chars")
    test = unsup.data.load(d["name"], "test", "native", root=d.get("root"),
                           val_fraction=d.get("val_fraction", 0.1), seed=d.get("seed", 0),
                           **(d.get("options") or {}))
    t0 = time.perf_counter()
    m = evaluate(model, test, batch_size)
    out = {"run": run, "model": meta["model"], "data": d["name"], "options": d.get("options"),
           "step": meta.get("step"), "bits_per_char": round(m["bpd"], 4),
           "chars": m["n"] * model.spec.dims, "window": model.spec.dims,
           "seconds": round(time.perf_counter() - t0, 1)}
    if context:
        t0 = time.perf_counter()
        bits = stream_bits(model, test.stream, context, batch_size)
        out["with_context"] = {"context": context, "chars": len(test.stream),
                               "bits_per_char": round(bits / len(test.stream), 4),
                               "seconds": round(time.perf_counter() - t0, 1)}
    return out


@torch.no_grad()
def stream_bits(model: Any, stream: torch.Tensor, context: int, batch_size: int) -> float:
    """Bits to code the whole ``stream`` with sliding windows: the first window scores all of
    its ``T`` symbols, every later one starts ``context`` symbols before the first symbol it
    scores, so each symbol is scored once and (after the first ``T``) sees at least ``context``
    earlier ones -- the way a model compresses text it reads in order."""
    length = model.length
    if not 0 <= context < length:
        raise SystemExit(f"--context must be in [0, {length}), the model's window")
    model.eval()
    stream = stream.long()
    step = length - context
    # (window start, first scored position within it); the last window may be shorter.
    jobs = [(0, 0)] + [(s, context) for s in range(length - context, len(stream) - context, step)]
    nats = 0.0
    full = [j for j in jobs if j[0] + length <= len(stream)]
    for i in range(0, len(full), batch_size):
        chunk = full[i:i + batch_size]
        seq = torch.stack([stream[s:s + length] for s, _ in chunk]).to(model.device)  # (B, T)
        logp = torch.log_softmax(model.logits(seq).double(), -1).gather(-1, seq[..., None])[..., 0]
        for row, (_, first) in zip(logp, chunk, strict=True):
            nats -= float(row[first:].sum())
    for s, first in jobs[len(full):]:  # the tail, as a shorter prefix
        seq = stream[s:][None].to(model.device)
        logp = torch.log_softmax(model.logits(seq).double(), -1).gather(-1, seq[..., None])[..., 0]
        nats -= float(logp[0, first:].sum())
    return nats / math.log(2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", action="append", default=[], metavar="DIR",
                   help="a trained run directory to evaluate on the test split (repeatable)")
    p.add_argument("--full", action=argparse.BooleanOptionalAction, default=True,
                   help="also compress the whole file (reference)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--context", type=int, default=0, metavar="C",
                   help="also score the whole test text with sliding windows that give every "
                   "symbol at least C symbols of context (0: only non-overlapping windows)")
    p.add_argument("--out", default="benchmarks/results/text_compression.json")
    args = p.parse_args()

    # The exact bytes of each split, by the data layer's own split (mode=bytes: symbol = byte).
    train, val, test = (bytes(unsup.data.load("bible", s, length=256).stream.tolist())
                        for s in ("train", "val", "test"))
    everything = train + val + test
    data = test
    assert (len(everything) - len(data), len(everything)) == split_bounds(len(everything), "test", 0.1)
    result: dict[str, Any] = {
        "benchmark": "bits per character on the bible test split (last 10 % of bible.txt)",
        "command": "OMP_NUM_THREADS=1 python benchmarks/text_compression.py"
                   + "".join(f" --run {r}" for r in args.run)
                   + (f" --context {args.context}" if args.context else ""),
        "test_bytes": len(data),
        "test_split": [len(everything) - len(data), len(everything)],
        "compressors": compressed_sizes(data),
    }
    for name, r in result["compressors"].items():
        print(f"test split, {name}: {r.get('bits_per_char', r.get('error'))} bits/char", flush=True)
    if args.full:
        result["full_file_bytes"] = len(everything)
        result["full_file"] = compressed_sizes(everything)
        for name, r in result["full_file"].items():
            print(f"whole file, {name}: {r.get('bits_per_char', r.get('error'))} bits/char",
                  flush=True)
    result["models"] = [evaluate_run(r, args.batch_size, args.context) for r in args.run]
    for r in result["models"]:
        print(f"{r['run']} ({r['model']}): {r['bits_per_char']} bits/char over {r['chars']} chars")
        if "with_context" in r:
            c = r["with_context"]
            print(f"  with >= {c['context']} symbols of context: {c['bits_per_char']} bits/char "
                  f"over all {c['chars']} chars")
    result.update(torch=__import__("torch").__version__, machine=platform.machine(),
                  date=time.strftime("%Y-%m-%d %H:%M"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
