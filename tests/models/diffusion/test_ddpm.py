"""DDPM: the variational bound term by term and on Gaussian data, the samplers against each other,
on a Gaussian with a known answer, and against diffusers' schedulers step for step."""

import math

import pytest
import torch
from model_checks import assert_training_reduces_loss
from torch import nn
from torch.distributions import Normal, kl_divergence

import unsup
from unsup.data.base import DataSpec
from unsup.errors import ConfigError
from unsup.models.diffusion import samplers
from unsup.models.diffusion.ddpm import discretised_gaussian_log_prob
from unsup.models.diffusion.schedule import betas

IMAGES = DataSpec((1, 4, 4), 5, 3, "image")
LINE = DataSpec((1,), None, None, "vector")


def tiny(spec=IMAGES, **options):
    torch.manual_seed(0)
    opts = {"hidden": 8, "mults": [1, 2], "attention": [2], "timesteps": 6, "sample_steps": 6}
    if spec.kind == "vector":
        opts = {"hidden": 16, "layers": 2, "timesteps": 6, "sample_steps": 6}
    model = unsup.create("ddpm", spec, **{**opts, **options})
    for p in model.parameters():  # the output layer starts at zero: give the network a real function
        nn.init.normal_(p, std=0.2)
    return model.eval()


def images(n=5):
    return torch.randint(0, IMAGES.levels, (n, *IMAGES.shape))


# ---------------------------------------------------------------- the forward process


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules_follow_their_papers(schedule):
    b = betas(schedule, 1000).double()
    abar = torch.cumprod(1 - b, 0)
    if schedule == "linear":
        assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    else:
        f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        assert abar[499] == pytest.approx(f(500) / f(0), rel=1e-9)
    assert 0 < abar[-1] < 1e-4 and bool((b > 0).all() and (b <= 0.999).all())


# ---------------------------------------------------------------- the bound


def test_discretised_gaussian_matches_the_normal_cdf_and_sums_to_one():
    levels = 5
    x = torch.linspace(-1, 1, levels).double()
    mean, logvar = torch.tensor(0.3).double(), torch.tensor(math.log(0.2)).double()
    got = discretised_gaussian_log_prob(x, mean, logvar.expand(levels), levels)
    d = Normal(mean, logvar.mul(0.5).exp())
    edges = torch.cat([torch.tensor([-math.inf]), (x[:-1] + x[1:]) / 2, torch.tensor([math.inf])])
    expected = (d.cdf(edges[1:]) - d.cdf(edges[:-1])).log()
    torch.testing.assert_close(got, expected)
    assert got.exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    # a tiny variance: the bin of the mean has probability ~1, far bins ~ -inf but finite
    sharp = discretised_gaussian_log_prob(x, x[2], torch.tensor(-30.0).double().expand(levels), levels)
    assert sharp[2].item() == pytest.approx(0.0, abs=1e-9) and bool(torch.isfinite(sharp).all())


@pytest.mark.parametrize("variance", ["fixed-small", "fixed-large", "learned"])
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_each_term_is_the_kl_of_the_gaussians_of_the_paper(variance, prediction):
    model = tiny(variance=variance, prediction=prediction)
    T = 6
    b = betas("cosine", T)
    abar = torch.cumprod(1 - b, 0)
    x = images(4)
    x0 = x.double() / 2 - 1  # 5 levels in [-1, 1]
    for i in range(T):
        torch.manual_seed(i)
        xt = (abar[i].sqrt() * x0 + (1 - abar[i]).sqrt() * torch.randn_like(x0)).float()
        idx = torch.full((4,), i)
        with torch.no_grad():
            out = model.net(xt, model.time(idx), None)
            got = model.step_term(x0.float(), xt, idx, out).double()
        # the prediction as x0, from the definitions
        raw, v = out[:, :1].double(), out[:, 1:].double()
        a, s = abar[i].sqrt(), (1 - abar[i]).sqrt()
        x0_hat = {"eps": (xt - s * raw) / a, "x0": raw, "v": a * xt - s * raw}[prediction]
        abar_prev = abar[i - 1] if i else torch.tensor(1.0).double()
        mean = (abar_prev.sqrt() * b[i] / (1 - abar[i]) * x0_hat
                + (1 - b[i]).sqrt() * (1 - abar_prev) / (1 - abar[i]) * xt)
        btilde = b * torch.cat([torch.ones(1).double(), 1 - abar[:-1]]) / (1 - abar)
        small = btilde[max(i, 1)]  # the decoder's variance is step 2's ("clipped")
        large = b[i] if i else btilde[1]
        var = {"fixed-small": small, "fixed-large": large}.get(variance)
        if variance == "learned":
            f = (v + 1) / 2
            var = torch.exp(f * b[i].log() + (1 - f) * small.log())
        model_d = Normal(mean, var.sqrt() if torch.is_tensor(var) else math.sqrt(var))
        if i == 0:
            edges_lo = torch.where(x0 < -0.75, -math.inf, x0 - 0.25)
            edges_hi = torch.where(x0 > 0.75, math.inf, x0 + 0.25)
            expected = -(model_d.cdf(edges_hi) - model_d.cdf(edges_lo)).log().flatten(1).sum(1)
        else:
            post = Normal(abar_prev.sqrt() * b[i] / (1 - abar[i]) * x0
                          + (1 - b[i]).sqrt() * (1 - abar_prev) / (1 - abar[i]) * xt, btilde[i].sqrt())
            expected = kl_divergence(post, model_d).flatten(1).sum(1)
        torch.testing.assert_close(got, expected, rtol=2e-4, atol=2e-4)


