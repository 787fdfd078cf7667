"""Images a user looks at: sample grids, 1-D and 2-D learned densities."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from unsup.data.base import DataSpec
from unsup.errors import ConfigError


def to_uint8_images(x: torch.Tensor, levels: int | None) -> np.ndarray:
    """``(N, C, H, W)`` levels or floats in [0, 1] -> ``(N, H, W, C)`` uint8."""
    x = x.detach().float().cpu()
    x = x / (levels - 1) if levels is not None else x.clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def image_grid(x: torch.Tensor, levels: int | None, *, ncol: int | None = None,
               pad: int = 1, scale: int = 0) -> Image.Image:
    """Tile images into one picture; small images are scaled up so the grid is legible."""
    imgs = to_uint8_images(x, levels)
    n, h, w, c = imgs.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 128, np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[top:top + h, left:left + w] = imgs[i]
    img = Image.fromarray(grid[..., 0] if c == 1 else grid)
    scale = scale or max(1, round(512 / max(grid.shape[:2])))  # about 512 px: legible when opened
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_samples(x: torch.Tensor, spec: DataSpec, path: str | Path, title: str = "") -> None:
    """Save samples as a picture suited to the data: an image grid, a 1-D histogram or a 2-D
    scatter/heat map."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec.kind == "image":
        image_grid(x, spec.levels).save(path)
        return
    if spec.kind == "vector" and spec.shape in ((1,), (2,)):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 4))
        xs = x.detach().cpu().float().numpy()
        if spec.shape == (1,):
            bins = np.arange(spec.levels + 1) - 0.5 if spec.levels else 50
            ax.hist(xs[:, 0], bins=bins, density=True)
            ax.set_xlabel("x")
        elif spec.levels is not None:
            h = np.zeros((spec.levels, spec.levels))
            np.add.at(h, (xs[:, 0].astype(int), xs[:, 1].astype(int)), 1)
            ax.imshow(h.T, origin="lower", cmap="viridis")
            ax.set_xlabel("x1"), ax.set_ylabel("x2")
        else:
            ax.scatter(xs[:, 0], xs[:, 1], s=2, alpha=0.5)
        ax.set_title(title or f"{len(xs)} samples")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return
    if spec.kind == "sequence":
        raise ConfigError(f"no picture for sequences of shape {spec.shape}; write samples as "
                          f"sound (FILE.wav, audio data) or text (FILE.txt)")
    raise ConfigError(f"no picture for {spec.kind} data of shape {spec.shape}; "
                      f"sample grids need images or 1-D/2-D vectors")


def save_completions(x: torch.Tensor, known: torch.Tensor, completed: torch.Tensor,
                     spec: DataSpec, path: str | Path) -> None:
    """Save one row per image: the original, the part the model was shown (hidden pixels grey)
    and the model's completion."""
    def unit(t: torch.Tensor) -> torch.Tensor:  # levels -> [0, 1]
        t = t.detach().float().cpu()
        return t / (spec.levels - 1) if spec.levels is not None else t.clamp(0, 1)

    original = unit(x)
    occluded = torch.where(known.cpu().expand_as(original), original, 0.5)
    rows = torch.stack([original, occluded, unit(completed)], 1).flatten(0, 1)  # (3N, C, H, W)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(rows, None, ncol=3).save(path)


def save_reconstructions(x: torch.Tensor, reconstructed: torch.Tensor, spec: DataSpec,
                         path: str | Path, ncol: int = 8) -> None:
    """Save images and their reconstructions: rows of ``ncol`` originals, each followed by the
    row of their reconstructions."""
    n = len(x) - len(x) % ncol if len(x) >= ncol else len(x)
    ncol = min(ncol, n)
    rows = torch.stack([x[:n].cpu().view(-1, ncol, *x.shape[1:]),
                        reconstructed[:n].cpu().view(-1, ncol, *x.shape[1:])], 1)  # (R, 2, ncol, ...)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(rows.flatten(0, 2), spec.levels, ncol=ncol).save(path)


def save_rows(rows: list[torch.Tensor], path: str | Path, ncol: int = 8) -> None:
    """Save aligned rows of float images in ``[0, 1]`` (each ``(B, C, H, W)``), in blocks of
    ``ncol`` examples: block by block, row 1 of the block, row 2, ..."""
    n = min(len(r) for r in rows)
    ncol = min(ncol, n)
    n -= n % ncol
    grid = torch.stack([r[:n].detach().float().clamp(0, 1).cpu().view(-1, ncol, *r.shape[1:])
                        for r in rows], 1)  # (blocks, rows, ncol, C, H, W)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(grid.flatten(0, 2), None, ncol=ncol).save(path)


