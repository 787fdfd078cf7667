"""``unsup probe``: label subsets, the probes on features with a known answer, and the command."""

import json

import numpy as np
import pytest
from cli_helpers import run

import unsup
from unsup import probe


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    from unsup.cli import main

    out = tmp_path_factory.mktemp("vae")
    code = main(["train", "vae", "--data", "digits", "--represent", "binary", "--steps", "20",
                 "--no-test", "--samples", "0", "--no-progress", "--no-tensorboard",
                 "--out", str(out), "--z-dim", "4", "--hidden", "32"])
    assert code == 0
    return out


def test_stratified_subset_has_the_fraction_and_every_class():
    y = unsup.data.load("digits", "train", "binary").y.numpy()
    counts = np.bincount(y)
    for fraction in (0.01, 0.1, 1.0):
        idx = probe.stratified_subset(y, fraction, seed=3)
        assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
        per_class = np.bincount(y[idx], minlength=len(counts))
        assert np.array_equal(per_class, np.maximum(1, np.round(counts * fraction)))
        assert abs(len(idx) - fraction * len(y)) <= len(counts)  # rounding, one per class at most
        assert np.array_equal(idx, probe.stratified_subset(y, fraction, seed=3))  # seeded
    assert not np.array_equal(probe.stratified_subset(y, 0.1, 3), probe.stratified_subset(y, 0.1, 4))


def _split(x, y, n_train=600, n_val=200):
    return (x[:n_train], y[:n_train], x[n_train:n_train + n_val], y[n_train:n_train + n_val],
            x[n_train + n_val:], y[n_train + n_val:])


def test_probes_read_separable_features_and_not_random_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 1400)
    centres = rng.normal(size=(4, 8)) * 6
    separable = centres[y] + rng.normal(size=(len(y), 8))
    args = _split(separable, y)
    assert probe.linear_probe(*args)["accuracy"] > 0.99
    assert probe.knn_probe(*args)["accuracy"] > 0.99
    assert probe.mlp_probe(*args)["accuracy"] > 0.99
    noise = rng.normal(size=(len(y), 8))  # labels independent of the features: chance is 1/4
    result = probe.linear_probe(*_split(noise, y))
    assert abs(result["accuracy"] - 0.25) < 0.08 and result["C"] in probe.C_GRID