def test_the_bound_with_every_step_is_the_sum_of_its_terms():
    model = tiny()
    x = images(3)
    torch.manual_seed(5)
    nll, se = model.bound(x, steps=0)
    assert se is None
    # the same draws, term by term: prior, decoder, then each step 2 .. T
    torch.manual_seed(5)
    x0 = model.to_unit(x)
    with torch.no_grad():
        total = model.prior_term(x0) + model.term_at(x0, torch.zeros(3, dtype=torch.long), None)
        for i in range(1, 6):
            torch.randint(i, i + 1, (3,))  # the stratum's draw, a single step
            total += model.term_at(x0, torch.full((3,), i), None)
    torch.testing.assert_close(nll, total)
    # the stratified estimate is unbiased: its mean over many draws approaches the full sum
    torch.manual_seed(6)
    many = x.repeat(400, 1, 1, 1)  # 400 independent draws per example
    draws = model.bound(many, steps=2)[0].view(400, 3)
    full = model.bound(many, steps=0)[0].view(400, 3)
    se_diff = (draws.var(0) / 400 + full.var(0) / 400).sqrt()
    assert bool(((draws.mean(0) - full.mean(0)).abs() < 4 * se_diff).all())
    lp, se = model.log_prob_with_se(x)
    assert lp.shape == (3,) and se is None  # bound_steps 100 >= T - 1: every term


class GaussianDenoiser(nn.Module):
    """The exact reverse process of data ``N(m, s^2)``: noise prediction ``E[eps | x_t] =
    sqrt(1 - abar) (x_t - sqrt(abar) m) / (abar s^2 + 1 - abar)`` and, as a learned variance, the
    exact ``Var(x_{t-1} | x_t) = btilde_t + c0_t^2 Var(x_0 | x_t)``."""

    def __init__(self, model, m, s):
        super().__init__()
        self.model, self.m, self.s = [model], m, s

    def forward(self, x, t, y=None):
        model = self.model[0]
        sched = model.schedule
        i = (t * model.config.timesteps).round().long() - 1
        abar = sched.at("abar", i, x)
        eps = (1 - abar).sqrt() * (x - abar.sqrt() * self.m) / (abar * self.s ** 2 + 1 - abar)
        if model.out_factor == 1:
            return eps
        var_x0 = self.s ** 2 * (1 - abar) / (abar * self.s ** 2 + 1 - abar)
        var = sched.at("btilde", i, x) + sched.at("c0", i, x) ** 2 * var_x0
        small, large = sched.at("log_small", i, x), sched.at("beta", i, x).log()
        return torch.cat([eps, 2 * (var.log() - small) / (large - small) - 1], 1)


def gaussian_model(T=1000, m=0.5, s=0.3, **options):
    model = unsup.create("ddpm", LINE, timesteps=T, sample_steps=min(T, 50), hidden=4, layers=1,
                         prediction="eps", **options)  # GaussianDenoiser predicts the noise
    model.net = GaussianDenoiser(model, m, s)
    return model.eval()


