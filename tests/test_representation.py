"""The representation ``unsup probe`` judges: ``Model.representation`` of every model that ``encodes``.

Swept over every registered model on the tiny specs of :mod:`test_bad_input`: features are a
``(B, D)`` float tensor, finite, a function of the examples alone (the same call twice gives the
same features; different examples give different ones), and differentiable in the weights, since
``unsup probe --finetune-steps`` trains through them. Models that do not encode refuse clearly.
"""

import pytest
import torch
from test_bad_input import CASES, model, valid

from unsup.errors import ConfigError
from unsup.models import MODELS, names

names()  # discovery: imports every model module
ENCODING = [(n, k) for n, k in CASES if MODELS.get(n).encodes]


def test_the_families_of_the_lecture_8_table_have_a_representation():
    names = {n for n, _ in ENCODING}
    # flows (z = f(x)), the VAE family, VQ-VAE (z_e), GANs and EBMs (discriminator features),
    # diffusion and flow matching (denoiser features), BiGAN (its encoder)
    assert {"realnvp", "glow", "flow++", "vae", "iwae", "pixelvae", "vqvae", "gan", "bigan", "ebm",
            "ddpm", "flow-matching"} <= names


@pytest.mark.parametrize("name, kind", ENCODING)
def test_features_are_a_differentiable_function_of_the_examples(name, kind):
    m = model(name, kind)
    x = valid(m, n=4, seed=1)
    torch.manual_seed(0)
    f = m.representation(x)
    torch.manual_seed(1)  # any randomness inside would show as a difference
    again = m.representation(x)
    assert f.dim() == 2 and len(f) == 4 and f.dtype == torch.float32, (name, f.shape, f.dtype)
    assert torch.isfinite(f).all()
    torch.testing.assert_close(f, again)
    assert not torch.allclose(f[0], f[1]), "two different examples got the same features"
    m.zero_grad()
    f.pow(2).sum().backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads), f"{name}: features do not depend on the weights"


@pytest.mark.parametrize("name", ["gmmn", "made", "pixelcnn", "transformer"])
def test_a_model_without_a_representation_refuses_to_give_features(name):
    m = model(name, "discrete")
    assert not m.encodes
    with pytest.raises(ConfigError, match="no representation"):
        m.representation(valid(m))


def test_a_bigan_is_judged_by_its_encoder_not_its_discriminator():
    m = model("bigan", "discrete")
    x = valid(m)
    torch.testing.assert_close(m.representation(x), m.encode(x).flatten(1).float())
    assert m.representation(x).shape[1] == m.config.latent


def test_a_flow_is_judged_by_its_code_and_a_vqvae_by_its_encoder_output():
    flow = model("realnvp", "discrete")
    x = valid(flow)
    torch.testing.assert_close(flow.representation(x), flow.encode(x).flatten(1))
    assert flow.representation(x).shape[1] == flow.spec.dims
    vq = model("vqvae", "discrete")
    x = valid(vq)
    assert vq.representation(x).shape[1] == vq.encode_continuous(x)[0].numel()
    assert not vq.encode(x).is_floating_point()  # the code grid stays the codec's input
