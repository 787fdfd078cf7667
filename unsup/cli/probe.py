"""``unsup probe RUN``: how well a run's frozen features predict labels (linear, kNN and MLP
probes, against pixels, PCA, k-means and the untrained network; :mod:`unsup.probe`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from unsup.cli.options import HelpFormatter, parse_key_values, run_data_args, run_parent
from unsup.data import TensorDataset
from unsup.errors import ConfigError
from unsup.models import MODELS, config_for
from unsup.models import names as model_names
from unsup.train import load_run, select_device


def add_parser(sub: Any) -> None:
    pr = sub.add_parser("probe", parents=[run_parent()],
                       help="judge a run's frozen features with labels (linear, kNN, MLP)",
                        formatter_class=HelpFormatter, description="Fit linear, k-nearest-neighbour and MLP "
                        "classifiers on the frozen features of a run (a representation method's "
                        "encoder, a VAE's posterior mean, a flow's code, a VQ-VAE's encoder output, "
                        "a GAN's or EBM's discriminator features, a diffusion model's denoiser "
                        "features) and report their test accuracy "
                        "next to the same probes on pixels, PCA, k-means features and the untrained "
                        "network; with --finetune-steps also fine-tune the whole encoder on the "
                        "labels against the same network trained from scratch on the same labels. "
                        "Writes DIR/probe.json and DIR/probe-tsne.png.",
                        epilog="examples:\n  unsup probe runs/vae --labels 10%\n"
                        "  unsup probe runs/rotation --labels 1% --finetune-steps 1000\n"
                        "  unsup probe runs/rotation --probes linear,knn --no-baselines --json")
    pr.add_argument("run", metavar="RUN")
    pr.add_argument("--data", default=None, metavar="NAME",
                    help="labelled dataset, in the run's representation (default: the run's own); "
                    "another dataset of the same shape probes a transfer")
    pr.add_argument("--data-opt", action="append", default=None, metavar="KEY=VALUE",
                    help="option of --data's dataset, repeatable (e.g. size=28, channels=1 for "
                    "image-folder:PATH)")
    pr.add_argument("--labels", default="100%", metavar="P",
                    help="1%%, 10%% or 100%%: the class-stratified, seeded part of the training "
                    "labels the probes are fitted on (default: 100%%)")
    pr.add_argument("--probes", default="linear,knn,mlp", metavar="LIST",
                    help="which frozen-feature probes to fit (default: linear,knn,mlp)")
    pr.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                    help="also probe pixels, PCA, k-means features and the untrained network "
                    "(default: on; they depend only on the data, so a benchmark computes them once)")
    pr.add_argument("--finetune-steps", type=int, default=0, metavar="N",
                    help="also fine-tune the whole encoder + a linear layer for N Adam steps of 128 "
                    "labelled examples, from the run's weights and from scratch (default: 0, off)")
    pr.add_argument("--tsne", action=argparse.BooleanOptionalAction, default=True,
                    help="draw DIR/probe-tsne.png (default: on)")
    pr.add_argument("--out", default=None, metavar="DIR", help="output directory (default: RUN)")
    pr.add_argument("--json", action="store_true", help="print one JSON object")
    pr.add_argument("--seed", type=int, default=0, help="seed of the label subset and the probes")


def cmd_probe(args: argparse.Namespace) -> int:
    """``unsup probe RUN``: linear, kNN and MLP probes of a run's frozen features (:mod:`unsup.probe`)."""
    from unsup import probe

    fraction = probe.parse_labels(args.labels)
    probes = probe.parse_probes(args.probes)
    if args.finetune_steps < 0:
        raise ConfigError(f"--finetune-steps must be >= 0 (0: no fine-tuning), got {args.finetune_steps}")
    device = select_device(args.device)
    model, meta = load_run(args.run, args.checkpoint, device=device)
    if not model.encodes:
        family = ", ".join(n for n in model_names() if MODELS.get(n).encodes)
        raise ConfigError(f"probe needs a representation, a model whose representation(x) gives "
                          f"features ({family}); {meta['model']} has none")
    data = run_data_args(args, meta)
    if args.data_opt and args.data is None:
        raise ConfigError("--data-opt sets options of the dataset --data names; give --data too")
    if args.data is not None and (args.data != data.name or args.data_opt):
        data.name, data.options = args.data, parse_key_values(args.data_opt)
    splits = {s: data.load(s) for s in ("train", "val", "test")}
    for ds in splits.values():
        if not isinstance(ds, TensorDataset) or ds.y is None:
            raise ConfigError(f"probe needs labelled examples; {data.name} has no labels")
        if (ds.spec.shape, ds.spec.levels) != (model.spec.shape, model.spec.levels):
            raise ConfigError(f"{data.name} ({data.representation}) has examples "
                              f"{ds.spec.shape} with levels={ds.spec.levels}; the run's model takes "
                              f"{model.spec.shape} with levels={model.spec.levels}")
    torch.manual_seed(args.seed + 1)  # the untrained twin: same architecture, fresh weights
    untrained = MODELS.get(meta["model"])(model.spec, config_for(meta["model"], **meta["model_config"]))
    result = {"run": str(args.run), "model": meta["model"], "step": meta.get("step"),
              "data": data.name, "representation": data.representation,
              "labels": args.labels, "seed": args.seed}
    result.update(probe.probe(model, untrained.to(device).eval(), splits, fraction, args.seed,
                              baselines=args.baselines, finetune_steps=args.finetune_steps,
                              probes=probes))
    test_features = result.pop("_test_features")
    out = Path(args.out or args.run)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "probe.json"]
    if args.tsne:
        result["tsne_points"] = probe.save_tsne(
            test_features, splits["test"].y.numpy(), out / "probe-tsne.png", splits["test"].class_names,
            title=f"{meta['model']} features of {data.name} test examples", seed=args.seed)
        written.append(out / "probe-tsne.png")
    (out / "probe.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {' and '.join(map(str, written))}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{meta['model']} on {data.name}: test accuracy, probes fitted on "
              f"{args.labels} of the training labels ({result['labelled']} examples); "
              f"chance {100 * result['chance']:.1f}%")
        print(probe.format_table(result))
    return 0