def test_with_the_exact_reverse_process_the_bound_is_the_true_nll_of_gaussian_data():
    """For Gaussian data the reverse steps are exactly Gaussian: with their exact means and
    variances every KL term is tight and the bound is the data's NLL, whatever T; with the
    fixed-small variances it is a strict upper bound."""
    m, s = 0.5, 0.3
    torch.manual_seed(0)
    x = (m + s * torch.randn(4000, 1))
    true_nll = float(-Normal(m, s).log_prob(x[:, 0]).mean())
    for T in (10, 1000):
        with torch.no_grad():
            exact = gaussian_model(T, m, s, variance="learned").bound(x, steps=0)[0]
            small = gaussian_model(T, m, s).bound(x, steps=0)[0]
        # each example's bound is one draw of x_1..x_T: compare means within their standard errors
        se = float(exact.std()) / len(x) ** 0.5
        assert abs(float(exact.mean()) - true_nll) < 3 * se + 0.002, (T, float(exact.mean()), true_nll)
        assert float(small.mean()) - true_nll > 3 * float(small.std()) / len(x) ** 0.5 + 0.1


@pytest.mark.parametrize("sampler,steps", [("ancestral", 1000), ("ancestral", 100), ("ddim", 50),
                                           ("dpm-solver", 20)])
def test_samplers_draw_the_known_gaussian(sampler, steps):
    model = gaussian_model(clip_samples=False)
    torch.manual_seed(1)
    with torch.no_grad():
        x = model.sample(4000, sampler=sampler, steps=steps)
    assert x.mean().item() == pytest.approx(0.5, abs=0.02)
    assert x.std().item() == pytest.approx(0.3, abs=0.02)


