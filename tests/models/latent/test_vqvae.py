"""VQ-VAE: quantisation, straight-through gradients, EMA codebook and restarts by hand; the code
grids as a dataset for a prior, and the prior + decoder likelihood bound."""

import json
import math

import pytest
import torch
from model_checks import all_images, assert_training_reduces_loss

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.latent.vqvae import VectorQuantizer, VQVAEWithPrior, perplexity

DIGITS = DataSpec((1, 8, 8), 17, 10, "image")
SMALL = {"hidden": 16, "res_hidden": 8, "res_blocks": 1, "codebook_size": 8, "code_dim": 4}


def test_straight_through_passes_the_decoder_gradient_to_the_encoder_unchanged():
    q = VectorQuantizer(5, 3, restart_threshold=0).eval()
    z_e = torch.randn(2, 3, 2, 2, requires_grad=True)
    z_st, codes, _ = q(z_e)
    assert torch.allclose(z_st, q.codebook[codes].permute(0, 3, 1, 2))  # forward value: z_q
    g = torch.randn_like(z_st)
    (z_st * g).sum().backward()
    assert torch.equal(z_e.grad, g)


def test_quantisation_picks_the_nearest_code():
    q = VectorQuantizer(7, 3).double()
    z = torch.randn(50, 3, dtype=torch.double)
    brute = [min(range(7), key=lambda j, zi=zi: float(((zi - q.codebook[j]) ** 2).sum())) for zi in z]
    assert q.nearest(z).tolist() == brute


def test_ema_update_equals_a_hand_computation():
    gamma, eps = 0.9, 1e-5
    q = VectorQuantizer(3, 2, decay=gamma, epsilon=eps, restart_threshold=0).double().train()
    e = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], dtype=torch.double)
    q.codebook.copy_(e)
    q.embed_sum.copy_(e * 2)
    q.cluster_size.copy_(torch.tensor([2.0, 2.0, 2.0]))
    q.initialized.fill_(True)
    rows = [[0.1, -0.1], [0.9, 1.2], [1.1, 0.7], [-0.2, 0.3]]  # codes 0, 1, 1, 0; code 2 unused
    z_e = torch.tensor(rows, dtype=torch.double).t().reshape(1, 2, 2, 2)  # (B, d, h, w)
    _, codes, terms = q(z_e)
    assert codes.flatten().tolist() == [0, 1, 1, 0]
    n = [2, 2, 0]
    s = [[0.1 - 0.2, -0.1 + 0.3], [0.9 + 1.1, 1.2 + 0.7], [0.0, 0.0]]
    N = [gamma * 2 + (1 - gamma) * n[i] for i in range(3)]
    m = [[gamma * 2 * e[i, j].item() + (1 - gamma) * s[i][j] for j in range(2)] for i in range(3)]
    total = sum(N)
    smooth = [(N[i] + eps) / (total + 3 * eps) * total for i in range(3)]
    expected = torch.tensor([[m[i][j] / smooth[i] for j in range(2)] for i in range(3)],
                            dtype=torch.double)
    assert torch.allclose(q.cluster_size, torch.tensor(N, dtype=torch.double))
    assert torch.allclose(q.embed_sum, torch.tensor(m, dtype=torch.double))
    assert torch.allclose(q.codebook, expected, atol=1e-12)
    # the commitment term uses the codes searched, before the update
    assert terms["commitment"].item() == pytest.approx(
        float(((z_e.permute(0, 2, 3, 1).reshape(-1, 2) - e[[0, 1, 1, 0]]) ** 2).mean()))
    q.eval()  # no update outside training
    before = q.codebook.clone()
    q(z_e)
    assert torch.equal(q.codebook, before)


def test_first_batch_initialises_the_codebook_and_a_dead_code_is_restarted_to_an_encoder_output():
    q = VectorQuantizer(4, 3, restart_threshold=1.0).train()
    z_e = torch.randn(2, 3, 3, 3)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 3)

    def is_encoder_output(v):
        return bool(((flat - v).abs().max(1).values < 1e-6).any())

    q(z_e)
    assert bool(q.initialized)
    q.codebook.copy_(torch.tensor([[0.0, 0, 0], [1, 1, 1], [2, 2, 2], [100, 100, 100]]))
    q.embed_sum.copy_(q.codebook)
    q.cluster_size.copy_(torch.tensor([50.0, 50.0, 50.0, 0.5]))  # code 3: dead
    q(z_e)
    assert is_encoder_output(q.codebook[3])
    assert q.cluster_size[3] == 1 and torch.equal(q.embed_sum[3], q.codebook[3])
    assert not is_encoder_output(q.codebook[0])  # live codes are left to the EMA


def test_perplexity_of_uniform_and_constant_assignments():
    assert perplexity(torch.arange(8).repeat(5), 8).item() == pytest.approx(8.0)
    assert perplexity(torch.full((40,), 3), 8).item() == pytest.approx(1.0)


