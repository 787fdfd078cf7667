"""The pictures ``unsup train`` leaves in a run directory, as the model declares them
(:meth:`~unsup.models.base.Model.pictures`, ``illustrations``, ``charts``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

SAMPLE_CHUNK = 8  # samples drawn at once when a deadline may stop the drawing (a row of the grid)


def sample_until(model, n: int, deadline: float | None) -> torch.Tensor:
    """``model.sample(n)``; with a ``deadline`` (a ``time.perf_counter()`` value) in rows of
    :data:`SAMPLE_CHUNK`, stopping after the row that passes it. Class-conditional models, whose
    grid has one class per column, draw all ``n`` at once."""
    if deadline is None or model.num_classes is not None or n <= SAMPLE_CHUNK:
        return model.sample(n)
    rows = []
    for start in range(0, n, SAMPLE_CHUNK):
        rows.append(model.sample(min(SAMPLE_CHUNK, n - start)))
        if time.perf_counter() >= deadline:
            break
    return torch.cat(rows)


def write_pictures(model, out_dir: Path, n: int, test_x: torch.Tensor | None,
                   test_y: torch.Tensor | None = None, deadline: float | None = None) -> list[Path]:
    """Draw what ``model`` declares from test examples into ``out_dir``; the paths written."""
    from unsup.plots import PICTURES, save_chart, save_rows, save_samples

    if n <= 0:
        return []
    written: list[Path] = []
    for kind in model.pictures():
        path = out_dir / f"{kind}.png"
        if kind == "samples":
            torch.manual_seed(0)
            t0 = time.perf_counter()
            print(f"sampling {n} examples for {path} (--samples 0 skips it)...", file=sys.stderr,
                  flush=True)
            x = sample_until(model, n, deadline)  # conditional models: one class per column
            print(f"sampled {len(x)} in {time.perf_counter() - t0:.1f} s"
                  + (f" (--eval-time ran out after {len(x)} of {n})" if len(x) < n else ""),
                  file=sys.stderr)
            save_samples(x, model.spec, path)
        elif test_x is not None:
            PICTURES[kind](model, test_x, test_y, n, path)
        else:
            continue
        written.append(path)
    if test_x is None:
        return written
    torch.manual_seed(0)  # masks and crops drawn for the picture
    for name, rows in model.illustrations(test_x[:min(n, 16)]).items():
        save_rows(rows, out_dir / f"{name}.png")
        written.append(out_dir / f"{name}.png")
    torch.manual_seed(0)
    pick = torch.linspace(0, len(test_x) - 1, min(len(test_x), 64)).long()  # spread over the split
    for name, chart in model.charts(test_x[pick], None if test_y is None else test_y[pick]).items():
        save_chart(chart, out_dir / f"{name}.png")
        written.append(out_dir / f"{name}.png")
    return written
