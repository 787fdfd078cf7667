"""Reproduce the figures in docs/results.md: each recipe is one `unsup train` command.

    python benchmarks/recipes.py --list
    python benchmarks/recipes.py pixelcnn-fashion-binary      # one recipe
    python benchmarks/recipes.py --all                        # every recipe, one after another
    python benchmarks/recipes.py --unrecorded --list          # those whose JSON has no commit yet

Each recipe trains under a fixed seed and a stated CPU budget into runs/bench/NAME, then copies
its test evaluation to benchmarks/results/NAME.json and its pictures to docs/figures/NAME-*.png.
Budgets are wall-clock (`--time`), so a faster machine reaches further; the step count reached is
recorded with every result. Recipes in ONE_CORE run with one thread (OMP_NUM_THREADS=1): their
budget is one CPU core, so two of them can run side by side on the 2-core machine, each pinned
to its own core (`taskset -c 0 python benchmarks/recipes.py A B` beside `taskset -c 1 ...`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pinned import git_commit, machine  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
# cifar10-jpeg is a local archive that unsup never looks for on its own: the project's copy sits in
# the shared/ folder beside the repository, and its recipes name it (relative to ROOT, where every
# command runs, so that the commands stored in benchmarks/results are the same on every machine).
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg"
CIFAR_DIR = ["--data-dir", os.path.relpath(SHARED_CIFAR, ROOT)]

DIGITS = ["--data", "digits", "--batch-size", "64", "--eval-every", "200"]
TOY = ["--batch-size", "256", "--eval-every", "200", "--samples", "5000"]

RECIPES: dict[str, list[str]] = {
    # CS294-158 HW1 PixelCNN on binarised Fashion-MNIST
    "pixelcnn-fashion-binary": ["pixelcnn", "--preset", "course", "--data", "fashion-mnist",
                                "--represent", "binary", "--batch-size", "128", "--time", "15m",
                                "--eval-every", "250", "--eval-batches", "10"],
    "made-digits-binary": ["made", *DIGITS, "--represent", "binary", "--time", "2m"],
    "made-digits-17": ["made", *DIGITS, "--time", "2m"],
    "pixelcnn-digits-binary": ["pixelcnn", *DIGITS, "--represent", "binary", "--time", "2m"],
    "pixelcnn-digits-17": ["pixelcnn", *DIGITS, "--time", "2m"],
    "histogram-toy-2d-image": ["histogram", "--data", "toy-2d-image", *TOY, "--time", "1m",
                               "--lr", "0.05"],
    "made-toy-2d-image": ["made", "--data", "toy-2d-image", *TOY, "--time", "1m"],
    "pixelcnn-toy-2d-image": ["pixelcnn", "--data", "toy-2d-image", *TOY, "--time", "1m"],
    "histogram-toy-1d-bimodal": ["histogram", "--data", "toy-1d-bimodal", *TOY, "--time", "30s",
                                 "--lr", "0.05"],
    "logistic-mixture-toy-1d-bimodal": ["logistic-mixture", "--data", "toy-1d-bimodal", *TOY,
                                        "--time", "30s", "--lr", "0.05"],
    "made-two-moons": ["made", "--data", "two-moons", "--represent", "levels:32", *TOY,
                       "--time", "1m"],
    "pixelcnn-two-moons": ["pixelcnn", "--data", "two-moons", "--represent", "levels:32", *TOY,
                           "--time", "1m"],
    "made-gaussian-grid": ["made", "--data", "gaussian-grid", "--represent", "levels:32", *TOY,
                           "--time", "1m"],
    "made-rings": ["made", "--data", "rings", "--represent", "levels:32", *TOY, "--time", "1m"],
}

# Issue #3: the course's comparison of autoregressive architectures on binarised 28 x 28 images,
# every model under the same budget: 8 minutes of one CPU core, batch 32, Adam 1e-3, seed 0.
# Sizes are each family's CPU default, except where one step of the default would take over a
# second on one core (LSTM and transformer over 784 pixels): those are narrowed.
ARCH = ["--data", "fashion-mnist", "--represent", "binary", "--batch-size", "32", "--time", "8m",
        "--eval-every", "250", "--eval-batches", "5", "--samples", "16"]
RECIPES.update({
    "arch-rnn": ["lstm", *ARCH, "--hidden", "128", "--num-layers", "1"],
    "arch-made": ["made", *ARCH],
    "arch-wavenet": ["wavenet", *ARCH, "--positions", "--num-stacks", "1"],
    "arch-pixelcnn": ["pixelcnn", *ARCH],
    "arch-gated-pixelcnn": ["gated-pixelcnn", *ARCH],
    "arch-transformer": ["transformer", *ARCH, "--d-model", "64", "--num-layers", "2"],
    # Gated PixelCNN against PixelCNN for longer, at an equal number of steps (not time):
    # 2,500 steps of batch 32 (80,000 images, 1.3 epochs) each.
    **{f"arch-long-{m}": [m, *ARCH[:ARCH.index("--time")], "--steps", "2500", "--eval-every", "500",
                          "--eval-batches", "20", "--samples", "16"]
       for m in ("pixelcnn", "gated-pixelcnn")},
    # PixelCNN++ on 8-bit Fashion-MNIST (256 levels), its CPU default size.
    "pixelcnn++-fashion": ["pixelcnn++", "--data", "fashion-mnist", "--batch-size", "32",
                           "--time", "20m", "--eval-every", "250", "--eval-batches", "5",
                           "--samples", "16"],
    # Character models on the bible (bytes, windows of 256), 10 minutes of one core each.
    **{f"{m}-bible": [m, "--data", "bible", "--batch-size", "32", "--time", "10m",
                      "--eval-every", "250", "--eval-batches", "10", "--samples", "4"]
       for m in ("transformer", "lstm", "bytenet")},
    # The fastest learner of the three at 10 minutes, given 40: does it pass the compressors?
    "bytenet-bible-long": ["bytenet", "--data", "bible", "--batch-size", "32", "--time", "40m",
                           "--eval-every", "500", "--eval-batches", "10", "--samples", "4"],
    # WaveNet on speech (8 voices, 250 ms clips), conditioned on the voice.
    "wavenet-speech": ["wavenet", "--data", "speech", "--data-opt", "length=4000", "--conditional",
                       "--batch-size", "8", "--time", "15m", "--eval-every", "250",
                       "--eval-batches", "10", "--samples", "8"],
    # Colour at k levels: independent channels vs R -> G -> B inside each pixel.
    **{f"pixelcnn-{data}-{dep}": ["pixelcnn", "--data", data, *rep, "--batch-size", "32",
                                  "--time", "6m", "--eval-every", "250", "--eval-batches", "5",
                                  "--samples", "16", "--channel-dependence", dep]
       for data, rep in (("colored-fashion-mnist", []),
                         ("cifar10-jpeg", [*CIFAR_DIR, "--represent", "levels:4"]))
       for dep in ("independent", "autoregressive")},
})
# Issue #4: flows on 8-bit Fashion-MNIST (uniform dequantisation, all terms counted), 15 minutes
# of one core each; the random-mask RealNVP is the ablation (a partition blind to space).
FLOW = ["--data", "fashion-mnist", "--batch-size", "32", "--time", "15m", "--eval-every", "250",
        "--eval-batches", "5", "--samples", "64"]
RECIPES.update({
    "realnvp-fashion": ["realnvp", *FLOW],
    "realnvp-fashion-random-mask": ["realnvp", *FLOW, "--mask", "random"],
    "glow-fashion": ["glow", *FLOW],
    "nice-fashion": ["nice", *FLOW],
    "flow++-fashion": ["flow++", *FLOW],
    # The course's low-dimensional flows, with density and latent-space plots (one core).
    "cdf-flow-toy-1d-bimodal": ["cdf-flow", "--data", "toy-1d-bimodal", *TOY, "--time", "30s",
                                "--lr", "0.01"],
    **{f"{m}-two-moons": [m, "--data", "two-moons", *TOY, "--time", "1m"]
       for m in ("ar-flow", "realnvp", "maf")},
})

# Issue #5: VQ-VAE (CPU default size) on 8-bit Fashion-MNIST and the JPEG copy of CIFAR-10, then
# an unconditional Gated PixelCNN prior over its code grids (the `vq-codes:` source), whose test
# result adds the bits/dim bound on the images. One core each; a prior recipe needs its VQ-VAE run.
VQ = ["--batch-size", "64", "--time", "12m", "--eval-every", "250", "--eval-batches", "5"]
VQ_PRIOR = ["gated-pixelcnn", "--batch-size", "64", "--time", "8m", "--eval-every", "250",
            "--eval-batches", "5", "--samples", "64"]
RECIPES.update({
    "vqvae-fashion": ["vqvae", "--data", "fashion-mnist", *VQ],
    "vqvae-prior-fashion": [*VQ_PRIOR, "--data", "vq-codes:runs/bench/vqvae-fashion"],
    "vqvae-cifar10-jpeg": ["vqvae", "--data", "cifar10-jpeg", *CIFAR_DIR, *VQ],
    "vqvae-prior-cifar10-jpeg": [*VQ_PRIOR, "--data", "vq-codes:runs/bench/vqvae-cifar10-jpeg"],
})

# Issue #5: the VAE family on binarised Fashion-MNIST (pixels thresholded at 1/2), every model
# under the same budget: 10 minutes of one core, batch 64, Adam 1e-3, seed 0, the CPU default size.
# Training scores test with a 100-sample importance estimate (the PixelVAE: 10); the honest NLL is then
# `unsup eval RUN --importance-samples 5000` (EVALS below) on the first test images: 2,000 for the
# MLP models, 100 for all four (the PixelVAE's decoder pass is a PixelCNN, ~10 s an image at 5000).
# The PixelVAE keeps 0.25 nats of KL per latent dimension (free bits): without them its KL -> 0.
VAE = ["--data", "fashion-mnist", "--represent", "binary", "--batch-size", "64", "--time", "10m",
       "--eval-every", "250", "--eval-batches", "5", "--samples", "64", "--eval-samples", "100"]
RECIPES.update({
    "vae-fashion-binary": ["vae", *VAE],
    "iwae-fashion-binary": ["iwae", *VAE],
    "vae-flow-prior-fashion-binary": ["vae-flow-prior", *VAE],
    "hvae-fashion-binary": ["hvae", *VAE],
    # the same with bottom-up inference q(z1 | x) q(z2 | z1): Bit-Swap's order of bits-back (#21)
    "hvae-bitswap-fashion-binary": ["hvae", *VAE, "--inference", "bottom-up"],
    "gumbel-vae-fashion-binary": ["gumbel-vae", *VAE],
    "pixelvae-fashion-binary": ["pixelvae", *VAE[:-2], "--eval-samples", "10", "--free-bits", "0.25"],
    # beta-VAE: the same VAE with the KL weighted by 4, for its latent traversals.
    "vae-beta4-fashion-binary": ["vae", *VAE, "--beta", "4"],
    # CS294-158 HW3: a 2-D Gaussian, axis-aligned (the decoder's own diagonal Gaussian can model
    # it alone: the posterior collapses, KL -> 0) against rotated (the latent must carry the
    # correlation). z is 2-D; the decoder-means picture shows what z carries.
    **{f"vae-gaussian-{c}": ["vae", "--data", f"gaussian-{c}", "--z-dim", "2", "--hidden", "64", "64",
                             *TOY[:-2], "--samples", "2000", "--time", "2m"] for c in ("diag", "full")},
})
# Issue #6: representation learning. Every method trains the same default backbone (conv, width 32,
# depth 4: 256 pooled features) for 4 minutes of one CPU core, batch 64, Adam 1e-3, seed 0, without
# labels (`supervised` uses all of them: the reference); ablations get 3 minutes. Each is then
# judged by `unsup probe` (PROBES below).
REP = ["--represent", "native", "--batch-size", "64", "--eval-every", "250", "--eval-batches", "5",
       "--samples", "0"]
REP_DATA = {"fashion": ["--data", "fashion-mnist"], "cifar": ["--data", "cifar10-jpeg", *CIFAR_DIR]}
CONTRASTIVE = ["simclr", "moco", "instance-discrimination", "cpc-image"]  # issue #7 (MoCo: v2, CPC: v1)
REP_METHODS = {
    "fashion": ["supervised", "autoencoder", "denoising-autoencoder", "stacked-dae", "hashing-autoencoder",
                "context-encoder", "rotation", "relative-patch", "jigsaw", *CONTRASTIVE],
    "cifar": ["supervised", "autoencoder", "denoising-autoencoder", "context-encoder", "colorization",
              "split-brain", "rotation", "relative-patch", "jigsaw", *CONTRASTIVE],
}
for _data, _methods in REP_METHODS.items():
    for _m in _methods:
        RECIPES[f"rep-{_m}-{_data}"] = [_m, *REP_DATA[_data], *REP, "--time", "4m"]
# denoising as a function of the noise level (masking noise; 0.25 is the main table's run). The
# lecture's rotation ablation (2 / 4 / 8 angles) is `benchmarks/seeded.py rotation-angles`, at 3 seeds.
for _level in ("0", "0.1", "0.5"):
    RECIPES[f"rep-dae{_level}-fashion"] = ["denoising-autoencoder", *REP_DATA["fashion"], *REP,
                                           "--time", "3m", "--noise-level", _level]
# the identity trap proper: an overcomplete MLP code (1024 > 784 pixels) can copy its input unless
# the input is corrupted
for _level in ("0", "0.25"):
    RECIPES[f"rep-dae-wide{_level}-fashion"] = ["denoising-autoencoder", *REP_DATA["fashion"], *REP,
                                                "--time", "3m", "--arch", "mlp", "--code-dim", "1024",
                                                "--noise-level", _level]
# autoencoders against PCA at the same code size (32): linear, plain (one hidden layer) and deep MLPs
for _name, _options in (("linear", ["--activation", "none"]), ("plain", []),
                        ("deep", ["--hidden", "512", "256"])):
    RECIPES[f"rep-ae-{_name}32-fashion"] = ["autoencoder", *REP_DATA["fashion"], *REP, "--time", "3m",
                                            "--arch", "mlp", "--code-dim", "32", *_options]
# CPC v2's changes together: layer norm, patch augmentation (crop + flip), bottom-up predictions;
# lr 3e-4: with layer norm, Adam at 1e-3 leaves the loss at chance (measured: 80 steps on CIFAR,
# 7.34 = log of the candidates, against 3.5 at 3e-4)
for _data in REP_DATA:
    RECIPES[f"rep-cpc-v2-{_data}"] = ["cpc-image", *REP_DATA[_data], *REP, "--time", "4m", "--norm", "layer",
                                      "--patch-augment", "crop", "--directions", "down,up", "--lr", "3e-4"]
# MoCo: probe accuracy against the number of negatives (queue size K) at the same batch of 64
for _k in (256, 1024, 4096, 16384):
    RECIPES[f"rep-moco-q{_k}-fashion"] = ["moco", *REP_DATA["fashion"], *REP, "--time", "3m",
                                          "--queue", str(_k)]
# sparse coding and PSD on flattened Fashion-MNIST images in [0, 1] (they model continuous vectors)
for _m in ("sparse-coding", "psd"):
    RECIPES[f"rep-{_m}-fashion"] = [_m, *REP_DATA["fashion"], "--represent", "float", *REP[2:],
                                    "--time", "3m"]
REP_RECIPES = [n for n in RECIPES if n.startswith("rep-")]
# Issue #7: word2vec on the bible's words (vocabulary: words seen 5 times in the training split),
# 10 minutes of one core, windows of 2 x 5 + 1 words, 1024 windows a step; then `unsup words`
# answers a fixed list of queries (WORDS), stored under "words" in the result.
for _arch in ("skipgram", "cbow"):
    RECIPES[f"word2vec-{_arch}"] = ["word2vec", "--data", "bible-words", "--arch", _arch,
                                    "--batch-size", "1024", "--lr", "3e-3", "--time", "10m",
                                    "--eval-every", "500", "--eval-batches", "20", "--samples", "0"]
# Issue #7: CPC on raw speech (8 espeak-ng voices reading 200 bible sentences: 4,442 one-second
# training clips), batch 16, negatives from all clips, from clips of the same speaker, or from the
# same clip; 30 minutes of one thread each, the three run together on the 2 cores (so each had
# about 20 minutes of a core); the speaker-ID probes below.
for _mode in ("all", "speaker", "clip"):
    RECIPES[f"cpc-audio-{_mode}"] = ["cpc-audio", "--data", "speech", "--data-opt", "sentences=200",
                                     "--batch-size", "16", "--eval-every", "200", "--eval-batches", "0",
                                     "--samples", "16", "--time", "30m", "--negatives", _mode]
WORD_QUERIES = ("god,lord,king,jesus,israel,egypt,david,water,bread,wine,gold,sword,father,son,love,"
                "sin,heaven,fire,sheep,city")
WORD_ANALOGIES = ("man:woman::king", "father:mother::son", "egypt:pharaoh::babylon",
                  "abraham:isaac::isaac", "gold:silver::brass")
WORDS = {name: ["--neighbours", WORD_QUERIES, "--k", "8",
                *(a for q in WORD_ANALOGIES for a in ("--analogy", q))]
         for name in RECIPES if name.startswith("word2vec-")}

# `unsup probe` runs after training, each stored under "probe": (label, options). Frozen features of
# every method get the linear and kNN probes fitted on 10 % of the training labels (class-stratified,
# seed 0); the data-only baselines (pixels, PCA, k-means, the untrained backbone) are computed once
# per dataset, beside the supervised run.
PROBE_10 = ["--labels", "10%", "--probes", "linear,knn", "--no-tsne"]
PROBES = {name: [("10%", [*PROBE_10, "--no-baselines"])] for name in REP_RECIPES}
for _data in REP_DATA:
    PROBES[f"rep-supervised-{_data}"] = [("10%", PROBE_10)]
PROBES["rep-ae-plain32-fashion"] = [("10%", PROBE_10)]  # its PCA baseline has the code's 32 dimensions
# Speaker identification from CPC features: linear and kNN probes on 10 % and 100 % of the labels;
# the baselines (MFCC statistics, raw samples, PCA, k-means, the untrained network) once, beside
# the run with mixed negatives, which also draws the t-SNE of its features.
SPEAKER = ["--probes", "linear,knn"]
for _mode in ("all", "speaker", "clip"):
    PROBES[f"cpc-audio-{_mode}"] = [(p, ["--labels", p, *SPEAKER, "--no-tsne", "--no-baselines"])
                                    for p in ("10%", "100%")]
PROBES["cpc-audio-all"] = [("10%", ["--labels", "10%", *SPEAKER, "--no-tsne"]),
                           ("100%", ["--labels", "100%", *SPEAKER])]
# Label efficiency: the whole encoder fine-tuned on 1 % / 10 % / 100 % of the labels (500 Adam steps of 128)
# against the same backbone trained from scratch on the same labels.
FINETUNE = [(f"finetune-{p}", ["--labels", f"{p}%", "--probes", "linear", "--no-baselines", "--no-tsne",
                               "--finetune-steps", "500"]) for p in (1, 10, 100)]
for _name in ("rep-rotation-fashion", "rep-autoencoder-fashion", "rep-simclr-fashion", "rep-moco-fashion"):
    PROBES[_name] = PROBES[_name] + FINETUNE

# Issue #20: diffusion on 8-bit Fashion-MNIST (the bound counts every term, discretised decoder),
# 60 minutes of one core, batch 64, EMA 0.999 for sampling and scoring, the CPU default U-Net.
DIFFUSION = ["--data", "fashion-mnist", "--batch-size", "64", "--time", "60m", "--ema", "0.999",
             "--eval-every", "500", "--eval-batches", "4", "--samples", "64", "--eval-time", "5m"]
# The DDPM recipes of Fashion-MNIST, its latents and the digits predict v (the default); each has
# an "-eps" twin predicting eps. The twins' JSONs were recorded while eps was the default, so their
# commands have no --prediction and name the run directory without "-eps". The two-moons pair
# shows why v became the default.
RECIPES.update({
    "ddpm-fashion": ["ddpm", *DIFFUSION],
    # validation by an 8-step RK4 solve with the Hutchinson estimator: two batches (~40 s)
    "flow-matching-fashion": ["flow-matching", *DIFFUSION[:DIFFUSION.index("--eval-batches")],
                              "--eval-batches", "2", *DIFFUSION[DIFFUSION.index("--samples"):]],
    # latent diffusion at the budget of the pixel DDPM's first 2,000 steps (32 minutes; the learning
    # rate is constant, so its step-2,000 checkpoint is a 2,000-step run): a convolutional VAE
    # (8-bit, discretised logistic decoder, 32-d code) for 10 minutes, then a DDPM on its codes
    # for 22 (the MLP denoiser of vectors, 4 x 256 units, 1000 steps); scored as decoded images
    "vae-fashion-8bit": ["vae", "--data", "fashion-mnist", "--arch", "conv", "--batch-size", "64",
                         "--time", "10m", "--eval-every", "500", "--eval-batches", "5", "--samples", "64",
                         "--eval-samples", "100", "--eval-time", "2m"],
    "ddpm-fashion-latent": ["ddpm", "--data", "vae-latents:runs/bench/vae-fashion-8bit", "--hidden", "256",
                            "--batch-size", "256", "--time", "22m", "--ema", "0.999", "--eval-every", "1000",
                            "--eval-batches", "4", "--samples", "64", "--eval-time", "2m"],
    # classifier-free guidance on the 8 x 8 digits: labels dropped 10 % of the time, 3,000 steps
    "ddpm-digits-conditional": ["ddpm", "--data", "digits", "--conditional", "--batch-size", "64",
                                "--steps", "3000", "--ema", "0.999", "--eval-every", "1000",
                                "--samples", "64", "--bound-steps", "0"],
    # the course's 2-D toys (cosine schedule, an MLP of 4 x 64 units), 5,000 steps each
    **{f"{m}-two-moons": [m, "--data", "two-moons", *TOY[:-2], "--samples", "2000", "--steps", "5000",
                          *(["--bound-steps", "0", "--prediction", "eps"] if m == "ddpm" else [])]
       for m in ("ddpm", "flow-matching", "ncsn")},
    # the same DDPM predicting v: at the cosine schedule's last step (beta clipped at 0.999) an
    # eps-prediction's error reaches x0 multiplied by sqrt(abar_{T-1} / abar_T) ~ 32, v's does not
    "ddpm-two-moons-v": ["ddpm", "--data", "two-moons", *TOY[:-2], "--samples", "2000", "--steps", "5000",
                         "--bound-steps", "0", "--prediction", "v"],
    # reflow: the same flow trained again on 10,000 (noise, sample) pairs of the first (25 Heun steps)
    "flow-matching-two-moons-reflow": ["flow-matching", "--data", "reflow:runs/bench/flow-matching-two-moons",
                                       *TOY[:-2], "--samples", "2000", "--steps", "5000"],
})
for _name in ("ddpm-fashion", "ddpm-fashion-latent", "ddpm-digits-conditional"):
    RECIPES[f"{_name}-eps"] = [*RECIPES[_name], "--prediction", "eps"]
# improved DDPM's learned variances (the hybrid loss, lambda 0.001) at the same budget
RECIPES["ddpm-fashion-learned"] = [*RECIPES["ddpm-fashion"], "--variance", "learned"]

# Issue #21: background models of `unsup ood`'s likelihood ratio (Ren et al. 2019, docs/ood.md): the
# family and configuration of the in-distribution run (the Gated PixelCNN of results §12, glow-fashion,
# vae-fashion-8bit), trained on Fashion-MNIST whose training images have each pixel replaced by a
# uniform random level with probability mu (--data-opt mutate=MU); two candidate rates per family,
# 6 minutes of one core each (the runs they serve had 12, 15 and 10). `unsup ood` picks the rate on
# in-distribution data only; benchmarks/ood.py runs it.
OOD_BACKGROUND = {
    "gated": ["gated-pixelcnn", "--data", "fashion-mnist", "--batch-size", "32", "--eval-every", "250",
              "--eval-batches", "5", "--samples", "16"],
    "glow": ["glow", "--data", "fashion-mnist", "--batch-size", "32", "--eval-every", "250",
             "--eval-batches", "5", "--samples", "16"],
    "vae": ["vae", "--data", "fashion-mnist", "--arch", "conv", "--batch-size", "64", "--eval-every", "500",
            "--eval-batches", "5", "--samples", "16", "--eval-samples", "100"],
}
RECIPES.update({f"ood-bg-{family}-fashion-mu{mu}": [*options, "--data-opt", f"mutate={mu}", "--time", "6m",
                                                     "--eval-time", "1m"]
                for family, options in OOD_BACKGROUND.items() for mu in ("0.1", "0.3")})
# the control: the Gated PixelCNN's background recipe on clean images (mutate=0), to tell what the
# likelihood ratio owes to the mutation from what it owes to a shorter-trained denominator
RECIPES["ood-bg-gated-fashion-mu0"] = [*OOD_BACKGROUND["gated"], "--data-opt", "mutate=0", "--time", "6m",
                                       "--eval-time", "1m"]

# `unsup eval` runs after training, each stored under "importance" in the recipe's result:
# (label, options). The chain K = 1 (the ELBO's estimate), 10, 100, 5000 on the same examples
# shows the bounds' order with their standard errors.
CHAIN = [(f"K{k}-N2000", ["--importance-samples", str(k), "--examples", "2000"]) for k in (1, 10, 100, 5000)]
COMMON = [("K5000-N100", ["--importance-samples", "5000", "--examples", "100"])]
EVALS = {"vae-fashion-binary": CHAIN + COMMON, "iwae-fashion-binary": CHAIN + COMMON,
         **{name: [CHAIN[0], CHAIN[-1], *COMMON] for name in (
             "vae-flow-prior-fashion-binary", "hvae-fashion-binary", "hvae-bitswap-fashion-binary",
             "gumbel-vae-fashion-binary")},
         "pixelvae-fashion-binary": [CHAIN[1], *COMMON],
         # the bound estimated from 100 of its 999 KL terms (one per stratum) on 1,000 test images
         "ddpm-fashion": [("bound100-N1000", ["--examples", "1000"])],
         # two estimates (dopri5, tolerance 1e-4, one Hutchinson probe each) on 200 test images
         "flow-matching-fashion": [("ode-N200", ["--examples", "200"])],
         # the decoded samples' quality (the code bound on the first 100 test images comes along)
         "ddpm-fashion-latent": [("quality-N300", ["--examples", "100", "--sample-quality", "300"])]}
EVALS.update({f"{name}-eps": EVALS[name] for name in ("ddpm-fashion", "ddpm-fashion-latent")},
             **{"ddpm-fashion-learned": EVALS["ddpm-fashion"]})

# Sequence data has no picture: these recipes also write samples with `unsup sample` (a WAV file
# of generated speech -- one second each, four times the training clips --, decoded text),
# copied to docs/figures beside the pictures.
SAMPLES = {"wavenet-speech": ("samples.wav", ["--n", "8", "--length", "16000"]),
           **{name: ("samples.txt", ["--n", "4"]) for name in RECIPES if "-bible" in name}}
ONE_CORE_PREFIXES = ("arch-", "realnvp-", "glow-", "nice-", "flow++-", "maf-", "ar-flow-", "cdf-flow-",
                     "vqvae-", "vae-", "iwae-", "pixelvae-", "hvae-", "gumbel-vae-", "ddpm-",
                     "flow-matching-", "ncsn-", "ood-bg-")
ONE_CORE = {name for name in RECIPES if name.startswith(ONE_CORE_PREFIXES)} | {*REP_RECIPES, *WORDS,
    "pixelcnn++-fashion", "wavenet-speech", *(n for n in RECIPES if "-bible" in n),
    *(n for n in RECIPES if n.startswith(("pixelcnn-colored", "pixelcnn-cifar10-jpeg", "cpc-audio-")))}


def command(name: str) -> list[str]:
    prefix = ["OMP_NUM_THREADS=1"] if name in ONE_CORE else []
    return [*prefix, "unsup", "train", *RECIPES[name], "--seed", "0", "--out", f"runs/bench/{name}"]


def run_evals(name: str, result: dict, env: dict) -> None:
    """The recipe's `unsup eval` (EVALS) and `unsup probe` (PROBES) commands missing from
    ``result["importance"]`` / ``result["probe"]``."""
    for command_name, table, key in (("eval", EVALS, "importance"), ("probe", PROBES, "probe")):
        for label, options in table.get(name, []):
            if label in result.get(key, {}):
                continue
            done = subprocess.run([sys.executable, "-m", "unsup.cli", command_name, f"runs/bench/{name}",
                                   *options, "--seed", "0", "--json"], check=True, cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            result.setdefault(key, {})[label] = json.loads(done.stdout.strip().splitlines()[-1])
            result[key][label]["command"] = " ".join(["unsup", command_name, f"runs/bench/{name}", *options,
                                                      "--seed", "0", "--json"])
            print(f"{name} {command_name} {label}: {result[key][label]}", flush=True)


def evals_only(name: str) -> None:
    """Add the missing EVALS of a finished recipe (its run directory and result must exist)."""
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    if not path.exists() or not (ROOT / "runs" / "bench" / name).exists():
        sys.exit(f"{name}: no result or run directory; run `python benchmarks/recipes.py {name}` first")
    result = json.loads(path.read_text())
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if name in ONE_CORE else {})}
    run_evals(name, result, env)
    path.write_text(json.dumps(result, indent=2) + "\n")


def validation_history(run: Path) -> dict[str, list[list[float]]]:
    """The run's validation curve from its metrics.csv: {metric: [[step, value], ...]}."""
    history: dict[str, list[list[float]]] = {}
    path = run / "metrics.csv"
    if path.exists():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row["split"] == "val":
                    history.setdefault(row["metric"], []).append([int(row["step"]), float(row["value"])])
    return history


