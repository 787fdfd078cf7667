"""``unsup sample RUN``: samples of a trained run as a picture, sound or text; completions of
occluded test images; latent interpolations between test images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from unsup.cli.options import HelpFormatter, run_data_args, run_parent, sampling_options, sampling_parent
from unsup.errors import ConfigError
from unsup.models import Model
from unsup.train import load_run, select_device
from unsup.train.runs import original_view

SAMPLE_BATCH = 64  # samples drawn at once by `unsup sample` (memory-bounded sampling)


def add_parser(sub: Any) -> None:
    s = sub.add_parser("sample", parents=[run_parent(), sampling_parent()],
                       help="draw samples from a trained run", formatter_class=HelpFormatter,
                       epilog="example:\n  unsup sample runs/digits --n 64 --out samples.png "
                       "--temperature 0.9")
    s.add_argument("run", metavar="DIR")
    s.add_argument("--n", type=int, default=64, help="number of samples")
    s.add_argument("--out", required=True, metavar="FILE.png",
                   help="FILE.png: a picture; FILE.wav: models of audio sequences (speech), all "
                   "samples in one 16-bit WAV, 0.5 s of silence apart; FILE.txt: models of text "
                   "(bible, text:PATH), decoded, samples separated by a line of dashes")
    s.add_argument("--temperature", type=float, default=1.0,
                   help="divide logits by T (<1: sharper, >1: more diverse)")
    s.add_argument("--label", type=int, default=None, help="class for conditional models")
    s.add_argument("--naive", action="store_true",
                   help="sample without the model's activation cache (fast=False): the same "
                   "samples, far slower")
    s.add_argument("--complete", type=int, default=0, metavar="N",
                   help="instead of sampling, hide the bottom half of N test images and let the "
                   "model fill it in; the picture has rows of original | occluded | completion")
    s.add_argument("--interpolate", type=int, default=0, metavar="N",
                   help="instead of sampling, encode N pairs of test images with a flow and decode "
                   "8 points on the line between each pair's latents: one row per pair, the "
                   "ends are the images themselves")
    s.add_argument("--length", type=int, default=None, metavar="T",
                   help="elements per sample for models of any length (wavenet): e.g. 16000 for "
                   "one second of 16 kHz audio from a model trained on shorter clips "
                   "(default: the training length)")
    s.add_argument("--seed", type=int, default=0, help="seed of the samples")


def _text_vocab(model: Model, meta: dict[str, Any]) -> bytes:
    """The symbol -> byte table of a text model's data (its dataset reloaded from the run)."""
    name = meta["data"]["name"]
    if model.spec.kind == "sequence":
        ds = run_data_args(argparse.Namespace(), meta).load("train")
        vocab = getattr(ds, "vocab", None)
        if vocab is not None and len(vocab) == model.spec.levels:
            return vocab
    raise ConfigError(f"text output needs a model of text (bible, text:PATH); this one models "
                      f"{model.spec.kind} data {model.spec.shape} from {name!r}: write "
                      + ("sound as FILE.wav" if model.spec.kind == "sequence" else
                         "pictures as FILE.png"))


def _write_text(x: torch.Tensor, vocab: bytes, path: str) -> None:
    """Decode samples ``(n, T)`` through ``vocab`` and write them, a line of dashes between."""
    texts = [bytes(vocab[s] for s in row).decode("utf-8", errors="replace")
             for row in x.reshape(len(x), -1).tolist()]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(("\n" + "-" * 72 + "\n").join(texts) + "\n", encoding="utf-8")


