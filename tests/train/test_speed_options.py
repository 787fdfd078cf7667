"""The speed options of the training loop: each trains, checkpoints plain weights and resumes.

``--amp bf16`` on the CPU, ``--channels-last`` and ``--compile`` (torch.compile; the slow one:
compiling even a two-layer network takes tens of seconds on one core).
"""

import dataclasses
import functools

import pytest
import torch
from torch import nn

from unsup.cli import main
from unsup.data.base import DataSpec, TensorDataset
from unsup.errors import ConfigError
from unsup.models.base import LikelihoodModel
from unsup.train import LAST, TrainConfig, Trainer, load_state


@dataclasses.dataclass
class TinyConvConfig:
    hidden: int = 4


class TinyConv(LikelihoodModel):
    """Per-pixel categoricals from a 3x3 and a 1x1 convolution of the image itself.

    Not a normalised density (each pixel sees itself); a loss with convolutions for the loop.
    It records what it was given, to check dtypes and layouts inside the step.
    """

    Config = TinyConvConfig

    def __init__(self, spec, config):
        super().__init__(spec, config)
        c, levels = spec.shape[0], spec.levels
        self.net = nn.Sequential(nn.Conv2d(c, config.hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(config.hidden, c * levels, 1))
        self.seen: dict[str, object] = {}

    def log_prob(self, x, y=None):
        if not torch.compiler.is_compiling():
            self.seen.update(channels_last=x.is_contiguous(memory_format=torch.channels_last)
                             and not x.is_contiguous(), dtype=None)
        logits = self.net(x.float() / (self.spec.levels - 1))
        if not torch.compiler.is_compiling():
            self.seen["dtype"] = logits.dtype
        logits = logits.unflatten(1, (self.spec.shape[0], self.spec.levels))  # (B, C, L, H, W)
        lp = logits.float().log_softmax(2).gather(2, x.unsqueeze(2)).squeeze(2)  # (B, C, H, W)
        return lp.flatten(1).sum(1)


SPEC = DataSpec((3, 4, 4), 4)


def data(n=64):
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randint(0, 4, (n, *SPEC.shape), generator=g), SPEC, name="toy")


def model():
    torch.manual_seed(0)
    return TinyConv(SPEC, TinyConvConfig())


def cfg(**kw):
    base = dict(steps=6, batch_size=8, lr=0.01, eval_every=3, progress=False, tensorboard=False,
                seed=3, device="cpu")
    return TrainConfig(**{**base, **kw})


def weights(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def resumed_run(tmp_path, **opts):
    """Three steps, a new process (Trainer) resuming from the checkpoint, three more."""
    train = data()
    Trainer(model(), train, None, cfg(steps=3, **opts), out=tmp_path).fit()
    again = Trainer(model(), train, None, cfg(**opts), out=tmp_path)
    again.fit(resume=True)
    assert again.step == 6
    return again


def assert_plain_checkpoint(run_dir, m):
    stored = load_state(run_dir / LAST)["model"]
    assert set(stored) == set(m.state_dict())  # no "_orig_mod." or other wrapper prefixes
    assert all(t.is_contiguous() for t in stored.values())


def test_amp_bf16_runs_on_the_cpu_and_resumes_exactly(tmp_path):
    full = Trainer(model(), data(), None, cfg(amp="bf16"), out=tmp_path / "a")
    full.fit()
    assert full.amp_dtype == torch.bfloat16 and full.model.seen["dtype"] == torch.bfloat16
    assert not full.scaler.is_enabled()  # bf16 keeps fp32's exponent range: nothing to scale
    again = resumed_run(tmp_path / "b", amp="bf16")
    for k, v in weights(full.model).items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    assert_plain_checkpoint(tmp_path / "b", again.model)


def test_amp_off_and_auto_stay_fp32_on_the_cpu():
    for amp in ("off", "auto"):
        t = Trainer(model(), data(), None, cfg(amp=amp, steps=1))
        t.fit()
        assert t.amp_dtype is None and t.model.seen["dtype"] == torch.float32


def test_channels_last_converts_weights_and_batches_and_stores_plain_tensors(tmp_path):
    plain = Trainer(model(), data(), None, cfg(), out=tmp_path / "a")
    plain.fit()
    full = Trainer(model(), data(), None, cfg(channels_last=True), out=tmp_path / "b")
    full.fit()
    conv = full.model.net[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert full.model.seen["channels_last"] and not plain.model.seen["channels_last"]
    for k, v in weights(plain.model).items():  # the same arithmetic in another layout
        torch.testing.assert_close(full.model.state_dict()[k], v, rtol=1e-4, atol=1e-5)
    again = resumed_run(tmp_path / "c", channels_last=True)
    for k, v in weights(full.model).items():
        torch.testing.assert_close(again.model.state_dict()[k], v, rtol=0, atol=0)
    assert_plain_checkpoint(tmp_path / "c", again.model)
    for p, state in again.optimizer.state.items():  # the moments follow their parameter's layout
        assert state["exp_avg"].stride() == p.stride()


def test_cli_passes_the_speed_options_to_the_loop(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "pixelcnn", "--data", "digits", "--represent", "binary", "--steps", "2",
                 "--batch-size", "16", "--eval-every", "0", "--samples", "0", "--no-test",
                 "--no-progress", "--no-tensorboard", "--hidden", "8", "--num-layers", "1",
                 "--amp", "bf16", "--channels-last", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    stored = load_state(out / LAST)
    assert stored["train_config"]["amp"] == "bf16" and stored["train_config"]["channels_last"]
    assert stored["train_config"]["compile"] is False
    assert all(t.is_contiguous() for t in stored["model"].values())


def test_compile_failure_is_a_clear_error_not_a_silent_fallback(monkeypatch):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no working C++ compiler (simulated)")

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=broken_backend))
    t = Trainer(model(), data(), None, cfg(compile=True, steps=1))
    with pytest.raises(ConfigError, match=r"--compile: torch.compile failed.*train without --compile"):
        t.fit()


@pytest.mark.slow  # inductor compiles forward and backward: 16 s on 2 idle cores with a cold
# cache, 40 s on one busy core, 3 s with a warm cache
def test_compile_trains_stores_plain_state_dicts_and_resumes(tmp_path):
    torch._dynamo.reset()
    eager = Trainer(model(), data(), None, cfg(), out=tmp_path / "a")
    eager.fit()
    full = Trainer(model(), data(), None, cfg(compile=True), out=tmp_path / "b")
    full.fit()
    assert full.loss_fn != full.model.loss  # the compiled wrapper ran, the module is unwrapped
    assert_plain_checkpoint(tmp_path / "b", full.model)
    for k, v in weights(eager.model).items():  # compiled kernels, the same function
        torch.testing.assert_close(full.model.state_dict()[k], v, rtol=1e-4, atol=1e-5)
    again = resumed_run(tmp_path / "c", compile=True)
    for k, v in weights(full.model).items():
        torch.testing.assert_close(again.model.state_dict()[k], v, rtol=0, atol=0)
    assert_plain_checkpoint(tmp_path / "c", again.model)
