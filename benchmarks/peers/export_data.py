"""Export unsup's own Fashion-MNIST split to .npy files, so that the peer libraries (run in their
own virtual environments, without unsup) train and are scored on exactly the examples unsup uses.

Written with unsup's loader (``unsup.data.load``): train/val is unsup's seeded split of the 60k
training images (``--val-fraction 0.1``, seed 0: 54,000 / 6,000), test is the 10,000 test images;
``binary`` is ``x/255 > 0.5`` and ``uint8`` the raw levels. Files (uint8 images ``(N, 1, 28, 28)``,
int64 labels) go to ``$UNSUP_PEERS_DATA`` (default ``~/.cache/unsup-peers/data``) with a
``manifest.json`` of sizes and SHA-256 digests.

    python benchmarks/peers/export_data.py [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATASET, data_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", help="where the Fashion-MNIST IDX files are (default: $UNSUP_DATA, "
                    "then unsup's usual places)")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0, help="seed of unsup's train/val split")
    args = ap.parse_args()

    import unsup.data

    out = data_dir()
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"dataset": DATASET, "val_fraction": args.val_fraction, "seed": args.seed, "files": {}}
    for split in ("train", "val", "test"):
        for rep in ("binary", "uint8"):
            ds = unsup.data.load(DATASET, split, rep, root=args.data_dir, val_fraction=args.val_fraction,
                                 seed=args.seed)
            x = ds.x.numpy().astype(np.uint8)
            if rep == "binary":
                assert set(np.unique(x)) <= {0, 1}, "binary representation is not 0/1"
            path = out / f"{DATASET}-{rep}-{split}.npy"
            np.save(path, x)
            manifest["files"][path.name] = {"shape": list(x.shape),
                                            "sha256": hashlib.sha256(x.tobytes()).hexdigest()}
        y = ds.y.numpy().astype(np.int64)
        path = out / f"{DATASET}-labels-{split}.npy"
        np.save(path, y)
        manifest["files"][path.name] = {"shape": list(y.shape),
                                        "sha256": hashlib.sha256(y.tobytes()).hexdigest()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for name, f in manifest["files"].items():
        print(f"{out / name}: {tuple(f['shape'])}")


if __name__ == "__main__":
    main()
