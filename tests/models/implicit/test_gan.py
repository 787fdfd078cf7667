"""The GAN family: losses, penalties and regularisers against direct computations."""

import pytest
import torch
import torch.nn.functional as F

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.implicit.gan import gradient_penalty, interpolates

IMAGES = DataSpec((1, 8, 8), 17, 10, "image")
POINTS = DataSpec((2,), None, 4, "vector")


def gan(spec=POINTS, **options):
    torch.manual_seed(0)
    return unsup.create("gan", spec, hidden=16, latent=4, **options)


def images(n=6, seed=0):
    return torch.randint(0, 17, (n, 1, 8, 8), generator=torch.Generator().manual_seed(seed))


def test_the_penalty_is_taken_at_one_random_point_per_example_on_the_segment():
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    torch.manual_seed(0)
    points = interpolates(real, fake)
    e = (points - fake) / (real - fake)  # the coefficient of every value
    per_example = e.flatten(1)
    torch.testing.assert_close(per_example, per_example[:, :1].expand_as(per_example))  # one per example
    assert per_example[:, 0].unique().numel() == 5 and ((per_example >= 0) & (per_example <= 1)).all()


def test_gradient_penalty_equals_the_per_example_gradient_norms():
    model = gan(IMAGES, penalty="gp", d_norm="layer")
    points = torch.randn(4, 1, 8, 8)
    got = gradient_penalty(lambda v: model.discriminator(v), points)
    expected = []
    for p in points:  # one example at a time: its own gradient, nothing shared with the others
        p = p[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model.discriminator(p).sum(), p)
        expected.append((g.norm() - 1) ** 2)
    torch.testing.assert_close(got, torch.stack(expected).mean())
    # the penalty trains the critic: it has a gradient with respect to D's weights
    got.backward()
    assert model.discriminator.head.weight.grad.abs().sum() > 0


def test_r1_penalty_is_half_gamma_times_the_squared_gradient_on_data():
    model = gan(penalty="r1", penalty_weight=3.0)
    model.eval()  # no instance noise, batch norm from running statistics
    x = torch.randn(6, 2)
    got = model.penalty(x, torch.randn(6, 2), None)
    xs = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.discriminator(xs).sum(), xs)
    torch.testing.assert_close(got, 1.5 * g.pow(2).sum(1).mean())


@pytest.mark.parametrize("loss", ["minimax", "non-saturating", "wasserstein", "hinge", "least-squares"])
def test_losses_are_the_published_formulas(loss):
    model = gan(loss=loss)
    d_real, d_fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.2, 1.5])
    s_r, s_f = torch.sigmoid(d_real), torch.sigmoid(d_fake)
    critic = {"minimax": -(s_r.log() + (1 - s_f).log()).mean(),
              "non-saturating": -(s_r.log() + (1 - s_f).log()).mean(),
              "wasserstein": d_fake.mean() - d_real.mean(),
              "hinge": F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean(),
              "least-squares": ((d_real - 1) ** 2).mean() + (d_fake**2).mean()}[loss]
    generator = {"minimax": (1 - s_f).log().mean(), "non-saturating": -s_f.log().mean(),
                 "wasserstein": -d_fake.mean(), "hinge": -d_fake.mean(),
                 "least-squares": ((d_fake - 1) ** 2).mean()}[loss]
    torch.testing.assert_close(model.critic_loss(d_real, d_fake), critic)
    torch.testing.assert_close(model.generator_loss(d_fake), generator)


def test_minimax_generator_gradient_vanishes_where_the_discriminator_wins():
    d_fake = torch.tensor([-10.0], requires_grad=True)  # D is sure the sample is fake
    grads = {}
    for loss in ("minimax", "non-saturating"):
        (g,) = torch.autograd.grad(gan(loss=loss).generator_loss(d_fake), d_fake)
        grads[loss] = float(g)
    assert abs(grads["minimax"]) < 1e-4 and grads["non-saturating"] == pytest.approx(-1.0, abs=1e-4)


