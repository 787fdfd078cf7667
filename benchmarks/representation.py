"""Figures of issue #6 made from trained runs (train them first with `benchmarks/recipes.py`).

    python benchmarks/representation.py ae-vs-pca rep-ae-linear32-fashion rep-ae-plain32-fashion \
        rep-ae-deep32-fashion
    python benchmarks/representation.py pictures rep-context-encoder-cifar rep-colorization-cifar

``ae-vs-pca``: test reconstruction error (mean squared error per pixel in [0, 1], reconstructions
clamped to [0, 1]) of each MLP autoencoder run against PCA with as many components as the code has
dimensions, fitted on the same training pixels; a grid of test images (rows: originals, PCA, each
autoencoder) in docs/figures/ae-vs-pca.png and the numbers in benchmarks/results/ae-vs-pca.json.

``pictures``: what each run's pretext task does to 16 test images, evenly spaced in the test set so
that every class shows (`unsup train`'s pictures: inpaintings, colourings, reconstructions), in
docs/figures/NAME-*.png. A name is a recipe (runs/bench/NAME) or a run folder (e.g.
runs/seeded/context-adversarial/l2-s0, drawn as docs/figures/context-adversarial-l2-s0-*.png).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pinned import provenance  # noqa: E402  (benchmarks/ is on sys.path)

from unsup.cli.pictures import write_pictures  # noqa: E402
from unsup.plots import save_rows  # noqa: E402
from unsup.train.runs import load_run, run_data  # noqa: E402


def _floats(x: torch.Tensor, levels: int | None) -> torch.Tensor:
    return x.float() / (levels - 1) if levels is not None else x.float()


@torch.no_grad()
def ae_vs_pca(names: list[str], examples: int = 16) -> dict:
    from sklearn.decomposition import PCA

    rows, result = {}, {"runs": {}}
    for name in names:
        model, meta = load_run(ROOT / "runs" / "bench" / name, "best")
        model.eval()
        train, test = run_data(meta, "train"), run_data(meta, "test")
        levels, k = train.spec.levels, model.config.code_dim
        xte = _floats(test.x, levels)
        rec = torch.cat([model.reconstruction(model.images(b)) for b in test.x.split(1000)])
        result["runs"][name] = {"code_dim": k, "arch": model.config.arch, "hidden": model.config.hidden,
                                "activation": model.config.activation,
                                "test_mse": float((rec - xte).pow(2).mean())}
        rows[name] = rec[:examples]
        if f"pca{k}" not in result:
            xtr = _floats(train.x, levels).flatten(1).numpy()
            pca = PCA(n_components=k, random_state=0).fit(xtr)
            back = pca.inverse_transform(pca.transform(xte.flatten(1).numpy()))
            # clamped to [0, 1] like the autoencoders' reconstructions, so both are judged alike
            back = torch.as_tensor(back, dtype=torch.float32).view_as(xte).clamp(0, 1)
            result[f"pca{k}"] = {"test_mse": float((back - xte).pow(2).mean())}
            rows[f"pca{k}"] = back[:examples]
            rows = {"test images": xte[:examples], **rows}
    order = ["test images", *[r for r in rows if r.startswith("pca")],
             *[r for r in rows if r != "test images" and not r.startswith("pca")]]
    save_rows([rows[r] for r in order], ROOT / "docs" / "figures" / "ae-vs-pca.png")
    result["picture_rows"] = order
    return result


def run_folder(name: str) -> tuple[Path, str]:
    """A recipe's run (runs/bench/NAME) or a run folder given by path, and the figures' prefix."""
    path = ROOT / name
    if (path / "train.json").exists():  # a run folder: named by its last two parts
        return path, "-".join(path.parts[-2:])
    return ROOT / "runs" / "bench" / name, name


def pictures(names: list[str]) -> list[Path]:
    written = []
    for given in names:
        run, name = run_folder(given)
        model, meta = load_run(run, "best")
        test = run_data(meta, "test")
        out = run / "pictures"
        out.mkdir(parents=True, exist_ok=True)
        pick = torch.linspace(0, len(test) - 1, 16).long()  # spread over the test set: every class
        for path in write_pictures(model.eval(), out, 16, test.x[pick], test.y[pick]):
            target = ROOT / "docs" / "figures" / f"{name}-{path.name}"
            target.write_bytes(path.read_bytes())
            written.append(target)
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["ae-vs-pca", "pictures"])
    p.add_argument("names", nargs="+", help="recipe names (runs/bench/NAME), or run folders for pictures")
    args = p.parse_args()
    torch.manual_seed(0)
    if args.what == "ae-vs-pca":
        result = {**provenance("benchmarks/representation.py", sys.argv[1:]), **ae_vs_pca(args.names)}
        path = ROOT / "benchmarks" / "results" / "ae-vs-pca.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    else:
        for path in pictures(args.names):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