@torch.no_grad()
def save_interpolations(model: torch.nn.Module, x: torch.Tensor, path: str | Path,
                        pairs: int = 8, steps: int = 10) -> None:
    """Rows of ``model.interpolate(a, b, steps)`` between consecutive pairs of the images ``x``;
    the first and last columns are decodings of the two endpoints' codes."""
    rows = [model.interpolate(x[2 * i], x[2 * i + 1], steps).cpu()
            for i in range(min(pairs, len(x) // 2))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(torch.cat(rows), model.spec.levels, ncol=steps).save(path)


@torch.no_grad()
def save_traversal(model: torch.nn.Module, x: torch.Tensor, path: str | Path, dims: int = 10,
                   span: float = 3.0, steps: int = 9) -> None:
    """Latent traversals (the beta-VAE figure): the code of the image ``x[0]`` with one latent
    coordinate at a time swept over ``[-span, span]``, one row per coordinate. Rows are the
    ``dims`` coordinates whose posterior means vary most over the images ``x`` (the active units
    first)."""
    codes = torch.cat([model.encode(c) for c in x.split(1024)])  # (N, z)
    order = codes.double().var(0).argsort(descending=True)[:dims]
    values = torch.linspace(-span, span, steps, device=codes.device)
    z = codes[:1].repeat(len(order) * steps, 1)  # (rows * steps, z)
    for r, j in enumerate(order.tolist()):
        z[r * steps:(r + 1) * steps, j] = values
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(model.decode(z).cpu(), model.spec.levels, ncol=steps).save(path)


@torch.no_grad()
def save_decoder_means(model: torch.nn.Module, x: torch.Tensor, path: str | Path,
                       n: int = 2000) -> None:
    """2-D data: the data, samples ``x ~ p(x | z)`` and the decoder means ``E[x | z]`` for
    ``z ~ p(z)`` side by side. A collapsed posterior shows as decoder means piled on one point:
    the latent carries nothing and the decoder's own noise models all of the data."""
    torch.manual_seed(0)
    z = model.sample_prior(n)
    panels = ((x[:n], "test data"), (model.decoder_draw(z), "samples x ~ p(x | z)"),
              (model.decode(z), "decoder means E[x | z]"))
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True, sharey=True)
    for ax, (v, title) in zip(axes, panels, strict=True):
        v = v.detach().cpu().float().numpy()
        ax.scatter(v[:, 0], v[:, 1], s=2, alpha=0.5)
        ax.set_title(title)
        ax.set_xlabel("x1")
    axes[0].set_ylabel("x2")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


@torch.no_grad()
def save_density(model: torch.nn.Module, spec: DataSpec, data: torch.Tensor,
                 path: str | Path, title: str = "") -> None:
    """Plot a model's probabilities over every value of 1-D or 2-D discrete data next to the
    empirical histogram of ``data``."""
    if spec.kind != "vector" or spec.shape not in ((1,), (2,)) or spec.levels is None:
        raise ConfigError("density plots are for 1-D or 2-D discrete data")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = spec.levels
    device = next(iter(model.parameters())).device
    xs = data.detach().cpu().long().numpy()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    if spec.shape == (1,):
        grid = torch.arange(k, device=device)[:, None]
        p = model.log_prob(grid).exp().cpu().numpy()
        emp = np.bincount(xs[:, 0], minlength=k) / len(xs)
        axes[0].bar(np.arange(k), emp)
        axes[1].bar(np.arange(k), p, color="C1")
    else:
        a, b = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
        grid = torch.stack([a.reshape(-1), b.reshape(-1)], 1).to(device)
        p = torch.cat([model.log_prob(g).exp() for g in grid.split(4096)]).cpu().numpy().reshape(k, k)
        emp = np.zeros((k, k))
        np.add.at(emp, (xs[:, 0], xs[:, 1]), 1)
        axes[0].imshow(emp.T / len(xs), origin="lower", cmap="viridis")
        axes[1].imshow(p.T, origin="lower", cmap="viridis")
    axes[0].set_title("data (test split)")
    axes[1].set_title(title or "model p(x)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _continuous_low_dim(model: torch.nn.Module, what: str) -> DataSpec:
    spec = model.spec
    if spec.kind != "vector" or spec.shape not in ((1,), (2,)) or spec.levels is not None:
        raise ConfigError(f"{what} are for 1-D or 2-D continuous data; this model has "
                          f"{spec.kind} data of shape {spec.shape} with levels={spec.levels}"
                          + (" (use save_density for discrete data)" if spec.levels else ""))
    return spec


def _padded_range(v: np.ndarray, pad: float = 0.1) -> tuple[float, float]:
    lo, hi = float(v.min()), float(v.max())
    margin = pad * (hi - lo) if hi > lo else 0.5
    return lo - margin, hi + margin


@torch.no_grad()
def _log_prob_in_eval(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model.log_prob`` in evaluation mode (batch norm: running statistics), in chunks."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model.log_prob(c) for c in x.split(4096)])
    finally:
        model.train(was_training)


def save_density_continuous(model: torch.nn.Module, x: torch.Tensor, path: str | Path,
                            title: str = "") -> None:
    """Plot a model's density ``exp(log_prob)`` on a grid over the range of ``x`` (1-D or 2-D
    continuous data) beside a histogram of ``x``, both as densities on the same axes.

    Raises:
        ConfigError: the model's data is not 1-D or 2-D continuous vectors.
    """
    spec = _continuous_low_dim(model, "continuous density plots")
    plt = _pyplot()
    device = next(iter(model.parameters())).device
    xs = x.detach().cpu().float().numpy().reshape(len(x), -1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    if spec.shape == (1,):
        lo, hi = _padded_range(xs[:, 0])
        g = torch.linspace(lo, hi, 500)
        p = _log_prob_in_eval(model, g[:, None].to(device)).exp().cpu().numpy()
        axes[0].hist(xs[:, 0], bins=60, range=(lo, hi), density=True)
        axes[1].plot(g.numpy(), p, color="C1")
        axes[1].fill_between(g.numpy(), p, color="C1", alpha=0.3)
        for ax in axes:
            ax.set_xlim(lo, hi)
            ax.set_xlabel("x")
    else:
        (x0, x1), (y0, y1) = _padded_range(xs[:, 0]), _padded_range(xs[:, 1])
        n = 150
        gx, gy = torch.linspace(x0, x1, n), torch.linspace(y0, y1, n)
        a, b = torch.meshgrid(gx, gy, indexing="ij")
        grid = torch.stack([a.reshape(-1), b.reshape(-1)], 1).to(device)  # (n*n, 2)
        p = _log_prob_in_eval(model, grid).exp().cpu().numpy().reshape(n, n)  # [i, j] = (gx_i, gy_j)
        extent = (x0, x1, y0, y1)
        emp, _, _ = np.histogram2d(xs[:, 0], xs[:, 1], bins=80, range=[[x0, x1], [y0, y1]],
                                   density=True)
        axes[0].imshow(emp.T, origin="lower", extent=extent, cmap="viridis", aspect="auto")
        axes[1].imshow(p.T, origin="lower", extent=extent, cmap="viridis", aspect="auto")
        for ax in axes:
            ax.set_xlabel("x1")
            ax.set_ylabel("x2")
    axes[0].set_title(f"data ({len(xs)} points)")
    axes[1].set_title(title or "model density p(x)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


@torch.no_grad()
def save_latents(model: torch.nn.Module, x: torch.Tensor, path: str | Path,
                 y: torch.Tensor | None = None) -> None:
    """Plot the data ``x`` beside its latent codes ``model.encode(x)`` (1-D: histograms; 2-D:
    scatters coloured by the labels ``y`` if given), to see where the flow sends each part.

    Raises:
        ConfigError: the model has no ``encode``, its data is not 1-D or 2-D vectors, or its
            codes do not have the data's shape.
    """
    if not callable(getattr(model, "encode", None)):
        raise ConfigError(f"{type(model).__name__} has no encode(x): no latent space to plot")
    spec = model.spec
    if spec.kind != "vector" or spec.shape not in ((1,), (2,)):
        raise ConfigError(f"latent plots are for 1-D or 2-D vector data, got {spec.kind} data of "
                          f"shape {spec.shape}")
    was_training = model.training
    model.eval()
    try:
        z = torch.cat([model.encode(c) for c in x.split(4096)])
    finally:
        model.train(was_training)
    if tuple(z.shape) != tuple(x.shape):
        raise ConfigError(f"{type(model).__name__}.encode gives codes of shape {tuple(z.shape[1:])}, "
                          f"not the data's {spec.shape}: not a latent space to plot")
    plt = _pyplot()
    xs = x.detach().cpu().float().numpy().reshape(len(x), -1)
    zs = z.detach().cpu().float().numpy().reshape(len(z), -1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    if spec.shape == (1,):
        axes[0].hist(xs[:, 0], bins=60, density=True)
        axes[1].hist(zs[:, 0], bins=60, density=True, color="C1")
        axes[0].set_xlabel("x")
        axes[1].set_xlabel("z")
    else:
        colour = {}
        if y is not None:  # distinct colours for up to 10 classes, a colour map beyond
            labels = y.detach().cpu().numpy()
            few = labels.max(initial=0) < 10
            colour = {"c": labels, "cmap": "tab10" if few else "viridis"} | (
                {"vmin": 0, "vmax": 9} if few else {})
        for ax, v, name in ((axes[0], xs, "x"), (axes[1], zs, "z")):
            ax.scatter(v[:, 0], v[:, 1], s=3, alpha=0.6, **colour)
            ax.set_xlabel(f"{name}1")
            ax.set_ylabel(f"{name}2")
    axes[0].set_title(f"data x ({len(xs)} points)")
    axes[1].set_title(f"latent z = encode(x), {type(model).__name__}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_chart(chart: dict[str, Any], path: str | Path) -> None:
    """A line chart: ``chart`` holds ``title``, ``xlabel``, ``ylabel`` and ``series`` (``{label:
    (xs, ys)}``), the form of a model's ``charts()`` and of the benchmark comparisons."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, (xs, ys) in chart["series"].items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(chart["xlabel"])
    ax.set_ylabel(chart["ylabel"])
    ax.set_title(chart["title"], fontsize=10)
    ax.grid(alpha=0.3)
    if len(chart["series"]) > 1 or chart.get("legend"):
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_atoms(D: torch.Tensor, path: str | Path, patch_size: int) -> None:
    """Write the atoms (columns of ``D``, ``(size*size, K)``) as a PNG grid of grey patches, each
    stretched from its own minimum (black) to maximum (white)."""
    if D.shape[0] != patch_size * patch_size:
        raise ConfigError(f"atoms of {D.shape[0]} values are not {patch_size}x{patch_size} patches")
    a = D.detach().float().cpu().T  # (K, size*size)
    lo, hi = a.min(1, keepdim=True).values, a.max(1, keepdim=True).values
    a = (a - lo) / (hi - lo).clamp_min(1e-12)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(a.view(-1, 1, patch_size, patch_size), None).save(path)


@torch.no_grad()
def save_trajectories(chains: torch.Tensor, data: torch.Tensor, path: str | Path, title: str = "") -> None:
    """Sampling chains of 2-D data, ``(states, n, 2)``, as lines from their start (noise, grey
    dot) to their end (the sample, coloured dot), over the data (light points)."""
    plt = _pyplot()
    c = chains.detach().cpu().float().numpy()
    xs = data.detach().cpu().float().numpy().reshape(len(data), -1)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(xs[:, 0], xs[:, 1], s=2, color="0.8", label="data")
    for k in range(c.shape[1]):
        ax.plot(c[:, k, 0], c[:, k, 1], lw=0.6, alpha=0.6)
    ax.scatter(c[0, :, 0], c[0, :, 1], s=6, color="0.4", label="start (noise)")
    ax.scatter(c[-1, :, 0], c[-1, :, 1], s=8, color="C3", label="sample")
    (x0, x1), (y0, y1) = _padded_range(xs[:, 0], 0.5), _padded_range(xs[:, 1], 0.5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(title or f"{c.shape[1]} sampling chains, {c.shape[0] - 1} steps", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- the pictures `unsup train` draws, by the names models give in Model.pictures() ------------
# Each takes the model, test examples ``x`` with labels ``y`` (or None), the number ``n`` of
# examples a grid shows, and the path. ("samples" is drawn by the caller, which may stop a slow
# sampler at a deadline.)

def _picture_density(model: Any, x: torch.Tensor, y: torch.Tensor | None, n: int, path: Path) -> None:
    if model.spec.levels is not None:
        save_density(model, model.spec, x, path)
    else:
        save_density_continuous(model, x, path)


PICTURES: dict[str, Callable[[Any, torch.Tensor, torch.Tensor | None, int, Path], None]] = {
    "density": _picture_density,
    "latents": lambda model, x, y, n, path: save_latents(model, x, path, y),
    "reconstructions": lambda model, x, y, n, path: save_reconstructions(
        x[:min(n, 32)], model.reconstruct(x[:min(n, 32)].to(model.device)), model.spec, path),
    "interpolations": lambda model, x, y, n, path: save_interpolations(
        model, x[:16].to(model.device), path),
    "traversal": lambda model, x, y, n, path: save_traversal(model, x[:1000].to(model.device), path),
    "decoder-means": lambda model, x, y, n, path: save_decoder_means(model, x.to(model.device), path),
    "trajectories": lambda model, x, y, n, path: (torch.manual_seed(0), save_trajectories(
        model.trajectories(min(n, 64)), x, path))[1],
}