def test_training_lowers_the_loss_and_reports_every_term():
    torch.manual_seed(0)
    x = unsup.data.load("digits", "train").x[:32]
    for update, likelihood in (("ema", "logistic"), ("loss", "categorical")):
        model = unsup.create("vqvae", data=DIGITS, codebook_update=update, likelihood=likelihood,
                             **SMALL).train()
        out = model.loss({"x": x})
        want = {"loss", "recon", "commitment", "perplexity", "usage", "mse"}
        assert set(out) == want | ({"codebook"} if update == "loss" else set())
        assert 1 <= out["perplexity"] <= 8 and 0 < out["usage"] <= 1 and 0 <= out["mse"] <= 1
        assert_training_reduces_loss(model, {"x": x}, lr=3e-3, steps=15)


def test_recon_is_the_decoder_nll_in_nats_per_dimension():
    x = unsup.data.load("digits", "train").x[:8]
    model = unsup.create("vqvae", data=DIGITS, **SMALL)
    model.train().loss({"x": x})  # initialise the codebook
    out = model.eval().loss({"x": x})
    assert out["recon"].item() == pytest.approx(-model.log_likelihood(x).mean().item() / 64, rel=1e-5)


@pytest.mark.parametrize("shape, downsample, grid", [
    ((1, 28, 28), 2, (14, 14)), ((1, 28, 28), 4, (7, 7)), ((1, 28, 28), 8, (4, 4)),
    ((3, 32, 32), 4, (8, 8)),
])
def test_encode_decode_shapes_and_dtypes(shape, downsample, grid):
    spec = DataSpec(shape, 256, None, "image")
    model = unsup.create("vqvae", data=spec, downsample=downsample,
                         likelihood="categorical" if downsample == 2 else "logistic", **SMALL).eval()
    x = torch.randint(0, 256, (2, *shape))
    codes = model.encode(x)
    assert codes.shape == (2, *grid) and codes.dtype == torch.long and model.code_shape == grid
    assert 0 <= codes.min() and codes.max() < 8
    for images in (model.decode(codes), model.decode(codes, temperature=1.0),
                   model.decode(codes, temperature=0), model.reconstruct(x)):
        assert images.shape == x.shape and images.dtype == torch.long
        assert 0 <= images.min() and images.max() < 256


def test_state_dict_round_trip_keeps_the_codebook_state(tmp_path):
    from unsup.train.checkpoint import load_state, save_state

    x = unsup.data.load("digits", "train").x[:16]
    model = unsup.create("vqvae", data=DIGITS, **SMALL).train()
    model.loss({"x": x})
    save_state(tmp_path / "s.safetensors", {"model": model.state_dict()})
    fresh = unsup.create("vqvae", data=DIGITS, **SMALL)
    fresh.load_state_dict(load_state(tmp_path / "s.safetensors")["model"])
    for name in ("codebook", "cluster_size", "embed_sum", "initialized"):
        assert torch.equal(getattr(fresh.quantizer, name), getattr(model.quantizer, name)), name
    assert bool(fresh.quantizer.initialized)
    assert torch.equal(fresh.eval().encode(x), model.eval().encode(x))


@pytest.mark.parametrize("spec, options, message", [
    (DataSpec((1, 8, 8), None, None, "image"), {}, "continuous"),
    (DataSpec((64,), 17, None, "vector"), {}, "image"),
    (DataSpec((1, 8, 8), 1024, None, "image"), {}, "at most 256"),
    (DIGITS, {"downsample": 3}, "downsample"),
    (DIGITS, {"codebook_update": "sgd"}, "codebook_update"),
    (DIGITS, {"decay": 1.0}, "decay"),
    (DIGITS, {"codebook_size": 1}, "codebook_size"),
    (DIGITS, {"likelihood": "gaussian"}, "likelihood"),
])
def test_bad_data_or_config_is_a_clear_error(spec, options, message):
    with pytest.raises(ConfigError, match=message):
        unsup.create("vqvae", data=spec, **options)


def test_bad_inputs_are_clear_errors():
    model = unsup.create("vqvae", data=DIGITS, **SMALL)
    with pytest.raises(ConfigError, match="shape"):
        model.encode(torch.zeros(2, 1, 7, 7, dtype=torch.long))
    with pytest.raises(ConfigError, match="values in"):
        model.encode(torch.full((2, 1, 8, 8), 17))
    with pytest.raises(ConfigError, match="code grids"):
        model.decode(torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ConfigError, match="codes must be in"):
        model.decode(torch.full((2, 2, 2), 8))
    with pytest.raises(ConfigError, match="gated-pixelcnn|vq-codes"):
        VQVAEWithPrior(model, unsup.create("pixelcnn", data=DataSpec((1, 2, 2), 4, None, "image")))


