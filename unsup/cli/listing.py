"""``unsup list``: the models, datasets and representations, one line each."""

from __future__ import annotations

import argparse
from typing import Any

from unsup import data
from unsup.models import MODELS


def add_parser(sub: Any) -> None:
    sub.add_parser("list", help="models and datasets, one line each")


def cmd_list(args: argparse.Namespace) -> int:
    print("models:")
    for e in MODELS:
        presets = e.meta["presets"]
        extra = f" [presets: {', '.join(presets)}]" if presets else ""
        print(f"  {e.name:<20} {e.summary}{extra}")
    print("datasets:")
    for e in data.DATASETS:
        print(f"  {e.name:<20} {e.summary}")
    print("representations: " + ", ".join(data.REPRESENTATIONS))
    return 0