def test_the_warm_started_linear_probe_finds_the_cold_started_solutions():
    """Overlapping classes, so that C matters: walking the C grid warm-started picks the same C and
    the same test accuracy as a fresh L-BFGS fit per C."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 1400)
    x = rng.normal(size=(5, 40))[y] * 0.6 + rng.normal(size=(len(y), 40))
    xtr, ytr, xva, yva, xte, yte = _split(x, y)
    cold = [LogisticRegression(C=c, max_iter=1000, tol=1e-8).fit(xtr, ytr) for c in probe.C_GRID]
    val = [m.score(xva, yva) for m in cold]
    best = int(np.argmax(val))
    result = probe.linear_probe(xtr, ytr, xva, yva, xte, yte)
    assert result["C"] == probe.C_GRID[best] and result["val_accuracy"] == val[best]
    assert abs(result["accuracy"] - cold[best].score(xte, yte)) <= 1 / len(yte)  # one borderline point


def test_probe_of_a_vae_run_writes_json_and_a_tsne_picture(vae_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(probe, "TSNE_POINTS", 150)  # t-SNE is the slow part: a small map shows it works
    monkeypatch.setattr(probe, "TSNE_ITERATIONS", 250)
    out = tmp_path / "probe"
    code, text, err = run(capsys, "probe", str(vae_run), "--labels", "10%", "--json", "--out", str(out))
    assert code == 0 and "probe.json" in err
    r = json.loads(text)
    assert r == json.loads((out / "probe.json").read_text())
    assert (out / "probe-tsne.png").stat().st_size > 1000 and r["tsne_points"] == 150
    assert (r["model"], r["data"], r["labels"], r["classes"]) == ("vae", "digits", "10%", 10)
    assert r["labelled"] == pytest.approx(0.1 * r["n"]["train"], abs=10)
    assert {k: f["dim"] for k, f in r["features"].items()} == \
        {"run": 4, "random-encoder": 4, "pca": 4, "kmeans": 4, "pixels": 64}
    for f in r["features"].values():
        assert all(0 <= f[p]["accuracy"] <= 1 for p in probe.PROBES)
    # raw pixels of digits are easy: far above chance with 10 % of the labels
    assert r["features"]["pixels"]["linear"]["accuracy"] > 0.7 > 0.2 > r["chance"]
    table = probe.format_table(r)
    assert table.splitlines()[0].split() == ["features", "dim", "linear", "knn", "mlp"]
    assert "random-encoder" in table and "%" in table


def test_probe_features_are_the_frozen_posterior_means(vae_run):
    model, _ = unsup.train.load_run(vae_run)
    x = unsup.data.load("digits", "test", "binary").x[:300]
    h = probe.encoder_features(model, x, batch_size=128)  # batched: the same as one pass
    assert h.shape == (300, 4)
    assert np.allclose(h, model.posterior(x)[0].detach().double().numpy(), atol=1e-6)


def test_probe_refuses_a_model_without_an_encoder(tmp_path, capsys):
    out = tmp_path / "made"
    assert run(capsys, "train", "made", "--data", "digits", "--represent", "binary", "--steps", "2",
               "--no-test", "--samples", "0", "--no-progress", "--no-tensorboard", "--out", str(out),
               "--hidden", "16")[0] == 0
    code, _, err = run(capsys, "probe", str(out))
    assert code == 2 and "probe needs a representation" in err and "vae" in err and "made has none" in err


@pytest.mark.parametrize("labels", ["5%", "0.1", "all"])
def test_probe_rejects_other_label_fractions(vae_run, capsys, labels):
    code, _, err = run(capsys, "probe", str(vae_run), "--labels", labels)
    assert code == 2 and "--labels must be one of 1%, 10%, 100%" in err


def test_probe_refuses_data_the_run_cannot_encode(vae_run, capsys):
    code, _, err = run(capsys, "probe", str(vae_run), "--data", "shapes")  # 20x20, not 8x8
    assert code == 2 and "shapes (binary) has examples (1, 20, 20)" in err and "(1, 8, 8)" in err


def test_probe_transfers_to_another_dataset_with_its_options(vae_run, capsys, tmp_path):
    """--data names a dataset of another source and --data-opt its options: a folder of 16x16 colour
    PNGs, dark and bright classes, read as 8x8 grey (the run's shape) only because of the options."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, level in (("dark", 30), ("bright", 220)):
        (tmp_path / label).mkdir()
        for i in range(40):
            pixels = np.clip(level + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    data = f"image-folder:{tmp_path}"
    code, _, err = run(capsys, "probe", str(vae_run), "--data", data, "--no-tsne")
    assert code == 2 and "(3, 32, 32)" in err and "(1, 8, 8)" in err  # the folder's default size
    code, out, _ = run(capsys, "probe", str(vae_run), "--data", data, "--data-opt", "size=8",
                       "--data-opt", "channels=1", "--probes", "linear", "--no-baselines", "--no-tsne",
                       "--out", str(tmp_path / "probe"), "--json")
    result = json.loads(out)
    assert code == 0 and result["data"] == data and result["features"]["run"]["linear"]["accuracy"] == 1.0
    code, _, err = run(capsys, "probe", str(vae_run), "--data-opt", "size=8")
    assert code == 2 and "give --data too" in err


def test_kmeans_features_are_sparse_soft_assignments_that_separate_clusters():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 1400)
    x = rng.normal(size=(5, 10))[y] * 8 + rng.normal(size=(len(y), 10))
    f = probe.kmeans_features(x[:800], {"train": x[:800], "all": x}, k=5, seed=0)
    assert f["all"].shape == (1400, 5) and (f["all"] >= 0).all()
    # the triangle code: active only on the centroids nearer than the mean distance (sparse), and
    # most active on the example's own cluster
    a = f["all"].argmax(1)
    purity = sum(np.bincount(y[a == c]).max() for c in np.unique(a)) / len(y)
    assert purity > 0.99 and (f["all"] == 0).mean() > 0.3
    assert probe.linear_probe(*_split(f["all"], y))["accuracy"] > 0.99


def test_parse_probes():
    assert probe.parse_probes("knn,linear") == ("linear", "knn")
    for bad in ("", "svm", "linear,,tree"):
        with pytest.raises(unsup.errors.ConfigError, match="--probes takes"):
            probe.parse_probes(bad)


@pytest.fixture(scope="module")
def rotation_run(tmp_path_factory):
    from unsup.cli import main

    out = tmp_path_factory.mktemp("rotation")
    code = main(["train", "rotation", "--data", "digits", "--steps", "30", "--no-test", "--samples", "0",
                 "--no-progress", "--no-tensorboard", "--out", str(out), "--width", "8", "--depth", "2"])
    assert code == 0
    return out


def test_finetuning_learns_the_labels_and_leaves_the_run_unchanged(rotation_run):
    import torch

    model, _ = unsup.train.load_run(rotation_run)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    splits = {s: unsup.data.load("digits", s, "native") for s in ("train", "val", "test")}
    x = {s: ds.x for s, ds in splits.items()}
    y = {s: ds.y.long() for s, ds in splits.items()}
    labelled = probe.stratified_subset(y["train"].numpy(), 0.5, seed=0)
    r = probe.finetune(model, x, y, labelled, steps=150, batch_size=64, lr=1e-2, eval_every=50)
    assert r["accuracy"] > 0.6 and r["step"] in (50, 100, 150) and r["steps"] == 150  # chance: 0.1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_probe_of_a_representation_run_with_finetuning(rotation_run, tmp_path, capsys):
    out = tmp_path / "p"
    code, text, err = run(capsys, "probe", str(rotation_run), "--labels", "10%", "--probes", "linear",
                          "--no-baselines", "--no-tsne", "--finetune-steps", "20", "--json",
                          "--out", str(out))
    assert code == 0, err
    r = json.loads(text)
    assert list(r["features"]) == ["run"] and list(r["features"]["run"]) == ["dim", "linear"]
    assert r["features"]["run"]["dim"] == 16  # width 8, depth 2: 16 pooled channels
    assert set(r["finetune"]) == {"run", "scratch"} and not (out / "probe-tsne.png").exists()
    assert all(0 <= f["accuracy"] <= 1 and f["steps"] == 20 for f in r["finetune"].values())
    assert "finetune scratch" in probe.format_table(r)
    code, _, err = run(capsys, "probe", str(rotation_run), "--finetune-steps", "-1")
    assert code == 2 and "--finetune-steps must be >= 0" in err


def test_mfcc_features_tell_a_low_voice_from_a_high_one_and_read_mu_law_codes():
    import torch

    from unsup.audio import mfcc_features
    from unsup.data.speech import mu_law_encode

    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000
    pitch = np.repeat([120.0, 240.0], 60)  # two "speakers", 60 clips each, random loudness and noise
    x = np.stack([a * np.sin(2 * np.pi * p * t + rng.uniform(0, 6)) + 0.02 * rng.standard_normal(4000)
                  for a, p in zip(rng.uniform(0.2, 0.6, 120), pitch, strict=True)])
    f = mfcc_features(torch.from_numpy(x), None, 16000)
    assert f.shape == (120, 52) and np.isfinite(f).all()
    y = (pitch > 200).astype(int)
    order = rng.permutation(120)
    r = probe.linear_probe(*_split(f[order], y[order], 60, 30))
    assert r["accuracy"] == 1.0
    codes = mu_law_encode(torch.from_numpy(x).clamp(-1, 1))
    from_codes = mfcc_features(codes, 256, 16000)  # decoded first: close to the amplitudes' features
    assert np.corrcoef(from_codes.ravel(), f.ravel())[0, 1] > 0.99
