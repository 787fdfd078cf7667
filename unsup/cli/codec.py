"""``unsup compress RUN [FILE...] -o STREAM`` and ``unsup decompress RUN STREAM -o DIR``: lossless
compression with a trained autoregressive model (:mod:`unsup.codec`) of PNG, text or WAV files
(the model's data decides which) or of a split of its dataset."""

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
from unsup.codec.files import input_paths, pictures_problem, png_paths, read_pngs, write_pngs
from unsup.codec.sequences import audio_rate, file_kind, read_texts, read_wavs, text_vocab, write_files
from unsup.codec.stream import read_stream
from unsup.errors import ConfigError
from unsup.progress import progress
from unsup.train import load_run, select_device


def add_parser(sub: Any) -> None:
    c = sub.add_parser(
        "compress", parents=[run_parent()], formatter_class=HelpFormatter,
        help="code images, text, audio or a dataset split losslessly with a trained autoregressive "
        "model or VAE",
        description="Write a stream of about -log2 p(x) bits: with an autoregressive model each element\n"
        "range-coded (the constriction package) under the model's conditional given everything\n"
        "before it; with a VAE (vae, iwae, hvae) by bits-back coding with ANS, at about the\n"
        "negative ELBO plus initial bits paid once. The stream names the model by a fingerprint\n"
        "of its weights, so only the same run (and checkpoint) decodes it, on the same kind of\n"
        "device. See docs/codec.md.",
        epilog="examples:\n"
        "  unsup compress runs/pixelcnn photos/ -o photos.unsupz      # PNG files or folders\n"
        "  unsup compress runs/bible book.txt notes.txt -o t.unsupz    # a model of text: any files\n"
        "  unsup compress runs/wavenet clip.wav -o clip.unsupz         # of speech: mu-law WAV files\n"
        "  unsup compress runs/pixelcnn --split test --examples 100 -o test.unsupz\n"
        "  unsup decompress runs/pixelcnn photos.unsupz -o restored/")
    c.add_argument("run", metavar="RUN")
    c.add_argument("inputs", nargs="*", metavar="FILE",
                   help="files or folders of them: for a model of pictures PNG files of its size and "
                   "channels (8-bit, or black and white for a binary model); of text (bible, "
                   "text:PATH) any files; of speech 16-bit mono WAV files of its mu-law levels "
                   "(docs/codec.md); none: a split of the run's dataset")
    c.add_argument("-o", "--out", required=True, metavar="FILE", help="the stream to write")
    c.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="without input files: the split of the run's dataset to code")
    c.add_argument("--examples", type=int, default=None, metavar="N",
                   help="without input files: the first N examples of the split (default: all)")
    c.add_argument("--chunk", type=int, default=None, metavar="N",
                   help="examples coded side by side (memory against speed; the decoder uses the same). "
                   "Default 64; 1 for bits-back, whose first chunk costs initial bits in proportion "
                   "to its size")
    c.add_argument("--quantise", action="store_true",
                   help="WAV inputs: quantise mono PCM or float audio at the model's rate to its mu-law "
                   "levels first (lossy: decompress gives the quantised clip, exactly)")
    c.add_argument("--json", action="store_true", help="print one JSON object of the sizes")


def add_parser_decompress(sub: Any) -> None:
    d = sub.add_parser(
        "decompress", parents=[run_parent()], formatter_class=HelpFormatter,
        help="decode a stream of `unsup compress` with the run that wrote it",
        epilog="example:\n  unsup decompress runs/pixelcnn test.unsupz -o restored/")
    d.add_argument("run", metavar="RUN")
    d.add_argument("stream", metavar="FILE")
    d.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="where to write: the PNG, text or WAV files by their names, or examples.npy "
                   "(int16 levels) and, for pictures a PNG holds exactly, 000000.png, 000001.png, ...")