def cmd_sample(args: argparse.Namespace) -> int:
    from unsup.plots import save_samples

    if args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    if args.temperature <= 0:
        raise ConfigError(f"--temperature must be positive, got {args.temperature}")
    model, meta = load_run(args.run, args.checkpoint, device=select_device(args.device))
    if not model.samples:
        raise ConfigError(f"{meta['model']} cannot sample")
    suffix = Path(args.out).suffix.lower()
    if args.length is not None:
        if not model.variable_length:
            raise ConfigError(f"--length: {meta['model']} samples only its training length; "
                              f"leave --length out")
        if args.complete or suffix not in (".wav", ".txt"):
            raise ConfigError("--length applies to sequences written as FILE.wav or FILE.txt, "
                              "not to pictures or --complete")
        length_opt = {"length": args.length}
    else:
        length_opt = {}
    if suffix == ".wav":  # checked before the (slow) sampling
        from unsup.audio import audio_format, save_audio_samples

        audio_format(model.spec, meta["data"]["name"])
    elif suffix == ".txt":
        vocab = _text_vocab(model, meta)
    elif model.spec.kind == "sequence":
        raise ConfigError(f"{meta['model']} samples sequences: write them as sound, --out FILE.wav "
                          f"(audio data), or as text, --out FILE.txt; not {suffix or args.out!r}")
    torch.manual_seed(args.seed)
    # Models without a cache sample naively anyway, so --naive just changes nothing for them.
    naive = {"fast": False} if args.naive and model.supports_fast_sampling else {}
    if args.complete and args.interpolate:
        raise ConfigError("--complete and --interpolate make different pictures; give one")
    if args.complete:
        return _complete(args, model, meta, naive)
    if args.interpolate:
        return _interpolate(args, model, meta)
    y = None if args.label is None else torch.full((args.n,), args.label, dtype=torch.long)
    view = original_view(model, meta, model.device) if suffix not in (".wav", ".txt") else None
    if view is not None:  # a prior over VQ-VAE codes: decode the sampled codes to images
        model = view[0]
    if y is None and model.num_classes is not None:  # every class in turn, across the chunks
        y = torch.arange(args.n) % model.num_classes
    options = {"temperature": args.temperature, **naive, **length_opt, **sampling_options(args, model)}
    # in chunks: a sampler's caches grow with the samples drawn at once (memory, page faults)
    x = torch.cat([model.sample(min(SAMPLE_BATCH, args.n - start),
                                y=None if y is None else y[start:start + SAMPLE_BATCH], **options).cpu()
                   for start in range(0, args.n, SAMPLE_BATCH)])
    if suffix == ".wav":
        save_audio_samples(x, model.spec, meta["data"]["name"], args.out)
    elif suffix == ".txt":
        _write_text(x, vocab, args.out)
    else:
        save_samples(x, model.spec, args.out, title=f"{meta['model']}, T={args.temperature}")
    print(f"wrote {args.n} samples to {args.out}")
    return 0


def _complete(args: argparse.Namespace, model: Model, meta: dict[str, Any],
              naive: dict[str, bool]) -> int:
    """``unsup sample --complete N``: the model fills in the bottom half of N test images."""
    from unsup.plots import save_completions

    if args.complete < 0:
        raise ConfigError(f"--complete must be a number of images, got {args.complete}")
    if model.spec.kind != "image" or not model.completes:
        raise ConfigError(f"{meta['model']} cannot complete images; --complete needs an image "
                          f"model such as pixelcnn or gated-pixelcnn")
    test = run_data_args(args, meta).load("test")
    n = min(args.complete, len(test))
    batch = test.batch(torch.arange(n))
    x = batch["x"]
    height, width = x.shape[-2:]
    known = (torch.arange(height) < height // 2).view(1, 1, height, 1).expand(n, 1, height, width)
    y = None
    if model.num_classes is not None:  # the images' own classes, or --label
        y = batch["y"] if args.label is None else torch.full((n,), args.label, dtype=torch.long)
    out = model.complete(x, known, temperature=args.temperature, y=y, **naive)
    save_completions(x, known, out, model.spec, args.out)
    print(f"wrote {n} completions of the bottom half of test images to {args.out}")
    return 0


def _interpolate(args: argparse.Namespace, model: Model, meta: dict[str, Any]) -> int:
    """``unsup sample --interpolate N``: latent-space lines between N pairs of test images."""
    from unsup.plots import image_grid

    steps = 8
    if args.interpolate < 0:
        raise ConfigError(f"--interpolate must be a number of pairs, got {args.interpolate}")
    if model.spec.kind != "image" or not model.interpolates:
        raise ConfigError(f"{meta['model']} has no latent space to interpolate in; --interpolate "
                          f"needs an image flow such as realnvp or glow")
    if Path(args.out).suffix.lower() != ".png":
        raise ConfigError(f"--interpolate writes a picture: --out FILE.png, not {args.out!r}")
    test = run_data_args(args, meta).load("test")
    pairs = min(args.interpolate, len(test) // 2)
    x = test.batch(torch.arange(2 * pairs))["x"].to(model.device)
    with torch.no_grad():
        rows = [model.interpolate(x[2 * i], x[2 * i + 1], steps) for i in range(pairs)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(torch.cat(rows).cpu(), model.spec.levels, ncol=steps).save(out)
    print(f"wrote {pairs} latent interpolations of {steps} steps between test images to {out}")
    return 0
