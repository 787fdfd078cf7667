"""CPC on audio: the encoder's frames and receptive field, a context that never hears the future
(Jacobian), negatives from the pool each flag names and never the positive, the loss against a
loop-by-loop InfoNCE, and training that makes the future predictable."""

import math

import pytest
import torch
import torch.nn.functional as F
from model_checks import assert_training_reduces_loss

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.representation.cpc_audio import CPCAudio

WAVE = DataSpec((400,), None, 4, "sequence")  # amplitudes: gradients reach the input
CODES = DataSpec((400,), 256, 4, "sequence")  # mu-law codes, as the speech dataset stores them
TINY = {"channels": 8, "strides": [4, 2], "kernels": [8, 4], "context": 6, "steps_ahead": 3,
        "num_negatives": 5}


def cpc(spec=WAVE, **options) -> CPCAudio:
    torch.manual_seed(0)
    return unsup.create("cpc-audio", spec, **{**TINY, **options})


def test_frames_and_receptive_field_follow_the_strides():
    model = cpc().eval()  # evaluation: batch norm is a fixed affine map per frame
    enc = model.encoder
    assert (enc.stride, enc.receptive_field) == (8, 8 + 3 * 4)  # 4 * 2; 8 + (4 - 1) * 4
    assert model.T == (400 - 20) // 8 + 1 == enc(torch.zeros(1, 400)).shape[-1]
    paper = unsup.create("cpc-audio", DataSpec((20480,), 256, None, "sequence"), preset="paper")
    assert (paper.encoder.stride, paper.encoder.receptive_field, paper.T) == (160, 465, 126)
    x = torch.randn(1, 400, requires_grad=True)
    z = enc(x)
    for t in (0, 7, model.T - 1):  # z_t hears exactly samples t*stride .. t*stride + field - 1
        (grad,) = torch.autograd.grad(z[0, :, t].sum(), x, retain_graph=True)
        heard = grad[0].abs() > 0
        assert heard.nonzero().min() == 8 * t and heard.nonzero().max() == 8 * t + 19


@pytest.mark.parametrize("norm, mode", [("batch", "eval"), ("channel", "train"), ("none", "train")])
def test_the_context_never_hears_the_future(norm, mode):
    model = cpc(norm=norm).train(mode == "train")
    x = torch.randn(2, 400, requires_grad=True)
    z, c = model.latents_and_context(x)
    for t in range(model.T):
        (grad,) = torch.autograd.grad(c[0, t].sum(), x, retain_graph=True)
        last = 8 * t + 19  # the last sample z_t hears
        assert grad[0, last + 1:].abs().sum() == 0, t
        assert grad[0, : last + 1].abs().sum() > 0
        assert grad[1].abs().sum() == 0  # nor the other clip


@pytest.mark.parametrize("mode", ["all", "speaker", "clip"])
def test_negatives_come_from_the_flagged_pool_and_never_equal_the_positive(mode):
    model = cpc(negatives=mode, num_negatives=400)
    y = torch.tensor([0, 1, 0, 1, 2, 0])
    B, T = len(y), 10
    pool = model.negative_pool(y, y, B, B)
    clip = torch.arange(B).repeat_interleave(T)
    frame = torch.arange(T).repeat(B)
    neg = model.sample_negatives(clip, frame, pool, T, torch.Generator().manual_seed(0))
    neg_clip, neg_frame = neg // T, neg % T
    assert neg.shape == (B * T, 400) and (neg_frame < T).all()
    assert not (neg == (clip * T + frame)[:, None]).any()  # never the positive itself
    allowed = {"all": torch.ones(B, B, dtype=torch.bool), "clip": torch.eye(B, dtype=torch.bool),
               "speaker": y[:, None] == y[None, :]}[mode]
    assert allowed[clip[:, None], neg_clip].all()
    # uniform over the pool's frames: every allowed (clip, frame) but the positive is drawn
    for n in (0, 4 * T + 3):  # a clip with same-speaker company, and one alone (speaker 2)
        drawn = set(neg[n].tolist())
        want = {b * T + f for b in range(B) if allowed[clip[n], b] for f in range(T)} - {n}
        if len(want) <= 60:
            assert drawn == want
        else:
            assert drawn <= want and len(drawn) > 0.8 * len(want)