def _split(args: argparse.Namespace, meta: dict[str, Any]) -> torch.Tensor:
    ds = run_data_args(args, meta).load(args.split)
    n = len(ds) if args.examples is None else args.examples
    if not 1 <= n <= len(ds):
        raise ConfigError(f"--examples must be in [1, {len(ds)}] (the {args.split} split's size), got {n}")
    # a fixed generator: a dynamically binarised split codes the same draw every time
    return ds.batch(torch.arange(n), generator=torch.Generator().manual_seed(0))["x"]


def _inputs(args: argparse.Namespace, model: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """What to compress: ``compress``'s data and header arguments, from the input files (PNG, text
    or WAV, as the model's data says) or a split of the run's dataset."""
    data = run_data_args(args, meta)
    files = file_kind(model.spec, data)
    if args.quantise and (files != "audio" or not args.inputs):
        raise ConfigError("--quantise applies to WAV inputs of a model of audio (speech)")
    if not args.inputs:
        return {"x": _split(args, meta), "kind": "examples",
                "source": {"run": str(args.run), "data": data.name, "split": args.split}}
    if files is None:
        paths = png_paths(args.inputs)
        return {"x": read_pngs(paths, model.spec), "kind": "images", "names": [p.name for p in paths],
                "source": {"run": str(args.run)}}
    if files == "text":
        paths = input_paths(args.inputs, ".txt")
        packed = read_texts(paths, model.spec, text_vocab(model.spec, data))
    else:
        paths = input_paths(args.inputs, ".wav")
        packed = read_wavs(paths, model.spec, audio_rate(model.spec, data), args.quantise)
    return {"x": packed.x, "kind": files, "names": [p.name for p in paths], "source": {"run": str(args.run)},
            "lengths": packed.lengths, "files": packed.files, "vocab": packed.vocab}


def cmd_compress(args: argparse.Namespace) -> int:
    model, meta = load_run(args.run, args.checkpoint, device=select_device(args.device))
    inputs = _inputs(args, model, meta)
    x = inputs.pop("x")
    with progress(len(x), "compress", "example") as bar:
        sizes = compress(model, meta, x, args.out, chunk=args.chunk, done=bar.update, **inputs)
    dims, bits_back = sizes["dims"], "neg_elbo_bits" in sizes
    target = sizes["neg_elbo_bits"] + sizes["initial_bits"] if bits_back else sizes["nll_bits"]
    sizes.update(bits_per_dim=8 * sizes["bytes"] / dims, overhead=8 * sizes["bytes"] / target - 1,
                 out=str(args.out))
    if bits_back:
        sizes.update(neg_elbo_bits_per_dim=sizes["neg_elbo_bits"] / dims,
                     net_bits_per_dim=(sizes["payload_bits"] - sizes["initial_bits"]) / dims)
    else:
        sizes.update(nll_bits_per_dim=sizes["nll_bits"] / dims)
    if args.json:
        print(json.dumps(sizes))
    else:
        what = f"{sizes['count']} examples"
        if inputs["kind"] in ("text", "audio"):
            what = f"{len(inputs['names'])} {inputs['kind']} files ({sizes['count']} windows)"
        if bits_back:
            print(f"wrote {args.out}: {what} in {sizes['bytes']:,} bytes, {sizes['bits_per_dim']:.4f} "
                  f"bits/dim by bits-back: {sizes['net_bits_per_dim']:.4f} net of the "
                  f"{sizes['initial_bits']} initial bits, against the negative ELBO "
                  f"{sizes['neg_elbo_bits_per_dim']:.4f} (header and checksum "
                  f"{sizes['container_bits']} bits)")
            return 0
        print(f"wrote {args.out}: {what} in {sizes['bytes']:,} bytes, "
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
    if header.kind in ("text", "audio"):
        written = write_files(x, header, out)
        quantised = any(f.get("quantised") for f in header.files or [])
        print(f"wrote {len(written)} {header.kind} files to {out}"
              + (" (the quantised clips that were compressed)" if quantised else ""))
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
