"""``unsup ood`` and :mod:`unsup.ood`: the metrics against hand-computed values, each score's
direction, the conversion of outlier sets, the typicality statistic, the mutation option, the
noise-rate rule, and the command end to end on tiny runs."""

import json
import math

import numpy as np
import pytest
import torch
from cli_helpers import run

import unsup
from unsup.data import DataSpec
from unsup.data.mutate import MutatedDataset, mutate
from unsup.errors import ConfigError, DataError
from unsup.ood import convert, load_outlier_set, ood_metrics, ood_report
from unsup.ood.complexity import code_lengths_bits, complexity_score
from unsup.ood.likelihood import choose_background, likelihood_ratio_score, nll_bits_per_dim, smoothed
from unsup.ood.sets import parse_outlier, synthetic
from unsup.ood.typicality import batch_indices, typicality_scores

FASHION = DataSpec((1, 28, 28), 256, 10)
TINY = ["--no-test", "--samples", "0", "--no-progress", "--no-tensorboard"]
PIXELCNN = ["pixelcnn", "--data", "digits", "--steps", "15", "--hidden", "8", "--num-layers", "2", *TINY]


# -- metrics: outliers positive, higher = more outlying ------------------------------------------

def test_perfect_separation_has_auroc_1_aupr_1_and_no_false_positives():
    m = ood_metrics(np.array([0.0, 1.0, 2.0]), np.array([5.0, 6.0]))
    assert (m["auroc"], m["aupr"], m["fpr95"], m["n_in"], m["n_out"]) == (1.0, 1.0, 0.0, 3, 2)


def test_a_score_the_wrong_way_round_has_auroc_0_and_flags_every_inlier():
    m = ood_metrics(np.array([5.0, 6.0]), np.array([0.0, 1.0, 2.0]))
    assert m["auroc"] == 0.0 and m["fpr95"] == 1.0


def test_metrics_match_hand_computed_values():
    inliers, outliers = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.5, 2.5, 3.5, 4.0])
    m = ood_metrics(inliers, outliers)
    assert m["auroc"] == pytest.approx(13 / 16)  # pairs (outlier > inlier): 2 + 3 + 4 + 4 of 16
    # ranked 4o 3.5o 3i 2.5o 2i 1.5o ...: precision at each outlier 1, 1, 3/4, 4/6
    assert m["aupr"] == pytest.approx((1 + 1 + 3 / 4 + 4 / 6) / 4)
    assert m["fpr95"] == 0.5  # catching all four outliers (>= 1.5) flags inliers 2 and 3
    assert ood_metrics(np.array([1.0]), np.array([1.0]))["auroc"] == 0.5  # a tie counts one half


def test_an_infinite_score_counts_as_most_outlying():
    m = ood_metrics(np.array([0.0, 1.0]), np.array([np.inf, np.nan]))
    assert m["auroc"] == 1.0 and m["nonfinite"] == 2


# -- scores and their directions ----------------------------------------------------------------

class ConstantBits(torch.nn.Module):
    """A stand-in likelihood model: log p(x) = -(mean of x) bits per dimension."""

    spec = DataSpec((1, 2, 2), 8)

    @property
    def device(self):
        return torch.device("cpu")

    def log_prob(self, x):
        return -x.float().flatten(1).mean(1) * 4 * math.log(2)


def test_likelihood_score_is_the_nll_in_bits_per_dim():
    x = torch.tensor([0, 2, 5]).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    nll = nll_bits_per_dim(ConstantBits(), x, batch_size=2)
    assert nll == pytest.approx([0.0, 2.0, 5.0])  # less likely = higher score


def test_likelihood_ratio_and_complexity_subtract_what_the_reference_explains():
    nll, background = np.array([3.0, 3.0]), np.array([2.0, 2.9])
    # the same likelihood, but the background explains less of the second input: more outlying
    assert likelihood_ratio_score(nll, background) == pytest.approx([1.0, 0.1])
    assert complexity_score(nll, np.array([784.0 * 5, 784.0 * 2]), 784) == pytest.approx([-2.0, 1.0])