@pytest.mark.parametrize("negatives", [5, 20])  # scores by gathering, and by one product
def test_the_loss_is_the_multi_step_infonce_of_the_drawn_negatives(negatives):
    model = cpc(CODES, negatives="speaker", num_negatives=negatives).eval()
    drawn = []
    sample = model.sample_negatives
    model.sample_negatives = lambda *a: drawn.append(sample(*a)) or drawn[-1]
    torch.manual_seed(1)
    batch = {"x": torch.randint(0, 256, (3, 400)), "y": torch.tensor([1, 0, 1])}
    out = model.loss(batch)
    with torch.no_grad():
        z, c = model.latents_and_context(batch["x"])
        W = model.predictors.weight.view(3, 8, 6)  # W_k: (C, H) for k = 1..3
        losses, hits = [], []
        for k in range(1, 4):
            terms, wins, n = [], [], 0
            for b in range(3):
                for t in range(model.T - k):
                    pred = W[k - 1] @ c[b, t]
                    negatives = [z[j // model.T, j % model.T] for j in drawn[k - 1][n].tolist()]
                    scores = torch.stack([z[b, t + k] @ pred] + [v @ pred for v in negatives])
                    terms.append(-F.log_softmax(scores, 0)[0])
                    wins.append(float(scores.argmax() == 0))
                    n += 1
            losses.append(torch.stack(terms).mean())
            hits.append(sum(wins) / len(wins))
            torch.testing.assert_close(out[f"acc_{k}"], torch.tensor(hits[-1]))
        torch.testing.assert_close(out["loss"], torch.stack(losses).mean())
    assert len(drawn) == 3 and out["accuracy"] == pytest.approx(sum(hits) / 3)


def test_validation_draws_the_same_negatives_every_time_training_does_not():
    model = cpc()
    batch = {"x": torch.randn(4, 400)}
    model.eval()
    assert model.loss(batch)["loss"] == model.loss(batch)["loss"]
    model.train()
    assert model.loss(batch)["loss"] != model.loss(batch)["loss"]


def test_at_initialisation_the_loss_is_near_chance():
    out = cpc(num_negatives=31).loss({"x": torch.randn(8, 400)})
    assert abs(out["loss"].item() - math.log(32)) < 0.5


def test_training_makes_the_future_predictable():
    """Tones of random pitch and phase: after training, the context names the next frames far
    above chance (1 in 6)."""
    torch.manual_seed(0)
    t = torch.arange(400).float()

    def tones(n):
        f = 0.02 + 0.2 * torch.rand(n, 1)
        return torch.sin(f * t + 6.28 * torch.rand(n, 1)) * (0.3 + 0.7 * torch.rand(n, 1))

    model = cpc()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        model.loss({"x": tones(16)})["loss"].backward()
        opt.step()
    out = model.eval().loss({"x": tones(64)})
    assert out["acc_1"] > 0.6 and out["accuracy"] > 0.4
    assert_training_reduces_loss(cpc(CODES), {"x": torch.randint(0, 256, (4, 400))}, 1e-2, 3)


def test_encode_averages_the_context_or_the_latents():
    model = cpc(CODES).eval()
    x = torch.randint(0, 256, (3, 400))
    z, c = model.latents_and_context(x)
    torch.testing.assert_close(model.encode(x), c.mean(1))
    assert model.feature_dim == 6 and model.encodes
    latent = cpc(CODES, features="latent").eval()
    torch.testing.assert_close(latent.encode(x), latent.latents_and_context(x)[0].mean(1))
    assert latent.feature_dim == 8


def test_steps_chart_has_one_accuracy_per_step():
    model = cpc(CODES, negatives="speaker")
    x, y = torch.randint(0, 256, (4, 400)), torch.tensor([0, 0, 1, 1])
    assert model.charts(x) == {}  # speaker negatives need the speakers
    (xs, ys), = model.charts(x, y)["steps"]["series"].values()
    assert xs == [1, 2, 3] and all(0 <= a <= 1 for a in ys)
    assert model.training  # left as it was


@pytest.mark.parametrize("options, message", [
    ({"strides": [4, 0]}, "all positive"),
    ({"strides": [4, 2], "kernels": [8]}, "as many kernels as strides"),
    ({"negatives": "others"}, "negatives must be one of all, speaker, clip"),
    ({"features": "both"}, "features must be one of context, latent"),
    ({"steps_ahead": 60}, "use longer clips"),
    ({"num_negatives": 0}, "num_negatives >= 1"),
    ({"norm": "group"}, "norm must be one of batch, channel, none"),
])
def test_bad_options_say_what_is_expected(options, message):
    with pytest.raises(ConfigError, match=message):
        cpc(**options)


def test_image_data_and_speaker_negatives_without_labels_are_refused():
    with pytest.raises(ConfigError, match="expects sequence data"):
        unsup.create("cpc-audio", DataSpec((1, 8, 8), 256, None, "image"))
    with pytest.raises(ConfigError, match="speaker labels"):
        cpc(negatives="speaker").loss({"x": torch.randn(2, 400)})
    text = unsup.data.base.TensorDataset(torch.zeros(4, 400, dtype=torch.long), CODES, name="bible")
    with pytest.raises(ConfigError, match="learns from raw audio"):
        unsup.create("cpc-audio", data=text, **TINY)