@pytest.mark.parametrize("likelihood", ["logistic", "categorical"])
def test_prior_bound_is_below_the_exact_likelihood_which_sums_to_one(likelihood):
    """On 2x2 binary images with one code per image, p(x) = sum_k p(k) p(x|k) is enumerable:
    it sums to 1, and the bound log p(k(x)) + log p(x | z_q(x)) never exceeds it."""
    torch.manual_seed(0)
    spec = DataSpec((1, 2, 2), 2, None, "image")
    vq = unsup.create("vqvae", data=spec, downsample=2, likelihood=likelihood,
                      **{**SMALL, "codebook_size": 3}).double()
    x = all_images((1, 2, 2), 2)  # (16, 1, 2, 2)
    vq.train().loss({"x": x})  # initialise the codebook from encoder outputs
    prior = unsup.create("pixelcnn", data=DataSpec((1, 1, 1), 3, None, "image"), hidden=8)
    model = VQVAEWithPrior(vq, prior).eval()
    with torch.no_grad():
        log_pk = prior.log_prob(torch.arange(3).view(3, 1, 1, 1)).double()  # (3,); float32 model
        log_px_k = torch.stack([vq.pixel_log_prob(vq.decoder_output(vq._embed(torch.full((16, 1, 1), k))),
                                                  x) for k in range(3)], 1)  # (16, 3)
        exact = torch.logsumexp(log_pk + log_px_k, 1)
        bound = model.log_prob(x)
    assert torch.logsumexp(exact, 0).item() == pytest.approx(0.0, abs=1e-6)
    assert (bound <= exact + 1e-9).all()
    k = vq.encode(x).flatten()
    assert torch.allclose(bound, log_pk[k] + log_px_k[torch.arange(16), k])
    assert model.sample(5).shape == (5, 1, 2, 2)


def test_codes_dataset_trains_a_prior_with_the_cli_and_the_bound_evaluates(tmp_path, capsys):
    from cli_helpers import run
    from PIL import Image

    from unsup.plots import image_grid
    from unsup.train import evaluate
    from unsup.train.vqcodes import load_vqvae_with_prior

    vq_dir, prior_dir = tmp_path / "vq", tmp_path / "prior"
    code, _, err = run(capsys, "train", "vqvae", "--data", "digits", "--steps", "3", "--batch-size",
                       "16", "--out", str(vq_dir), "--no-progress", "--no-tensorboard",
                       "--samples", "16", "--codebook-size", "8", "--hidden", "16")
    assert code == 0, err
    assert (vq_dir / "reconstructions.png").exists() and not (vq_dir / "samples.png").exists()
    codes = unsup.data.load(f"vq-codes:{vq_dir}", "test")
    digits = unsup.data.load("digits", "test")
    assert codes.spec == DataSpec((1, 2, 2), 8, 10, "image")
    assert torch.equal(codes.y, digits.y)
    vq, _ = unsup.train.load_run(vq_dir)
    assert torch.equal(codes.x[:, 0], vq.encode(digits.x))
    code, _, err = run(capsys, "train", "gated-pixelcnn", "--data", f"vq-codes:{vq_dir}", "--steps", "2",
                       "--out", str(prior_dir), "--no-progress", "--no-tensorboard", "--samples", "4",
                       "--hidden", "8", "--conditional")
    assert code == 0, err
    test = json.loads((prior_dir / "test.json").read_text())
    assert test["image_bpd_bound"] > 0 and (prior_dir / "samples.png").exists()
    decoded = image_grid(torch.zeros(4, 1, 8, 8, dtype=torch.long), 17)  # 4 images, not 2x2 codes
    assert Image.open(prior_dir / "samples.png").size == decoded.size
    code, out, _ = run(capsys, "eval", str(prior_dir), "--json")
    assert code == 0 and json.loads(out)["image_bpd_bound"] == pytest.approx(test["image_bpd_bound"])
    code, out, _ = run(capsys, "eval", str(vq_dir), "--json")
    assert code == 0 and {"loss", "recon", "perplexity", "usage", "mse"} <= set(json.loads(out))
    code, _, err = run(capsys, "sample", str(prior_dir), "--n", "4", "--out", str(tmp_path / "s.png"))
    assert code == 0, err
    model = load_vqvae_with_prior(str(vq_dir), str(prior_dir))
    m = evaluate(model, digits, max_batches=1)
    assert m["exact"] is False and math.isfinite(m["bpd"]) and m["bpd"] > 0
    assert model.sample(10).shape == (10, 1, 8, 8)
    with pytest.raises(ConfigError, match="vqvae run"):
        unsup.data.load(f"vq-codes:{prior_dir}", "test")


def test_training_resumes_exactly_with_the_codebook_state(tmp_path):
    from unsup.train import TrainConfig, Trainer

    data = unsup.data.load("digits", "train")

    def trainer(out, steps):
        torch.manual_seed(0)
        model = unsup.create("vqvae", data=DIGITS, **SMALL)
        cfg = TrainConfig(steps=steps, batch_size=16, eval_every=3, progress=False, tensorboard=False)
        return Trainer(model, data, None, cfg, out=out)

    full = trainer(tmp_path / "a", 6)
    full.fit()
    trainer(tmp_path / "b", 3).fit()
    resumed = trainer(tmp_path / "b", 6)
    torch.manual_seed(999)  # the checkpoint's RNG state decides the restarts, not this one
    resumed.fit(resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and "quantizer.cluster_size" in a
    for k in a:
        assert torch.equal(a[k], b[k]), k