def test_a_real_codec_codes_a_constant_image_shorter_than_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.stack([torch.full((1, 28, 28), 77), torch.randint(0, 256, (1, 28, 28), generator=g)])
    png = code_lengths_bits(x, 256, "png")
    assert png[0] < png[1] and all(v % 8 == 0 for v in png)
    assert png[1] / 784 > 7.5  # uniform 8-bit noise does not compress
    binary = code_lengths_bits(torch.zeros(1, 1, 28, 28, dtype=torch.long), 2, "png")
    assert binary[0] < png[0]


def test_typicality_is_the_distance_of_a_batch_mean_from_the_entropy():
    nll = np.array([2.0, 6.0, 2.0, 6.0])
    assert typicality_scores(nll, 4.0, 4, seed=0) == pytest.approx([0.0])  # typical on average
    assert typicality_scores(nll, 4.0, 1, seed=0) == pytest.approx([2.0] * 4)  # each one is not
    low = typicality_scores(np.full(10, 1.0), 4.0, 5, seed=3)  # too likely is atypical too
    assert low == pytest.approx([3.0, 3.0])


def test_typicality_batches_are_disjoint_seeded_and_leave_out_the_remainder():
    b = batch_indices(23, 5, seed=1)
    assert b.shape == (4, 5) and len(set(b.flatten().tolist())) == 20
    assert torch.equal(b, batch_indices(23, 5, seed=1)) and not torch.equal(b, batch_indices(23, 5, seed=2))
    with pytest.raises(ConfigError):
        batch_indices(10, 0, seed=0)


def test_the_noise_rate_rule_picks_the_background_that_separates_smoothed_images():
    rng = np.random.default_rng(0)
    val, corrupt = rng.normal(3, 0.1, 100), rng.normal(2.5, 0.1, 100)  # smoothed: "more likely"
    useless = (rng.normal(2, 0.1, 100), rng.normal(2, 0.1, 100))  # explains nothing of the difference
    explains = (rng.normal(2, 0.1, 100), rng.normal(1.0, 0.1, 100))  # explains more than all of it
    best, aurocs = choose_background(val, corrupt, [useless, explains])
    assert best == 1 and aurocs[0] < 0.1 < 0.9 < aurocs[1]
    assert choose_background(val, corrupt, [explains, explains])[0] == 0  # a tie: the first


def test_smoothing_keeps_flat_images_and_blurs_edges():
    x = torch.zeros(1, 1, 6, 6, dtype=torch.long)
    x[..., 3:] = 255
    s = smoothed(x, FASHION)
    assert s.dtype == torch.long and s[0, 0, 0, 0] == 0 and s[0, 0, 0, 5] == 255
    assert s[0, 0, 0, 2] == 85 and s[0, 0, 0, 3] == 170  # one third, two thirds of the edge


# -- outlier sets --------------------------------------------------------------------------------

def test_digits_become_28x28_images_of_256_levels():
    digits = unsup.data.load("digits", "test")
    x, how = convert(digits.x[:5], digits.spec, FASHION, "native", "digits")
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.long and 0 <= x.min() and x.max() <= 255
    assert "8x8 to 28x28" in how and "17 to 256 levels" in how
    full = torch.full((1, 1, 8, 8), 16)
    assert convert(full, digits.spec, FASHION, "native", "digits")[0].unique().tolist() == [255]


def test_rgb_becomes_grey_by_luma_and_grey_becomes_rgb_by_copying():
    rgb = torch.zeros(1, 3, 28, 28, dtype=torch.long)
    rgb[:, 0] = 255  # pure red
    grey, how = convert(rgb, DataSpec((3, 28, 28), 256), FASHION, "native", "red")
    assert grey.unique().tolist() == [76] and "RGB to grey" in how  # round(0.299 * 255)
    back, _ = convert(grey, FASHION, DataSpec((3, 28, 28), 256), "native", "grey")
    assert back.shape == (1, 3, 28, 28) and back.unique().tolist() == [76]