def test_ddim_with_eta_1_is_the_ancestral_sampler():
    model = tiny(timesteps=20, sample_steps=20)
    for steps in (20, 5):
        torch.manual_seed(3)
        ancestral = model.sample(6, y=torch.arange(6) % 3 if model.num_classes else None,
                                 sampler="ancestral", steps=steps)
        torch.manual_seed(3)
        ddim = model.sample(6, sampler="ddim", steps=steps, eta=1.0)
        assert torch.equal(ancestral, ddim)
        model_u = tiny(LINE, timesteps=20, clip_samples=False)
        torch.manual_seed(4)
        a = model_u.draw(50, None, 1.0, sampler="ancestral", steps=steps)
        torch.manual_seed(4)
        d = model_u.draw(50, None, 1.0, sampler="ddim", steps=steps, eta=1.0)
        torch.testing.assert_close(a, d, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- against diffusers, step by step

import diffusers  # noqa: E402  (a test dependency, `pip install -e .[dev]`; imported here: it takes 4 s)


def _noise_recorder(monkeypatch):
    drawn = []
    real = torch.randn_like

    def randn_like(x, *a, **k):
        drawn.append(real(x, *a, **k))
        return drawn[-1]

    monkeypatch.setattr(torch, "randn_like", randn_like)
    return drawn


def _chain(model, sampler, steps, monkeypatch, **options):
    torch.manual_seed(7)
    record = []
    drawn = _noise_recorder(monkeypatch)
    with torch.no_grad():
        model.draw(3, None, 1.0, record=record, sampler=sampler, steps=steps, **options)
    monkeypatch.undo()
    return record, drawn


def _outputs(model, x, t):
    with torch.no_grad():
        return model.net(x, model.time(torch.full((len(x),), int(t))), None)


PRED = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("variance,steps", [("fixed-small", 10), ("fixed-small", 5),
                                            ("fixed-large", 10), ("learned", 10)])
def test_ancestral_matches_diffusers_ddpm_scheduler(prediction, variance, steps, monkeypatch):
    model = tiny(timesteps=10, prediction=prediction, variance=variance, noise_schedule="linear")
    kind = {"fixed-small": "fixed_small", "fixed-large": "fixed_large", "learned": "learned_range"}
    ref = diffusers.DDPMScheduler(num_train_timesteps=10, trained_betas=model.schedule.beta.numpy(),
                                  variance_type=kind[variance], prediction_type=PRED[prediction],
                                  clip_sample=True, timestep_spacing="trailing")
    ref.set_timesteps(steps)
    record, drawn = _chain(model, "ancestral", steps, monkeypatch)
    noise = iter(drawn)  # the noise of each step (the start is drawn by torch.randn)
    import diffusers.schedulers.scheduling_ddpm as ddpm_module
    # diffusers also draws noise for a respaced last step, whose variance is ~0: zeros then
    monkeypatch.setattr(ddpm_module, "randn_tensor", lambda shape, **k: next(noise, torch.zeros(shape)))
    for k, t in enumerate(ref.timesteps):
        out = ref.step(_outputs(model, record[k], t), t, record[k]).prev_sample
        # diffusers' fixed-large variance at the last step is beta_1 where the paper's is btilde_2;
        # both add no noise at t = 0
        torch.testing.assert_close(out, record[k + 1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("eta,steps", [(0.0, 5), (0.5, 10), (1.0, 5)])
def test_ddim_matches_diffusers_ddim_scheduler(prediction, eta, steps, monkeypatch):
    model = tiny(timesteps=10, prediction=prediction)
    ref = diffusers.DDIMScheduler(num_train_timesteps=10, trained_betas=model.schedule.beta.numpy(),
                                  prediction_type=PRED[prediction], clip_sample=True,
                                  set_alpha_to_one=True, timestep_spacing="trailing")
    ref.set_timesteps(steps)
    record, drawn = _chain(model, "ddim", steps, monkeypatch, eta=eta)
    noise = iter(drawn)
    for k, t in enumerate(ref.timesteps):
        last = k == len(ref.timesteps) - 1
        extra = {"variance_noise": next(noise)} if eta > 0 and not last else {}
        out = ref.step(_outputs(model, record[k], t), t, record[k], eta=eta,
                       use_clipped_model_output=True, **extra).prev_sample
        torch.testing.assert_close(out, record[k + 1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prediction", ["eps", "x0"])
@pytest.mark.parametrize("steps", [2, 4, 10])
def test_dpm_solver_matches_diffusers_dpm_solver_pp_2m(prediction, steps, monkeypatch):
    model = tiny(timesteps=10, prediction=prediction, clip_samples=False)
    ref = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=10, trained_betas=model.schedule.beta.numpy(), solver_order=2,
        prediction_type=PRED[prediction], algorithm_type="dpmsolver++", solver_type="midpoint",
        lower_order_final=True, final_sigmas_type="zero", timestep_spacing="trailing")
    ref.set_timesteps(steps)
    record, _ = _chain(model, "dpm-solver", steps, monkeypatch)
    for k, t in enumerate(ref.timesteps):
        out = ref.step(_outputs(model, record[k], t), t, record[k]).prev_sample
        torch.testing.assert_close(out, record[k + 1], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- training, guidance, bad options


def test_training_lowers_the_loss_for_every_prediction_and_the_hybrid_loss():
    x = images(16)
    for options in ({"prediction": "eps"}, {"prediction": "v"}, {"variance": "learned"}):
        torch.manual_seed(0)
        model = unsup.create("ddpm", IMAGES, hidden=8, mults=[1, 2], timesteps=20, **options).train()
        fixed = lambda batch, m=model, f=model.loss: (torch.manual_seed(1), f(batch))[1]  # noqa: E731
        model.loss = fixed
        assert_training_reduces_loss(model, {"x": x}, lr=3e-3, steps=15)


def test_guidance_combines_conditional_and_unconditional_outputs():
    model = tiny(conditional=True, label_dropout=0.2)
    x, t, y = torch.randn(4, *IMAGES.shape), torch.rand(4), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        cond, none = model.net(x, t, y), model.net(x, t, torch.full_like(y, 3))
        torch.testing.assert_close(model.predict(x, t, y, 3.0), none + 3.0 * (cond - none))
        torch.testing.assert_close(model.predict(x, t, y, 1.0), cond)
    torch.manual_seed(0)
    dropped = model.training_labels(torch.zeros(2000, dtype=torch.long), 2000)
    assert (dropped == 3).float().mean().item() == pytest.approx(0.2, abs=0.03)
    assert model.sample(3, guidance=2.0).shape == (3, *IMAGES.shape)
    no_dropout = tiny(conditional=True, label_dropout=0.0)
    with pytest.raises(ConfigError, match="label_dropout"):
        no_dropout.sample(3, guidance=2.0)


def test_bad_options_are_refused_clearly():
    with pytest.raises(ConfigError, match="prediction"):
        unsup.create("ddpm", IMAGES, prediction="score")
    with pytest.raises(ConfigError, match="sampling steps"):
        tiny().sample(2, steps=7)
    with pytest.raises(ConfigError, match="no sampling option"):
        tiny().sample(2, temperature_schedule=1)
    with pytest.raises(ConfigError, match="eta"):
        tiny().sample(2, sampler="ddim", eta=2.0)
    with pytest.raises(ConfigError, match="labelled"):
        unsup.create("ddpm", DataSpec((1, 4, 4), 5, None, "image"), conditional=True)
    with pytest.raises(ConfigError, match="unet needs images"):
        unsup.create("ddpm", LINE, arch="unet")
    assert samplers.timesteps(1000, 10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