def history_only(name: str) -> None:
    """Add the validation curve to the result of a finished recipe whose run directory still exists
    (results written before the recipes recorded it)."""
    path, out = ROOT / "benchmarks" / "results" / f"{name}.json", ROOT / "runs" / "bench" / name
    result = json.loads(path.read_text()) if path.exists() else {}
    if result.get("command") != " ".join(command(name)) or not (out / "metrics.csv").exists():
        sys.exit(f"{name}: no result of this recipe's command, or no run directory beside it")
    result["validation"] = validation_history(out)
    path.write_text(json.dumps(result, indent=2) + "\n")


def recorded(name: str) -> bool:
    """Whether recipe ``name`` has a result JSON that records the commit it was made at."""
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    return path.exists() and bool(json.loads(path.read_text()).get("git_commit"))


def parameters(run: Path) -> int:
    """The trained model's parameter count (every tensor its optimisers update or could)."""
    sys.path.insert(0, str(ROOT))
    from unsup.train.runs import load_run

    model, _ = load_run(run, "best")
    return sum(p.numel() for p in model.parameters())


def run(name: str) -> dict:
    out = ROOT / "runs" / "bench" / name
    if out.exists():
        shutil.rmtree(out)
    cmd = command(name)
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if name in ONE_CORE else {})}
    # the commit and load as the run starts: HEAD may move while a long recipe runs
    t0, commit = time.time(), git_commit()
    started = machine(1 if name in ONE_CORE else os.cpu_count())
    subprocess.run([sys.executable, "-m", "unsup.cli", *cmd[cmd.index("train"):]], check=True,
                   cwd=ROOT, env=env)
    if name in SAMPLES:
        file, options = SAMPLES[name]
        subprocess.run([sys.executable, "-m", "unsup.cli", "sample", str(out), *options,
                        "--seed", "0", "--out", str(out / file)], check=True, cwd=ROOT, env=env)
    result = json.loads((out / "test.json").read_text())
    run_evals(name, result, env)
    if name in WORDS:
        done = subprocess.run([sys.executable, "-m", "unsup.cli", "words", str(out), *WORDS[name], "--json"],
                              check=True, cwd=ROOT, env=env, capture_output=True, text=True)
        result["words"] = json.loads(done.stdout.strip().splitlines()[-1])
        result["words"]["command"] = " ".join(["unsup", "words", f"runs/bench/{name}", *WORDS[name]])
    # what made it first (command, commit, threads), then the run's own figures
    result = {"command": " ".join(cmd), "git_commit": commit, **started, **result,
              "parameters": parameters(out), "train": json.loads((out / "train.json").read_text()),
              "validation": validation_history(out),
              "wall_seconds": round(time.time() - t0, 1)}
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (ROOT / "docs" / "figures").mkdir(exist_ok=True)
    for picture in [*out.glob("*.png"), *out.glob("samples.wav"), *out.glob("samples.txt")]:
        shutil.copy(picture, ROOT / "docs" / "figures" / f"{name}-{picture.name}")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="recipes to run")
    p.add_argument("--all", action="store_true", help="run every recipe")
    p.add_argument("--list", action="store_true", help="print the recipes and their commands")
    p.add_argument("--unrecorded", action="store_true",
                   help="only the recipes whose result JSON records no git commit (written before the "
                        "recipes recorded it): with --list, their names; else, run them")
    p.add_argument("--evals-only", action="store_true",
                   help="only add the `unsup eval` results (EVALS) a finished recipe is missing")
    p.add_argument("--history-only", action="store_true",
                   help="only add the validation curve (from runs/bench/NAME/metrics.csv) to a finished "
                        "recipe's result")
    args = p.parse_args()
    if args.unrecorded:
        names = [n for n in RECIPES if not recorded(n)]
        if args.list:
            print(*names, sep="\n")
            return
    elif args.list or not (args.names or args.all):
        for name in RECIPES:
            print(f"{name}: {' '.join(command(name))}")
        return
    else:
        names = list(RECIPES) if args.all else args.names
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        p.error(f"unknown recipe(s) {', '.join(unknown)}; see --list")
    if args.evals_only or args.history_only:
        for name in names:
            (evals_only if args.evals_only else history_only)(name)
        return
    for name in names:
        r = run(name)
        score = (f"{r['bpd']:.4f} bits/dim ({r['nll_nats']:.3f} nats/example)" if "bpd" in r else
                 ", ".join(f"{k} {v:.4g}" for k, v in r.items() if isinstance(v, float)))
        print(f"{name}: test {score} after {r['train']['steps']} steps", flush=True)


if __name__ == "__main__":
    main()