def test_conversion_applies_the_runs_representation():
    grey = torch.tensor([0, 100, 200, 255]).view(4, 1, 1, 1).expand(4, 1, 28, 28)
    binary, _ = convert(grey, FASHION, DataSpec((1, 28, 28), 2), "binary", "g")
    assert binary[:, 0, 0, 0].tolist() == [0, 0, 1, 1]
    four, _ = convert(grey, FASHION, DataSpec((1, 28, 28), 4), "levels:4", "g")
    assert four[:, 0, 0, 0].tolist() == [0, 1, 3, 3]  # floor(u * 4), as the data layer quantises


def test_what_cannot_be_converted_is_a_data_error():
    with pytest.raises(DataError, match="only RGB <-> grey"):
        convert(torch.zeros(1, 2, 28, 28, dtype=torch.long), DataSpec((2, 28, 28), 256), FASHION,
                "native", "x")
    with pytest.raises(DataError, match="only images convert"):
        convert(torch.zeros(1, 16, dtype=torch.long), DataSpec((16,), 256, None, "sequence"), FASHION,
                "native", "text")
    with pytest.raises(DataError, match="stream"):
        load_outlier_set("bible", FASHION, "native", 10)


def test_synthetic_sets_are_seeded_noise_and_constant_images():
    noise = synthetic("noise", FASHION, 50, seed=0)
    assert noise.x.shape == (50, 1, 28, 28) and noise.x.unique().numel() == 256
    assert torch.equal(noise.x, synthetic("noise", FASHION, 50, seed=0).x)
    const = synthetic("constant", FASHION, 50, seed=0).x
    assert (const.flatten(1).amin(1) == const.flatten(1).amax(1)).all() and const.unique().numel() > 10
    assert parse_outlier("cifar10-jpeg=../d") == ("cifar10-jpeg", "../d")
    assert parse_outlier("noise") == ("noise", None)
    with pytest.raises(ConfigError):
        parse_outlier("cifar10-jpeg=")


# -- the mutation option of the data layer --------------------------------------------------------

