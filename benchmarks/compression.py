"""Lossless image compression: `unsup compress` with a trained model against the codecs people
use, on the same images (issue #21).

    pip install -e ".[bench]"     # imagecodecs (JPEG-XL), zstandard, pyppmd
    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/compression.py RUN --examples 1000 \\
        --json benchmarks/results/compression-NAME.json

On the first ``--examples`` images of the run's test split:

* ``unsup compress`` then ``unsup decompress`` (library calls; the round trip is checked),
  each timed in CPU seconds of this process: the file's bits/dim beside the model's NLL of the
  same images, the excess split into the coder's share and the container's (header, checksum);
* one file per image, sizes summed: PNG (Pillow, optimised, level 9; 1-bit for black and white),
  WebP lossless (Pillow, method 6), JPEG-XL lossless (imagecodecs, effort 9);
* all images as one raw stream (one byte per pixel and channel; black and white also packed 8
  pixels a byte, its compact raw form): gzip -9, bzip2 -9, xz -9e, zstd -19 (zstandard), PPMd
  order 6 (pyppmd).

A codec that is not installed is reported as missing, never skipped silently.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pinned import git_commit  # benchmarks/ is on sys.path

from unsup.codec import compress, decompress
from unsup.data import DataArgs
from unsup.errors import ConfigError
from unsup.ood.complexity import CODECS
from unsup.train import load_run


def _webp(image: np.ndarray, binary: bool) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image * 255 if binary else image).save(buf, format="WEBP", lossless=True, quality=100,
                                                           method=6)
    return buf.getvalue()


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19).compress(data)


def _ppmd(data: bytes) -> bytes:
    import pyppmd

    return pyppmd.compress(data, max_order=6, mem_size=64 << 20)


FILES: dict[str, Callable[[np.ndarray, bool], bytes]] = {
    "PNG (Pillow, level 9)": CODECS["png"][1], "WebP lossless (method 6)": _webp,
    "JPEG-XL lossless (effort 9)": CODECS["jpegxl"][1]}  # the codecs of `unsup ood`'s input complexity
STREAMS: dict[str, Callable[[bytes], bytes]] = {
    "gzip -9": lambda d: gzip.compress(d, 9, mtime=0), "bzip2 -9": lambda d: bz2.compress(d, 9),
    "xz -9e": lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), "zstd -19": _zstd,
    "PPMd order 6": _ppmd}


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def baselines(x: torch.Tensor, levels: int) -> dict[str, dict[str, Any]]:
    """Sizes (bytes, bits/dim) and encode CPU seconds of every codec on images ``x`` ``(n, C, H, W)``."""
    dims, binary = x.numel(), levels == 2
    images = [(im[0] if len(im) == 1 else im.transpose(1, 2, 0)).astype(np.uint8) for im in x.numpy()]
    raw = x.numpy().astype(np.uint8).tobytes()
    streams = {"": raw}
    if binary:
        streams[" (packed bits)"] = np.packbits(x.numpy().astype(bool)).tobytes()
    out: dict[str, dict[str, Any]] = {}
    for name, codec in FILES.items():
        try:
            sizes, seconds = _timed(lambda codec=codec: [len(codec(im, binary)) for im in images])
        except (ConfigError, OSError, ValueError) as e:  # ConfigError: imagecodecs not installed
            out[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        out[name] = {"bytes": sum(sizes), "bits_per_dim": 8 * sum(sizes) / dims,
                     "encode_cpu_seconds": seconds}
    for name, codec in STREAMS.items():
        for suffix, data in streams.items():
            try:
                size, seconds = _timed(lambda codec=codec, data=data: len(codec(data)))
            except ImportError as e:
                out[name + suffix] = {"error": f"{type(e).__name__}: {e}"}
                continue
            out[name + suffix] = {"bytes": size, "bits_per_dim": 8 * size / dims,
                                  "encode_cpu_seconds": seconds}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a trained autoregressive image run")
    p.add_argument("--examples", type=int, default=1000, help="the first N test images")
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()
    model, meta = load_run(args.run, args.checkpoint, device="cpu")
    test = DataArgs.from_dict(meta["data"]).load("test")
    x = test.batch(torch.arange(args.examples), generator=torch.Generator().manual_seed(0))["x"]
    stream = args.json.with_suffix(".unsupz")
    sizes, enc = _timed(lambda: compress(model, meta, x, stream, chunk=args.chunk))
    (back, _), dec = _timed(lambda: decompress(model, meta, stream))
    if not torch.equal(back, x):
        sys.exit("the round trip changed the images")
    stream.unlink()
    dims = x.numel()
    unsup_row = {"bytes": sizes["bytes"], "bits_per_dim": 8 * sizes["bytes"] / dims,
                 "nll_bits_per_dim": sizes["nll_bits"] / dims,
                 "coder_excess_bits_per_dim": (sizes["payload_bits"] - sizes["nll_bits"]) / dims,
                 "container_bits_per_dim": sizes["container_bits"] / dims,
                 "overhead": 8 * sizes["bytes"] / sizes["nll_bits"] - 1,
                 "encode_cpu_seconds": enc, "decode_cpu_seconds": dec,
                 "encode_images_per_cpu_second": len(x) / enc, "decode_images_per_cpu_second": len(x) / dec}
    out = {"command": " ".join(["python", "benchmarks/compression.py", *sys.argv[1:]]),
           "git_commit": git_commit(), "threads": torch.get_num_threads(),
           "run": str(args.run), "model": meta["model"], "data": meta["data"]["name"],
           "representation": meta["data"].get("representation"), "levels": int(model.spec.levels),
           "shape": list(model.spec.shape), "n": len(x), "chunk": args.chunk,
           "unsup": unsup_row, "baselines": baselines(x, int(model.spec.levels))}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"unsup compress: {unsup_row['bits_per_dim']:.4f} bits/dim "
          f"(NLL {unsup_row['nll_bits_per_dim']:.4f}, "
          f"+{100 * unsup_row['overhead']:.2f} %), {unsup_row['encode_images_per_cpu_second']:.1f} / "
          f"{unsup_row['decode_images_per_cpu_second']:.1f} images per CPU s")
    for name, row in out["baselines"].items():
        print(f"{name:>30}: " + (row["error"] if "error" in row else f"{row['bits_per_dim']:.4f} bits/dim"))


if __name__ == "__main__":
    main()
