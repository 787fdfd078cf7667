"""Bits-back coding of a trained VAE: the real rate of `unsup compress` against the model's
negative ELBO and its importance-sampled NLL, for a growing number of images (issue #21).

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/bitsback.py RUN --counts 1 10 100 1000 10000 \\
        --json benchmarks/results/bitsback-NAME.json

For each count ``n``, the first ``n`` images of the run's test split are compressed (library
calls, the run's default chunk of one image) and decompressed, the round trip checked, both timed
in CPU seconds of this process. Reported per data dimension:

* ``total``: the payload, initial bits included (what the file holds besides its header);
* ``net``: the payload less the initial bits, i.e. what the images themselves cost;
* ``neg_elbo``: the model's negative ELBO on the same images (one posterior draw each, seeded);
* ``initial``: the initial bits over ``n`` images: the cost of starting bits-back, amortised;
* ``container``: header and checksum.

Once, on the first ``--iwae-images`` images: the importance-sampled NLL estimate with
``--importance-samples`` samples (an upper bound on the model's true NLL in expectation, and the
best rate a bits-back coder with this model could approach) and, on the same images, the negative
ELBO and the net rate of their own stream.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from pinned import git_commit  # benchmarks/ is on sys.path

from unsup.codec import compress, decompress
from unsup.data import DataArgs
from unsup.train import load_run


def code(model, meta, x: torch.Tensor, chunk: int | None) -> dict:
    """Compress and decompress ``x``; sizes per dimension and CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.unsupz"
        t0 = time.process_time()
        sizes = compress(model, meta, x, path, chunk=chunk)
        t1 = time.process_time()
        back, header = decompress(model, meta, path)
        t2 = time.process_time()
    if not torch.equal(back, x):
        sys.exit("the round trip changed the images")
    dims = x.numel()
    return {"n": len(x), "chunk": header.chunk, "bytes": sizes["bytes"],
            "total": sizes["payload_bits"] / dims,
            "net": (sizes["payload_bits"] - sizes["initial_bits"]) / dims,
            "neg_elbo": sizes["neg_elbo_bits"] / dims, "initial": sizes["initial_bits"] / dims,
            "initial_bits": sizes["initial_bits"], "container": sizes["container_bits"] / dims,
            "file": 8 * sizes["bytes"] / dims,
            "encode_cpu_seconds": t1 - t0, "decode_cpu_seconds": t2 - t1,
            "encode_images_per_cpu_second": len(x) / (t1 - t0),
            "decode_images_per_cpu_second": len(x) / (t2 - t1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a trained vae, iwae or hvae run on discrete data")
    p.add_argument("--counts", type=int, nargs="+", default=[1, 10, 100, 1000, 10000])
    p.add_argument("--chunk", type=int, default=None, help="images per chunk (default: the coder's, 1)")
    p.add_argument("--iwae-images", type=int, default=1000)
    p.add_argument("--importance-samples", type=int, default=1000)
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()
    model, meta = load_run(args.run, args.checkpoint, device="cpu")
    test = DataArgs.from_dict(meta["data"]).load("test")
    n_max = max(max(args.counts), args.iwae_images)
    if n_max > len(test):
        sys.exit(f"the test split has {len(test)} images, fewer than {n_max}")
    x = test.batch(torch.arange(n_max), generator=torch.Generator().manual_seed(0))["x"]
    rows = []
    for n in sorted(args.counts):
        rows.append(code(model, meta, x[:n], args.chunk))
        r = rows[-1]
        print(f"n={n:>6}: total {r['total']:.4f}, net {r['net']:.4f}, -ELBO {r['neg_elbo']:.4f}, initial "
              f"{r['initial']:.4f} bits/dim; {r['encode_images_per_cpu_second']:.0f} / "
              f"{r['decode_images_per_cpu_second']:.0f} images per CPU s", flush=True)
    m = args.iwae_images
    model.use_importance_samples(args.importance_samples)
    torch.manual_seed(0)
    t0 = time.process_time()
    with torch.inference_mode():
        nll = -torch.cat([model.log_prob(x[i:i + 50]) for i in range(0, m, 50)]).double()
    iwae = {"n": m, "importance_samples": args.importance_samples,
            "nll": nll.mean().item() / (model.spec.dims * math.log(2)),
            "nll_se": nll.std().item() / math.sqrt(m) / (model.spec.dims * math.log(2)),
            "cpu_seconds": time.process_time() - t0, "same_images": code(model, meta, x[:m], args.chunk)}
    print(f"IWAE NLL ({args.importance_samples} samples, first {m} images): {iwae['nll']:.4f} bits/dim; "
          f"their net rate {iwae['same_images']['net']:.4f}, -ELBO {iwae['same_images']['neg_elbo']:.4f}")
    out = {"command": " ".join(["python", "benchmarks/bitsback.py", *sys.argv[1:]]),
           "git_commit": git_commit(), "threads": torch.get_num_threads(),
           "run": str(args.run), "model": meta["model"], "data": meta["data"]["name"],
           "representation": meta["data"].get("representation"), "levels": int(model.spec.levels),
           "shape": list(model.spec.shape), "latent_levels": list(model.latent_levels()),
           "counts": rows, "iwae": iwae}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
