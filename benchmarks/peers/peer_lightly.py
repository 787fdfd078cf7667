"""The peer side of the contrastive pairs on 8-bit Fashion-MNIST: SimCLR and MoCo v2 as lightly's
own examples write them -- its view transforms (``SimCLRTransform`` / ``MoCoV2Transform`` on PIL
images, through a torch ``DataLoader``), projection heads (``SimCLRProjectionHead`` /
``MoCoProjectionHead``), ``NTXentLoss`` (MoCo: with a memory bank of 4096 keys) and momentum update
(``update_momentum``) -- around the backbone unsup uses by default (4 conv-BN-ReLU stages of 32, 64,
128, 256 channels, strides 1, 2, 2, 2, global average pooling), with unsup's head sizes (256
hidden, 128 out), temperatures (0.5 / 0.2) and augmentation strengths; Adam, batch 64, lr 1e-3.
Trains for a wall-clock budget or a fixed number of steps, then reports the accuracy of the shared
linear probe (``common.linear_probe``) on the frozen pooled features.

Runs in the vision venv (torchvision, lightly); prints and writes one JSON object (``--out``).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    TimeBudget,
    linear_probe,
    load_split,
    run_arguments,
    versions,
    write_json,
)


def backbone(width: int = 32, depth: int = 4) -> nn.Sequential:
    """unsup's default ``conv`` backbone (architecture only): conv3x3-BN-ReLU stages, then the mean."""
    layers: list[nn.Module] = []
    c = 1
    for i in range(depth):
        w = width * 2 ** min(i, 3)
        layers += [nn.Conv2d(c, w, 3, 1 if i == 0 else 2, 1, bias=False), nn.BatchNorm2d(w),
                   nn.ReLU(inplace=True)]
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


class Images(torch.utils.data.Dataset):
    """uint8 images as PIL greyscale images through a lightly transform (two views)."""

    def __init__(self, x: torch.Tensor, transform) -> None:
        from PIL import Image

        self.images = [Image.fromarray(a[0].numpy(), mode="L") for a in x]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=["simclr", "moco"])
    run_arguments(ap)
    ap.add_argument("--test-limit", type=int, help="probe: test on the first N test images only")
    ap.add_argument("--probe-train", type=int, default=10000, help="probe: fit on the first N train images")
    args = ap.parse_args()

    from lightly.loss import NTXentLoss
    from lightly.models.modules import MoCoProjectionHead, SimCLRProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms import MoCoV2Transform, SimCLRTransform

    torch.manual_seed(args.seed)
    x_train, _ = load_split("uint8", "train")
    net = backbone()
    if args.model == "simclr":
        head = SimCLRProjectionHead(256, 256, 128)
        transform = SimCLRTransform(input_size=28, cj_strength=0.5, min_scale=0.08, normalize=None)
        criterion = NTXentLoss(temperature=0.5)
    else:
        head = MoCoProjectionHead(256, 256, 128)
        transform = MoCoV2Transform(input_size=28, normalize=None)
        criterion = NTXentLoss(temperature=0.2, memory_bank_size=(4096, 128))
    model = nn.Sequential(net, head)
    key = None
    if args.model == "moco":
        key = copy.deepcopy(model)
        deactivate_requires_grad(key)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = torch.utils.data.DataLoader(Images(x_train, transform), batch_size=args.batch_size, shuffle=True,
                                         drop_last=True, num_workers=0,
                                         generator=torch.Generator().manual_seed(args.seed))
    budget = TimeBudget(args.budget, args.steps)
    model.train()
    while not budget.spent():
        for x0, x1 in loader:
            if args.model == "simclr":
                loss = criterion(model(x0), model(x1))
            else:
                update_momentum(model, key, m=0.99)
                with torch.no_grad():
                    k = key(x1)
                loss = criterion(model(x0), k)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            budget.step(len(x0))
            if budget.spent():
                break
    result = {"library": "lightly", "model": args.model,
              "parameters": sum(p.numel() for p in model.parameters()),
              "batch_size": args.batch_size, "optimizer": f"Adam(lr={args.lr})",
              "versions": versions("lightly", "torchvision"), **budget.report(),
              "last_train_loss": loss.item()}
    if args.steps is None:
        net.eval()

        @torch.no_grad()
        def features(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([net(x[i:i + 512].float() / 255) for i in range(0, len(x), 512)])

        t0 = time.process_time()
        result["test"] = linear_probe(features, "uint8", args.test_limit, args.probe_train)
        result["test"]["cpu_seconds"] = time.process_time() - t0
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
