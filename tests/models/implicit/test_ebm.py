"""The energy-based model: its Langevin sampler on a known energy, the replay buffer, divergence
and exact resume."""

import math

import pytest
import torch
from torch import nn

import unsup
from unsup.data import load
from unsup.data.base import DataSpec
from unsup.errors import TrainingDiverged
from unsup.train import TrainConfig, Trainer

POINTS = DataSpec((2,), None, None, "vector")


def ebm(spec=POINTS, **options):
    torch.manual_seed(0)
    return unsup.create("ebm", spec, hidden=8, buffer_size=16, **options)


class Quadratic(nn.Module):
    """E(x) = |x - m|^2 / (2 s^2): p(x) = N(m, s^2 I)."""

    def __init__(self, m, s):
        super().__init__()
        self.m, self.s = torch.tensor(m), s

    def forward(self, x):
        return (x - self.m).pow(2).sum(1) / (2 * self.s**2)


def test_langevin_with_exact_noise_samples_a_known_gaussian():
    step = 0.005
    model = ebm(step_size=step, noise=math.sqrt(2 * step))
    model.energy = Quadratic([1.0, -2.0], 0.5)
    torch.manual_seed(0)
    x = model.langevin(torch.randn(4000, 2) * 3, 1500)
    torch.testing.assert_close(x.mean(0), torch.tensor([1.0, -2.0]), atol=0.04, rtol=0)
    # the discretised chain's stationary variance is s^2 / (1 - step / (2 s^2))
    var = 0.25 / (1 - step / (2 * 0.25))
    torch.testing.assert_close(x.var(0), torch.full((2,), var), atol=0.02, rtol=0)


def test_chains_start_from_the_buffer_or_from_noise_and_return_to_their_rows():
    model = ebm(reinit=0.0)
    x, rows = model.starts(5)
    assert (rows == -1).all()  # an empty buffer: all from noise
    model.remember(torch.full((5, 2), 7.0), rows)
    assert int(model.filled) == 5 and (model.buffer[:5] == 7.0).all()
    x, rows = model.starts(8)
    assert (rows >= 0).all() and (rows < 5).all() and (x == 7.0).all()
    model.remember(torch.arange(16.0).view(8, 2), rows)
    assert int(model.filled) == 5  # the same chains, moved on
    fresh = ebm(reinit=1.0)
    fresh.remember(torch.zeros(3, 2), torch.full((3,), -1))
    assert (fresh.starts(6)[1] == -1).all()  # reinit 1: always from noise
    fresh.remember(torch.ones(20, 2), torch.full((20,), -1))  # more than the buffer holds
    assert int(fresh.filled) == 16


def test_samples_are_data_and_temperature_scales_the_noise():
    model = ebm(DataSpec((1, 4, 4), 17, None, "image"), sample_steps=3)
    x = model.sample(5)
    assert x.shape == (5, 1, 4, 4) and x.dtype == torch.long and 0 <= int(x.min()) <= int(x.max()) <= 16
    assert ebm(sample_from="buffer").sample(3).shape == (3, 2)


def test_divergence_is_reported_with_the_energies_and_rolled_back():
    train = load("gaussian-grid", "train", n=256)
    cfg = dict(steps=6, batch_size=32, eval_every=2, progress=False, tensorboard=False, lr=1e-3)
    model = ebm(max_energy=1e-6)
    with pytest.raises(TrainingDiverged, match="ebm diverged: energies of data"):
        Trainer(model, train, None, TrainConfig(**cfg)).fit()
    model = ebm(max_energy=1e-6)
    with pytest.raises(TrainingDiverged, match="after 1 rollback"):
        with pytest.warns(RuntimeWarning, match="rolled back"):
            Trainer(model, train, None, TrainConfig(**cfg, on_divergence="rollback",
                                                   max_rollbacks=1)).fit()


def test_resume_continues_the_same_chains(tmp_path):
    train = load("gaussian-grid", "train", n=256)

    def run(steps, out):
        model = ebm(langevin_steps=3)
        t = Trainer(model, train, None, TrainConfig(steps=steps, batch_size=32, eval_every=2, lr=1e-3,
                                                    progress=False, tensorboard=False), out=out)
        t.fit()
        return t.model

    full = run(6, tmp_path / "full")
    run(3, tmp_path / "part")
    resumed = run(6, tmp_path / "part")
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_a_diverging_run_stops_with_the_energies_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    from unsup.cli import main
    from unsup.train import load_state

    out = tmp_path / "ebm"
    # no energy regulariser and a huge learning rate: the energies run away within a few steps
    code = main(["train", "ebm", "--data", "gaussian-ring", "--hidden", "8", "--langevin-steps", "2",
                 "--buffer-size", "64", "--alpha", "0", "--lr", "1", "--max-energy", "1e5",
                 "--batch-size", "32", "--steps", "200", "--eval-every", "2", "--no-progress",
                 "--samples", "0", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "ebm diverged: energies of data" in err
    saved = load_state(out / "last.safetensors")["step"]
    assert saved >= 2 and f"last.safetensors holds the last good state (step {saved})" in err
