"""The blind spot as a picture: which input pixels one output of PixelCNN, Gated PixelCNN and
PixelSNAIL depends on (issue #23).

    python benchmarks/blind_spot.py      # writes the JSON and docs/figures/blind-spot.png

A masked-convolution PixelCNN stacks ``k x k`` convolutions whose masks see the rows above and the
pixels to the left; composed, they never reach a wedge of pixels up and to the right of the pixel
being predicted, although those pixels come earlier in raster order (van den Oord et al. 2016,
Conditional PixelCNN, figure 1). Gated PixelCNN's vertical and horizontal stacks see the whole
rectangle above within the receptive field; PixelSNAIL's causal attention sees every earlier pixel.

The dependence is read off the network, not assumed: for each model in its CPU default on 28x28
8-bit images, with random weights (the receptive field is a property of the architecture, not of
training), ``|d logits(i, j) / d inputs|`` in float64 for one output pixel, summed over levels and a
random mix of the output levels. A pixel is *seen* when that gradient is non-zero. Counted against
raster order: earlier pixels seen, earlier pixels **not** seen (the blind spot, within the reach of
the receptive field and beyond it), and later pixels seen (must be 0: the model would be
cheating). Takes seconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from pinned import provenance  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "blind-spot.json"
FIGURE = ROOT / "docs" / "figures" / "blind-spot.png"
MODELS = ("pixelcnn", "gated-pixelcnn", "pixelsnail")
PIXEL = (14, 14)
SIDE, LEVELS = 28, 256


def dependence(name: str, seed: int = 0) -> torch.Tensor:
    """``(H, W)`` bool: the input pixels the output logits at :data:`PIXEL` depend on."""
    import unsup
    from unsup.data.base import DataSpec

    torch.manual_seed(seed)
    model = unsup.create(name, DataSpec((1, SIDE, SIDE), LEVELS)).double().eval()
    inputs = (torch.rand(1, 1, SIDE, SIDE, dtype=torch.float64) * 2 - 1).requires_grad_()
    logits = model.logits(inputs)  # (B, C, H, W, levels)
    mix = torch.randn(logits.shape[-1], dtype=torch.float64)
    (grad,) = torch.autograd.grad((logits[0, 0, PIXEL[0], PIXEL[1]] * mix).sum(), inputs)
    return grad[0, 0] != 0


def counts(seen: torch.Tensor) -> dict:
    """Earlier pixels seen and not seen (the blind spot near the pixel: within the rows and columns
    the model sees at all), later pixels seen."""
    i, j = PIXEL
    order = torch.arange(SIDE * SIDE).view(SIDE, SIDE)
    earlier = order < i * SIDE + j
    rows = seen.any(1).nonzero().flatten()
    cols = seen.any(0).nonzero().flatten()
    reach = torch.zeros_like(seen)
    if len(rows):
        reach[int(rows.min()):i + 1, int(cols.min()):int(cols.max()) + 1] = True
    blind_near = earlier & reach & ~seen
    return {"earlier": int(earlier.sum()), "earlier_seen": int((earlier & seen).sum()),
            "earlier_unseen": int((earlier & ~seen).sum()),
            "blind_within_reach": int(blind_near.sum()),
            "blind_within_reach_up_right": int((blind_near & (torch.arange(SIDE) > j)).sum()),
            "later_seen": int((~earlier & seen).sum()),
            "reach_rows": [int(rows.min()), i] if len(rows) else None,
            "reach_cols": [int(cols.min()), int(cols.max())] if len(cols) else None}


def draw(maps: dict[str, torch.Tensor], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    i, j = PIXEL
    order = torch.arange(SIDE * SIDE).view(SIDE, SIDE)
    earlier = order < i * SIDE + j
    fig, axes = plt.subplots(1, len(maps), figsize=(3.4 * len(maps), 3.6))
    colours = ListedColormap(["#ffffff", "#d9d9d9", "#1f77b4", "#d62728", "#000000"])
    for ax, (name, seen) in zip(axes, maps.items(), strict=True):
        # 0 later, 1 earlier unseen (far), 2 seen, 3 earlier unseen within reach (blind), 4 the pixel
        c = counts(seen)
        picture = earlier.long()
        picture[seen] = 2
        if c["reach_rows"]:
            (r0, r1), (c0, c1) = c["reach_rows"], c["reach_cols"]
            near = torch.zeros_like(seen)
            near[r0:r1 + 1, c0:c1 + 1] = True
            picture[earlier & near & ~seen] = 3
        picture[i, j] = 4
        ax.imshow(picture.numpy(), cmap=colours, vmin=0, vmax=4, interpolation="nearest")
        ax.set_title(f"{name}\nseen {c['earlier_seen']}, blind {c['blind_within_reach']}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Input pixels the prediction of pixel {PIXEL} depends on (blue); "
                 "red: earlier pixels within reach it never sees", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main() -> None:
    doc = provenance("benchmarks/blind_spot.py", sys.argv[1:])
    maps = {name: dependence(name) for name in MODELS}
    doc.update(pixel=list(PIXEL), side=SIDE, levels=LEVELS, weights="random (seed 0), float64",
               figure=str(FIGURE.relative_to(ROOT)), models={n: counts(m) for n, m in maps.items()})
    draw(maps, FIGURE)
    RESULT.write_text(json.dumps(doc, indent=1) + "\n")
    for name, c in doc["models"].items():
        print(f"{name:15s} earlier seen {c['earlier_seen']:4d}  blind within reach "
              f"{c['blind_within_reach']:3d} (up-right {c['blind_within_reach_up_right']:3d})  "
              f"later seen {c['later_seen']}")
    print(f"wrote {RESULT} and {FIGURE}")


if __name__ == "__main__":
    main()
