"""Score unsup's side of a pair with the same function that scores the peer's side.

``vae DIR``: the importance-sampled test NLL (K samples, first N test images) of a VAE/IWAE run
trained by ``unsup train``, by ``common.importance_sampled_nll`` over the run's own encoder
(``posterior``) and decoder (``decoder_params``, read as Bernoulli logits), on the exported test
split -- the estimator ``peer_pythae.py`` uses for pythae's model.

``sample DIR``: the seconds (wall and CPU) of one ``model.sample(N)`` call, timed in-process as
``peer_autoregressive.py --samples N`` times the peer's ``sample`` (start-up excluded on both sides;
``unsup sample DIR --n N`` is the same call behind the CLI).

``probe DIR``: the linear-probe accuracy of a representation run (SimCLR, MoCo) by
``common.linear_probe`` on the exported split, as ``peer_lightly.py`` scores lightly's model.

Runs beside unsup (the system python, or the vision venv for the lightly pairs); prints and writes
one JSON object (``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import importance_sampled_nll, linear_probe, load_split, versions, write_json  # noqa: E402


def score_vae(run: str, k: int, limit: int, seed: int) -> dict:
    from unsup.train.runs import load_run

    model, meta = load_run(run)

    def encode(x: torch.Tensor):
        return model.posterior(x.long())

    def decode_logits(z: torch.Tensor) -> torch.Tensor:
        p = model.decoder_params(z).flatten(2)  # (N, P, 784)
        if p.shape[1] == 1:  # one Bernoulli logit per pixel
            return p[:, 0]
        if p.shape[1] == 2:  # a 2-way softmax per pixel: the same Bernoulli, logit l1 - l0
            return p[:, 1] - p[:, 0]
        raise SystemExit(f"{run}: decoder has {p.shape[1]} parameters per pixel; expected a binary one")

    x_test, _ = load_split("binary", "test", limit)
    t0 = time.process_time()
    out = importance_sampled_nll(encode, decode_logits, x_test, k=k, seed=seed)
    out["cpu_seconds"] = time.process_time() - t0
    out["estimator"] = "common.importance_sampled_nll"
    out["step"] = meta["step"]
    return out


def score_probe(run: str, represent: str, limit: int | None) -> dict:
    from unsup.train.runs import load_run

    model, meta = load_run(run)

    @torch.no_grad()
    def features(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([model.encode(x[i:i + 512]).flatten(1) for i in range(0, len(x), 512)])

    t0 = time.process_time()
    out = linear_probe(features, represent, limit)
    out["cpu_seconds"] = time.process_time() - t0
    out["step"] = meta["step"]
    return out


@torch.no_grad()
def time_sampling(run: str, n: int, seed: int) -> dict:
    from unsup.train.runs import load_run

    model, _ = load_run(run)
    torch.manual_seed(seed)
    t0, c0 = time.perf_counter(), time.process_time()
    x = model.sample(n)
    return {"n": n, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "shape": list(x.shape)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=["vae", "probe", "sample"])
    ap.add_argument("run", help="an `unsup train --out` directory")
    ap.add_argument("--importance-samples", type=int, default=1000)
    ap.add_argument("--test-limit", type=int, help="score the first N test images")
    ap.add_argument("--represent", default="uint8", help="probe: the exported representation")
    ap.add_argument("--n", type=int, default=16, help="sample: how many")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    if args.kind == "sample":
        result = {"sampling": time_sampling(args.run, args.n, args.seed)}
    elif args.kind == "vae":
        result = {"test": score_vae(args.run, args.importance_samples, args.test_limit or 2000, args.seed)}
    else:
        result = {"test": score_probe(args.run, args.represent, args.test_limit)}
    result["versions"] = versions("unsup")
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
