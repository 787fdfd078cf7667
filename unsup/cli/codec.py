"""``unsup compress RUN [PNG...] -o FILE`` and ``unsup decompress RUN FILE -o DIR``: lossless
compression with a trained autoregressive model (:mod:`unsup.codec`)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unsup.cli.options import HelpFormatter, run_data_args, run_parent
from unsup.codec import compress, decompress
from unsup.codec.files import pictures_problem, png_paths, read_pngs, write_pngs
from unsup.codec.stream import read_stream
from unsup.errors import ConfigError
from unsup.progress import progress
from unsup.train import load_run, select_device


def add_parser(sub: Any) -> None:
    c = sub.add_parser(
        "compress", parents=[run_parent()], formatter_class=HelpFormatter,
        help="code images or a dataset split losslessly with a trained autoregressive model",
        description="Write a stream of about -log2 p(x) bits: each element range-coded (the\n"
        "constriction package) under the model's conditional given everything before it. The\n"
        "stream names the model by a fingerprint of its weights, so only the same run (and\n"
        "checkpoint) decodes it, on the same kind of device. See docs/codec.md.",
        epilog="examples:\n"
        "  unsup compress runs/pixelcnn photos/ -o photos.unsupz      # PNG files or folders\n"
        "  unsup compress runs/pixelcnn --split test --examples 100 -o test.unsupz\n"
        "  unsup decompress runs/pixelcnn photos.unsupz -o restored/")
    c.add_argument("run", metavar="RUN")
    c.add_argument("inputs", nargs="*", metavar="PNG",
                   help="PNG files or folders of them, of the model's size and channels (8-bit, or "
                   "black and white for a binary model); none: a split of the run's dataset")
    c.add_argument("-o", "--out", required=True, metavar="FILE", help="the stream to write")
    c.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="without PNG inputs: the split of the run's dataset to code")
    c.add_argument("--examples", type=int, default=None, metavar="N",
                   help="without PNG inputs: the first N examples of the split (default: all)")
    c.add_argument("--chunk", type=int, default=64, metavar="N",
                   help="examples coded side by side (memory against speed; the decoder uses the same)")
    c.add_argument("--json", action="store_true", help="print one JSON object of the sizes")


def add_parser_decompress(sub: Any) -> None:
    d = sub.add_parser(
        "decompress", parents=[run_parent()], formatter_class=HelpFormatter,
        help="decode a stream of `unsup compress` with the run that wrote it",
        epilog="example:\n  unsup decompress runs/pixelcnn test.unsupz -o restored/")
    d.add_argument("run", metavar="RUN")
    d.add_argument("stream", metavar="FILE")
    d.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="where to write: the PNG files by their names, or examples.npy (int16 levels) "
                   "and, for pictures a PNG holds exactly, 000000.png, 000001.png, ...")


def _split(args: argparse.Namespace, meta: dict[str, Any]) -> torch.Tensor:
    ds = run_data_args(args, meta).load(args.split)
    n = len(ds) if args.examples is None else args.examples
    if not 1 <= n <= len(ds):
        raise ConfigError(f"--examples must be in [1, {len(ds)}] (the {args.split} split's size), got {n}")
    # a fixed generator: a dynamically binarised split codes the same draw every time
    return ds.batch(torch.arange(n), generator=torch.Generator().manual_seed(0))["x"]


def cmd_compress(args: argparse.Namespace) -> int:
    model, meta = load_run(args.run, args.checkpoint, device=select_device(args.device))
    if args.inputs:
        paths = png_paths(args.inputs)
        x, kind, names = read_pngs(paths, model.spec), "images", [p.name for p in paths]
        source = {"run": str(args.run)}
    else:
        x, kind, names = _split(args, meta), "examples", None
        source = {"run": str(args.run), "data": meta["data"]["name"], "split": args.split}
    with progress(len(x), "compress", "example") as bar:
        sizes = compress(model, meta, x, args.out, chunk=args.chunk, kind=kind, names=names, source=source,
                         done=bar.update)
    dims = sizes["dims"]
    sizes.update(bits_per_dim=8 * sizes["bytes"] / dims, nll_bits_per_dim=sizes["nll_bits"] / dims,
                 overhead=8 * sizes["bytes"] / sizes["nll_bits"] - 1, out=str(args.out))
    if args.json:
        print(json.dumps(sizes))
    else:
        print(f"wrote {args.out}: {sizes['count']} examples in {sizes['bytes']:,} bytes, "
              f"{sizes['bits_per_dim']:.4f} bits/dim; the model's NLL {sizes['nll_bits_per_dim']:.4f} "
              f"bits/dim (+{100 * sizes['overhead']:.2f} %: the coder "
              f"{sizes['payload_bits'] - sizes['nll_bits']:+.0f} bits, header and checksum "
              f"{sizes['container_bits']} bits)")
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    model, meta = load_run(args.run, args.checkpoint, device=select_device(args.device))
    out = Path(args.out)
    stream = read_stream(args.stream)  # read and verified once, before the slow part
    with progress(stream[0].count, "decompress", "example") as bar:
        x, header = decompress(model, meta, args.stream, done=bar.update, stream=stream)
    if header.kind == "images":
        write_pngs(x, header.names or [], model.spec, out)
        print(f"wrote {len(x)} PNG files to {out}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "examples.npy", x.numpy().astype(np.int16), allow_pickle=False)
    pictures = ""
    if pictures_problem(model.spec) is None:  # else examples.npy alone
        width = max(6, math.ceil(math.log10(len(x) + 1)))
        write_pngs(x, [f"{i:0{width}d}.png" for i in range(len(x))], model.spec, out)
        pictures = f" and {len(x)} PNG files"
    print(f"wrote {out / 'examples.npy'} ({len(x)} examples, int16 levels){pictures}")
    return 0