def test_mutation_replaces_the_expected_share_with_uniform_levels():
    x = torch.zeros(200_000, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(mutate(x, 0.0, 10, g), x)
    y = mutate(x, 0.3, 10, g)
    assert (y != 0).float().mean() == pytest.approx(0.3 * 0.9, abs=0.005)  # 1/10 redraws a 0
    counts = torch.bincount(mutate(x, 1.0, 10, g), minlength=10).float() / len(x)
    assert counts.sub(0.1).abs().max() < 0.005


def test_the_mutate_option_mutates_training_batches_only():
    train = unsup.data.load("digits", "train", mutate="0.5")
    assert isinstance(train, MutatedDataset)
    idx = torch.arange(64)
    a = train.batch(idx, torch.Generator().manual_seed(1))["x"]
    assert torch.equal(a, train.batch(idx, torch.Generator().manual_seed(1))["x"])  # seeded by the step
    assert 0.3 < (a != train.x[idx]).float().mean() < 0.5  # 0.5 * 16/17 change
    assert isinstance(train.subset(idx, "train"), MutatedDataset)
    for split in ("val", "test"):
        assert not isinstance(unsup.data.load("digits", split, mutate="0.5"), MutatedDataset)
    with pytest.raises(ConfigError, match="mutate"):
        unsup.data.load("digits", "train", mutate="lots")
    with pytest.raises(ConfigError, match="discrete"):
        unsup.data.load("two-moons", "train", mutate="0.1")


# -- the library and the command, end to end ------------------------------------------------------

def test_the_report_ranks_noise_as_outlying_under_a_stand_in_model():
    model = ConstantBits()
    test = torch.randint(0, 3, (40, 1, 2, 2))
    outliers = [synthetic("noise", model.spec, 40, seed=0)]
    outliers[0].x.clamp_(min=4)  # every value above the in-distribution ones: less likely
    result, scores = ood_report(model, test, test, outliers, codecs=(), typicality_batch=4,
                                show_progress=False)
    assert result["metrics"]["likelihood"]["noise"]["auroc"] == 1.0
    assert result["metrics"]["typicality"]["noise"]["n_out"] == 10
    assert set(scores) == {"likelihood", "typicality"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from unsup.cli import main

    root = tmp_path_factory.mktemp("ood")
    for name, extra in (("run", []), ("bg", ["--data-opt", "mutate=0.2"]),
                        ("bg2", ["--data-opt", "mutate=0.4"])):
        assert main(["train", *PIXELCNN, *extra, "--out", str(root / name)]) == 0
    return root


def test_ood_end_to_end_with_two_background_candidates(runs, capsys, tmp_path):
    code, out, err = run(capsys, "ood", str(runs / "run"), "--background", str(runs / "bg"),
                         str(runs / "bg2"), "--outliers", "shapes", "noise", "constant", "--examples", "100",
                         "--out", str(tmp_path), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r == json.loads((tmp_path / "ood.json").read_text())
    assert set(r["metrics"]) == {"likelihood", "likelihood-ratio", "complexity:png", "typicality"}
    for per_set in r["metrics"].values():
        assert set(per_set) == {"shapes", "noise", "constant"}
        assert all(0 <= m["auroc"] <= 1 and 0 <= m["fpr95"] <= 1 for m in per_set.values())
    assert r["metrics"]["likelihood"]["shapes"]["n_in"] == 100
    assert r["sets"]["shapes"]["conversion"].startswith("20x20 to 8x8")
    assert [c["mutate"] for c in r["background"]["candidates"]] == [0.2, 0.4]
    assert "higher = more outlying" in r["directions"]["likelihood-ratio"]
    assert {p.name for p in tmp_path.glob("ood-*.png")} == {
        "ood-likelihood.png", "ood-likelihood-ratio.png", "ood-complexity-png.png", "ood-typicality.png"}
    code, out, err = run(capsys, "ood", str(runs / "run"), "--outliers", "noise", "--examples", "50",
                         "--codec", "none", "--out", str(tmp_path / "table"))
    assert code == 0, err
    assert "AUROC" in out and "likelihood" in out and "complexity" not in out.split("AUROC")[1]


def test_a_vae_is_scored_by_its_importance_sampled_estimate(capsys, tmp_path):
    vae = tmp_path / "vae"
    assert run(capsys, "train", "vae", "--data", "digits", "--represent", "binary", "--steps", "5", "--z-dim",
               "2", "--hidden", "16", *TINY, "--out", str(vae))[0] == 0
    code, out, err = run(capsys, "ood", str(vae), "--importance-samples", "3", "--outliers", "shapes",
                         "noise", "--examples", "40", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["likelihood"] == "bound" and r["importance_samples"] == 3 and r["representation"] == "binary"
    assert r["sets"]["shapes"]["conversion"] == "20x20 to 8x8 (bilinear)"  # binary to binary: no requantising


def test_ood_refuses_what_it_cannot_score(runs, capsys, tmp_path):
    other = tmp_path / "shapes-run"
    assert run(capsys, "train", "pixelcnn", "--data", "shapes", "--steps", "2", "--hidden", "4",
               "--num-layers", "1", *TINY, "--out", str(other))[0] == 0
    code, _, err = run(capsys, "ood", str(runs / "run"), "--background", str(other), "--out", str(tmp_path))
    assert code == 2 and "background" in err and "(1, 20, 20)" in err
    ae = tmp_path / "ae"
    assert run(capsys, "train", "autoencoder", "--data", "digits", "--steps", "2", "--width", "4",
               "--depth", "2", *TINY, "--out", str(ae))[0] == 0
    code, _, err = run(capsys, "ood", str(ae))
    assert code == 2 and "has no likelihood" in err
    for argv, message in [(["--outliers", "nosuch"], "unknown dataset 'nosuch'"),
                          (["--outliers", "bible"], "stream"),
                          (["--codec", "gif"], "unknown codec 'gif'"),
                          (["--importance-samples", "5"], "--importance-samples applies to")]:
        code, _, err = run(capsys, "ood", str(runs / "run"), *argv, "--out", str(tmp_path))
        assert code == 2 and message in err, (argv, err)