def test_each_phase_trains_its_player_and_critic_steps_repeat():
    model = gan(n_critic=3, d_lr=2.0, beta1=0.0, beta2=0.9)
    phases = model.phases()
    assert [(p.name, p.steps, p.lr, p.betas) for p in phases] == [
        ("critic", 3, 2.0, (0.0, 0.9)), ("generator", 1, 1.0, (0.0, 0.9))]
    assert {id(p) for p in phases[0].params} == {id(p) for p in model.discriminator.parameters()}
    assert {id(p) for p in phases[1].params} == {id(p) for p in model.generator.parameters()}
    batch = {"x": torch.rand(8, 2)}
    assert {"loss", "d_real", "d_fake"} <= set(model.loss(batch, "critic"))
    assert set(model.loss(batch, "generator")) == {"loss"}
    with pytest.raises(ValueError, match="phase"):
        model.loss(batch, "encoder")


def test_weight_clipping_bounds_the_critic_before_it_is_used():
    model = gan(loss="wasserstein", weight_clip=0.01)
    model.loss({"x": torch.rand(8, 2)}, "critic")
    assert max(float(p.detach().abs().max()) for p in model.discriminator.parameters()) <= 0.01


def test_spectral_norm_makes_every_discriminator_weight_1_lipschitz():
    model = gan(IMAGES, spectral_norm=True)
    for _ in range(30):  # power iterations run in training forward passes
        model.discriminator(torch.randn(4, 1, 8, 8))
    model.eval()
    mats = [m.weight.flatten(1) for m in model.discriminator.modules()
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert len(mats) == 3
    for w in mats:
        assert float(torch.linalg.matrix_norm(w.detach(), 2)) == pytest.approx(1.0, abs=0.05)


def test_instance_noise_anneals_linearly_to_zero_over_the_discriminator_steps():
    model = gan(instance_noise=0.4, noise_steps=10)
    batch = {"x": torch.rand(8, 2)}
    scales = []
    for _ in range(12):
        scales.append(model.noise_scale())
        model.loss(batch, "critic")
        model.loss(batch, "generator")  # generator steps do not advance the schedule
    assert scales[0] == pytest.approx(0.4) and scales[5] == pytest.approx(0.2)
    assert scales[10:] == [0.0, 0.0]


def test_samples_are_data_levels_and_temperature_zero_is_the_mode_of_the_noise():
    model = gan(IMAGES)
    x = model.sample(5)
    assert x.shape == (5, 1, 8, 8) and x.dtype == torch.long and 0 <= int(x.min()) and int(x.max()) <= 16
    model.check_input(x)
    cold = model.sample(3, temperature=0.0)
    assert (cold == cold[:1]).all()
    points = gan().sample(4)
    assert points.dtype == torch.float32 and points.shape == (4, 2)


def test_conditional_gan_samples_each_label_and_needs_labels():
    model = gan(IMAGES, conditional=True)
    assert model.num_classes == 10
    x = images()
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    out = model.loss({"x": x, "y": y}, "critic")
    assert torch.isfinite(out["loss"])
    with pytest.raises(ConfigError, match="labels"):
        model.loss({"x": x}, "critic")
    torch.manual_seed(0)
    a = model.sample(2, y=torch.tensor([3, 3]))
    torch.manual_seed(0)
    b = model.sample(2, y=torch.tensor([7, 7]))
    assert not torch.equal(a, b)  # the label changes the sample for the same noise
    with pytest.raises(ConfigError, match="labelled"):
        gan(DataSpec((2,), None, None, "vector"), conditional=True)


def test_validation_reports_mmd_between_data_and_samples_and_both_losses():
    model = gan()
    with torch.no_grad():
        out = model.loss({"x": torch.rand(32, 2)})
    assert {"loss", "critic_loss", "generator_loss"} <= set(out)
    assert all(torch.isfinite(v) for v in out.values())


@pytest.mark.parametrize("options, match", [
    ({"loss": "relativistic"}, "loss must be one of"),
    ({"penalty": "gp", "d_norm": "batch"}, "batch norm"),
    ({"n_critic": 0}, "n_critic"),
    ({"d_lr": 0.0}, "d_lr"),
    ({"arch": "dcgan"}, "dcgan takes images"),
])
def test_bad_options_are_refused_with_the_reason(options, match):
    with pytest.raises(ConfigError, match=match):
        gan(**options)


def test_dcgan_shapes_for_odd_image_sizes():
    for shape in ((1, 28, 28), (3, 32, 32), (1, 20, 20), (1, 7, 9)):
        model = gan(DataSpec(shape, 256, None, "image"))
        x = model.sample(2)
        assert x.shape == (2, *shape)
        assert model.discriminator(model.to_unit(x)).shape == (2,)
