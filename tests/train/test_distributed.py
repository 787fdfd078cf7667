"""Data-parallel training (unsup.train.distributed): two CPU processes under gloo against one.

Two worker processes are spawned once per module (``ddp`` fixture) and run every distributed case;
each test then compares their results with the same case run here in a single process. A last
test runs the CLI under ``torchrun``.
"""

import contextlib
import csv
import io
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_trainer import Tiny, TinyConfig, make_data
from torch import nn

import unsup
import unsup.train.trainer as trainer_mod
from unsup.cli import main
from unsup.data.base import DataSpec, TensorDataset
from unsup.errors import ConfigError, TrainingDiverged
from unsup.models.base import Model
from unsup.train import BEST, LAST, TrainConfig, Trainer, distributed, evaluate, load_run, load_state

WORLD = 2


def binary_data(n: int, seed: int = 0) -> TensorDataset:
    """Binary 4x4 images with a pixel-dependent bias (something for MADE to learn)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.linspace(0.1, 0.9, 16).view(1, 1, 4, 4)
    return TensorDataset((torch.rand(n, 1, 4, 4, generator=g) < p).long(), DataSpec((1, 4, 4), 2),
                         name="bits")


def cfg(**kw) -> TrainConfig:
    base = dict(steps=6, batch_size=32, lr=1e-2, eval_every=3, log_every=1, progress=False,
                tensorboard=False, seed=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def made(data: TensorDataset):
    torch.manual_seed(0)
    return unsup.create("made", data=data, hidden=[32])


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train_made(batch_size: int, out: Path | None = None) -> dict:
    """MADE (deterministic) with warm-up, cosine decay, clipping and EMA: weights and the log."""
    t = Trainer(made(binary_data(256)), binary_data(256), binary_data(40, seed=1),
                cfg(batch_size=batch_size, warmup=2, schedule="cosine", clip=1.0, ema=0.9), out=out)
    t.fit()
    return {"model": weights(t.model), "ema": weights(t.ema.model),
            "train_loss": [r["loss"] for r in t.history if r["split"] == "train"],
            "best_val": t.best_val}


def train_gan() -> dict:
    """A WGAN-GP (two phases, a double backward for the penalty) for 6 steps: its weights."""
    points = unsup.data.load("gaussian-grid", "train", n=128)
    torch.manual_seed(0)
    model = unsup.create("gan", points, preset="wgan-gp", hidden=16, latent=4, n_critic=2,
                         g_norm="none")
    before = weights(model)
    t = Trainer(model, points, None, cfg(batch_size=32, lr=1e-2))
    t.fit()
    return {"before": before, "after": weights(t.model)}


class TinySE(Tiny):
    """Tiny with an importance-sampling-style ``log_prob_with_se`` (deterministic here)."""

    def log_prob_with_se(self, x, y=None):
        return self.log_prob(x), 0.1 + x.flatten(1).float().mean(1)


class TwoTerms(Model):
    """A model that is not a likelihood model: evaluation averages its loss terms."""

    Config = TinyConfig

    def __init__(self, spec, config):
        super().__init__(spec, config)
        self.w = nn.Parameter(torch.tensor(0.5))

    def loss(self, batch):
        x = batch["x"].float().flatten(1)
        return {"loss": (x.mean(1) * self.w).mean(), "aux": x.sum(1).mean()}


class Gathering(TwoTerms):
    """A loss over the batches of every process (as contrastive negatives are gathered)."""

    loss_gathers = True

    def loss(self, batch):
        from unsup.models.representation.contrastive import gather

        x = batch["x"].float().flatten(1).mean(1)
        return {"loss": gather(x, grad=False).mean() * self.w}


def eval_cases() -> dict[str, dict]:
    """``evaluate`` on 150 examples in batches of 32: 5 batches, the last of 22 (rank 0 gets 3
    batches, rank 1 gets 2), and in cases where a rank gets no batch at all."""
    data = binary_data(150, seed=2)
    torch.manual_seed(0)
    tiny_se = TinySE(data.spec, TinyConfig(dropout=0.0))
    return {
        "made": evaluate(made(data), data, 32),
        "made-3-batches": evaluate(made(data), data, 32, max_batches=3),
        "made-1-batch": evaluate(made(data), data, 256),
        "made-validation": evaluate(made(data), data, 32, validation=True),
        "with-se": evaluate(tiny_se, data, 32),
        "loss-terms": evaluate(TwoTerms(data.spec, TinyConfig()), data, 32),
        "gathering": evaluate(Gathering(data.spec, TinyConfig()), data, 32),
    }


def noisy_trainer(out: Path | None) -> Trainer:
    """Dropout and dynamic binarisation: the per-rank noise must resume exactly too."""
    data = make_data()
    torch.manual_seed(0)
    model = Tiny(data.spec, TinyConfig(dropout=0.3))
    return Trainer(model, data, None, cfg(steps=12, batch_size=16, eval_every=4, ema=0.9), out=out)


def interrupted_then_resumed(out: Path) -> dict[str, torch.Tensor]:
    part = noisy_trainer(out)
    draw, calls = part.train_set.batch, []

    def interrupt_at_step_10(index, generator=None):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return draw(index, generator)

    part.train_set = type("Interrupted", (), {"batch": staticmethod(interrupt_at_step_10)})()
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    resumed = noisy_trainer(out)
    torch.manual_seed(999)  # the checkpoint's RNG (rank 0) and (seed, rank, step) (rank 1) win
    resumed.fit()
    return weights(resumed.model)


class WithBatchNorm(Model):
    """A model with a torch.nn batch-norm layer (for --sync-bn)."""

    Config = TinyConfig

    def __init__(self, spec, config):
        super().__init__(spec, config)
        self.bn = nn.BatchNorm1d(spec.dims)

    def loss(self, batch):
        return {"loss": self.bn(batch["x"].float().flatten(1)).pow(2).mean()}


def contrast_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of two views of a global batch of 8 (4 per process)."""
    g = torch.Generator().manual_seed(7)
    return torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)


def contrastive_case(rank: int) -> dict:
    """NT-Xent on this process's half of the batch with negatives gathered from both; keys
    gathered for a queue; and unequal halves refused."""
    from unsup.models.representation.contrastive import gather, nt_xent

    z1, z2 = (z[4 * rank: 4 * rank + 4].clone().requires_grad_(True) for z in contrast_pairs())
    loss, accuracy = nt_xent(z1, z2, 0.5)
    loss.backward()
    out = {"loss": loss.detach(), "grad1": z1.grad, "grad2": z2.grad,
           "keys": gather(torch.arange(3) + 10 * rank, grad=False)}
    with pytest.raises(ConfigError) as e:
        gather(torch.zeros(2 + rank, 3))
    out["uneven"] = str(e.value)
    return out


def cpc_images():
    """A tiny CPC-on-images model (layer norm: no batch statistics) and 4 images."""
    from unsup.data.base import DataSpec

    torch.manual_seed(0)
    model = unsup.create("cpc-image", DataSpec((1, 8, 8), None, None, "image"), width=4, depth=2,
                         norm="layer", patch=4, steps_ahead=1, context=4, context_layers=1)
    return model, torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))


def cpc_image_case(rank: int) -> dict:
    """CPC on images, this process's 2 of 4 images, patches gathered from both processes."""
    model, x = cpc_images()
    out = model.loss({"x": x[2 * rank: 2 * rank + 2]})
    out["loss"].backward()
    return {"loss": out["loss"].detach(), "grad": model.predictors["down"].weight.grad}


def cpc_audio_case(rank: int) -> dict:
    """CPC on audio, trained on this process's 2 of 4 clips: the negatives each process draws, as
    (own clip, negative's clip) in the global batch, for mixed and same-speaker negatives."""
    from unsup.data.base import DataSpec

    x = torch.randn(4, 400, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 1, 0])
    out = {}
    for mode in ("all", "speaker"):
        torch.manual_seed(0)
        model = unsup.create("cpc-audio", DataSpec((400,), None, 2, "sequence"), channels=8, strides=[4, 2],
                             kernels=[8, 4], context=6, steps_ahead=2, num_negatives=64, negatives=mode)
        drawn: list = []

        def recorded(clip, *a, drawn=drawn, sample=model.sample_negatives):
            drawn.append((clip + 2 * rank, sample(clip, *a)))
            return drawn[-1][1]

        model.sample_negatives = recorded
        loss = model.loss({"x": x[2 * rank: 2 * rank + 2], "y": y[2 * rank: 2 * rank + 2]})["loss"]
        loss.backward()
        own = torch.cat([c[:, None].expand_as(n) for c, n in drawn]).flatten()
        out[mode] = (own, torch.cat([n for _, n in drawn]).flatten() // model.T, float(loss))
    return out


def _worker(rank: int, tmp: str) -> None:
    """One of the ``WORLD`` processes: every distributed case; results to ``tmp/rank{rank}.pt``."""
    tmp_path = Path(tmp)
    torch.set_num_threads(1)
    # what torchrun puts in the environment; setup() finds it and joins the (gloo) process group
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    ctx, device = distributed.setup(torch.device("cpu"))
    assert (ctx.rank, ctx.world_size, device.type) == (rank, WORLD, "cpu") and dist.get_backend() == "gloo"
    saves: list[str] = []
    save_state = trainer_mod.save_state

    def counting_save_state(path, state):
        saves.append(Path(path).name)
        save_state(path, state)

    trainer_mod.save_state = counting_save_state
    r: dict = {}
    try:
        r["even"] = train_made(32, out=tmp_path / "made")
        r["uneven"] = train_made(31)
        r["saves"] = saves
        r["eval"] = eval_cases()
        full = noisy_trainer(tmp_path / "noisy-full")
        full.fit()
        r["noisy_full"] = weights(full.model)
        r["noisy_resumed"] = interrupted_then_resumed(tmp_path / "noisy-resumed")
        noisy_trainer(None)
        r["noise"] = torch.rand(4)  # what dropout would draw first on this rank
        r["time_budget_steps"] = Trainer(made(binary_data(256)), binary_data(256), None,
                                         cfg(steps=None, time=0.3)).fit()["steps"]
        data = make_data()
        torch.manual_seed(0)
        r["errors"] = {}
        with pytest.raises(TrainingDiverged) as e:  # rank 1 alone produces a NaN, at step 4
            Trainer(Tiny(data.spec, TinyConfig(nan_after=3 if rank == 1 else -1)), data, None,
                    cfg(steps=8, batch_size=16)).fit()
        r["errors"]["nan"] = str(e.value)
        for name, model, kw in (("sync_bn", WithBatchNorm(data.spec, TinyConfig()), {"sync_bn": True}),
                                ("batch", made(data), {"batch_size": 1})):
            with pytest.raises(ConfigError) as e:
                Trainer(model, data, None, cfg(**kw))
            r["errors"][name] = str(e.value)
        nice_data = binary_data(64)
        torch.manual_seed(0)
        nice = unsup.create("nice", data=nice_data, hidden=16)  # has parameters that get no gradient
        r["nice_steps"] = Trainer(nice, nice_data, None, cfg(steps=3, batch_size=8)).fit()["steps"]
        r["gan"] = train_gan()
        r["contrastive"] = contrastive_case(rank)
        r["cpc_audio"] = cpc_audio_case(rank)
        r["cpc_image"] = cpc_image_case(rank)
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stderr):
            r["cli_code"] = main(["train", "made", "--data", "toy-1d", "--hidden", "16", "--steps", "4",
                                  "--eval-every", "2", "--batch-size", "33", "--device", "cpu",
                                  "--out", str(tmp_path / "cli"), "--no-progress", "--no-tensorboard",
                                  "--samples", "0", "--sync-bn"])
        r["cli_output"] = stderr.getvalue()
    finally:
        torch.save(r, tmp_path / f"rank{rank}.pt")
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """The results of every distributed case, one dict per rank, and the directory they ran in."""
    tmp = tmp_path_factory.mktemp("ddp")
    with socket.socket() as sock:  # a free port for the rendezvous (MASTER_PORT, as torchrun sets)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.MonkeyPatch.context() as env:  # inherited by the workers
        env.setenv("MASTER_ADDR", "127.0.0.1")
        env.setenv("MASTER_PORT", str(port))
        mp.spawn(_worker, args=(str(tmp),), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)], tmp


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], **tol) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], **tol, msg=k)


@pytest.mark.parametrize("batch_size", [32, 31], ids=["even-slices", "uneven-slices-16-15"])
def test_two_processes_reach_the_weights_of_one_process_at_the_same_global_batch(ddp, batch_size):
    results, _ = ddp
    ranks = [r["even" if batch_size == 32 else "uneven"] for r in results]
    one = train_made(batch_size)
    moved = one["model"]["layers.0.weight"] - made(binary_data(256)).state_dict()["layers.0.weight"]
    assert moved.abs().max() > 1e-2  # the tolerance below is far smaller than what training does
    assert_close(ranks[0]["model"], ranks[1]["model"], rtol=0, atol=0)  # DDP keeps ranks in sync
    assert_close(one["model"], ranks[0]["model"], rtol=1e-5, atol=1e-6)
    assert_close(one["ema"], ranks[0]["ema"], rtol=1e-5, atol=1e-6)
    # the logged training losses are global-batch means, as in one process
    torch.testing.assert_close(torch.tensor(ranks[0]["train_loss"]), torch.tensor(one["train_loss"]))
    assert ranks[0]["best_val"] == pytest.approx(one["best_val"], rel=1e-6)


def test_only_rank_0_writes_and_checkpoints_load_in_one_process(ddp):
    results, tmp = ddp
    assert results[1]["saves"] == [] and {BEST, LAST} <= set(results[0]["saves"])
    run = tmp / "made"
    assert {BEST, LAST, "metrics.csv"} <= {p.name for p in run.iterdir()}
    state = load_state(run / LAST)
    assert state["step"] == 6
    # the unwrapped model's state_dict: no "module." prefix, loads into a fresh single-process model
    model = made(binary_data(256))
    model.load_state_dict(state["model"])
    assert_close(weights(model), results[0]["even"]["model"], rtol=0, atol=0)
    with open(run / "metrics.csv") as f:
        rows = [(r["step"], r["split"], r["metric"]) for r in csv.DictReader(f)]
    assert len(rows) == len(set(rows)) and ("6", "train", "loss") in rows
    # ... and the run continues in one process
    data = binary_data(256)
    resumed = Trainer(made(data), data, binary_data(40, seed=1), cfg(steps=8, batch_size=32, warmup=2,
                                                                     schedule="cosine", clip=1.0, ema=0.9),
                      out=run)
    assert resumed.fit()["steps"] == 8


@pytest.mark.parametrize("case", ["made", "made-3-batches", "made-1-batch", "made-validation", "with-se",
                                  "loss-terms"])
def test_sharded_evaluation_counts_every_example_once(ddp, case):
    results, _ = ddp
    one = eval_cases()[case]
    for r in results:
        got = r["eval"][case]
        assert got.keys() == one.keys() and got["n"] == one["n"]
        for k, v in one.items():
            assert got[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    assert one["n"] == {"made-3-batches": 96}.get(case, 150)


def test_a_loss_that_gathers_is_evaluated_on_equal_full_batches_on_every_process(ddp):
    """150 examples in batches of 32: 4 full batches, 2 per process (one process scores all 150,
    its last batch of 22 included); every process gets the same figure, with no mismatched gather."""
    results, _ = ddp
    data = binary_data(150, seed=2)
    x = data.x[:128].float().flatten(1).mean(1)
    expected = float(x.view(4, 32).mean(1).mean()) * 0.5  # mean of the 4 full batches' losses
    for r in results:
        assert r["eval"]["gathering"]["n"] == 128
        assert r["eval"]["gathering"]["loss"] == pytest.approx(expected, rel=1e-6)
    assert eval_cases()["gathering"]["n"] == 150


def test_resume_under_ddp_repeats_the_uninterrupted_run_with_noise_of_its_own_per_rank(ddp):
    results, _ = ddp
    for r in results:
        assert_close(r["noisy_resumed"], r["noisy_full"], rtol=0, atol=0)
    assert_close(results[0]["noisy_full"], results[1]["noisy_full"], rtol=0, atol=0)
    assert not torch.equal(results[0]["noise"], results[1]["noise"])  # no rank repeats another's noise


def test_ranks_agree_on_when_to_stop_and_on_errors(ddp):
    results, _ = ddp
    assert results[0]["time_budget_steps"] == results[1]["time_budget_steps"] > 0
    for r in results:  # a NaN on rank 1 stops both ranks at the same step, not one of them
        assert "loss is nan at step 4" in r["errors"]["nan"]
        assert "SyncBatchNorm" in r["errors"]["sync_bn"] or "GPUs only" in r["errors"]["sync_bn"]
        assert "global batch" in r["errors"]["batch"]
        assert r["nice_steps"] == 3  # parameters without gradients (NICE) do not stall DDP


def test_sync_bn_in_one_process_is_a_no_op_with_a_warning():
    data = make_data()
    model = WithBatchNorm(data.spec, TinyConfig())
    with pytest.warns(UserWarning, match="single process"):
        t = Trainer(model, data, None, cfg(sync_bn=True))
    assert isinstance(t.model.bn, nn.BatchNorm1d) and not isinstance(t.model.bn, nn.SyncBatchNorm)


def test_cli_under_ddp_prints_and_writes_once_and_evaluates_the_whole_test_set(ddp):
    results, tmp = ddp
    assert [r["cli_code"] for r in results] == [0, 0]
    printed = results[0]["cli_output"]
    assert "trained 4 steps" in printed and "nothing to synchronise" in printed
    assert results[1]["cli_output"] == ""
    out = tmp / "cli"
    assert {BEST, LAST, "metrics.csv", "train.json", "test.json"} <= {f.name for f in out.iterdir()}
    model, meta = load_run(out)  # in this single process: the unwrapped weights
    test = unsup.data.load("toy-1d", "test")
    result = json.loads((out / "test.json").read_text())
    assert meta["step"] == 4 and result["n"] == len(test)
    assert result["nll_nats"] == pytest.approx(evaluate(model, test, 33 * 4)["nll"], rel=1e-6)


def test_torchrun_runs_the_cli(tmp_path):
    out = tmp_path / "run"
    # `python -m torch.distributed.run` is the `torchrun` script itself, present wherever torch is
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
           "-m", "unsup.cli", "train", "made",
           "--data", "toy-1d", "--hidden", "16", "--steps", "2", "--eval-every", "0", "--batch-size", "8",
           "--out", str(out), "--no-progress", "--no-tensorboard", "--no-test"]
    p = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "data-parallel: 2 processes, cpu; global batch 8" in p.stderr
    assert load_run(out)[1]["step"] == 2


def test_rank_slices_partition_the_global_batch_and_weights_restore_its_mean():
    for n, world in [(32, 2), (31, 2), (7, 3), (5, 5)]:
        ranks = [distributed.Distributed(rank, rank, world) for rank in range(world)]
        parts = [r.local_range(n) for r in ranks]
        assert [lo for lo, _ in parts] == [0] + [hi for _, hi in parts[:-1]] and parts[-1][1] == n
        sizes = [hi - lo for lo, hi in parts]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
        # DDP's average of the weighted slice means is the global mean: (1/W) sum_r (b_r W / n) m_r
        x = torch.randn(n, dtype=torch.float64)
        ddp_mean = sum((hi - lo) * world / n * x[lo:hi].mean() for lo, hi in parts) / world
        assert float(ddp_mean) == pytest.approx(float(x.mean()), rel=1e-12)


def test_a_gan_trains_its_two_phases_in_step_on_every_process(ddp):
    results, _ = ddp
    ranks = [r["gan"] for r in results]
    assert_close(ranks[0]["after"], ranks[1]["after"], rtol=0, atol=0)  # DDP keeps ranks in sync
    for player in ("generator.", "discriminator."):
        assert any(not torch.equal(ranks[0]["before"][k], ranks[0]["after"][k])
                   for k in ranks[0]["before"] if k.startswith(player))


def test_contrastive_negatives_are_gathered_from_every_process_with_their_gradients(ddp):
    from unsup.models.representation.contrastive import nt_xent

    results, _ = ddp
    z1, z2 = (z.clone().requires_grad_(True) for z in contrast_pairs())
    loss, _ = nt_xent(z1, z2, 0.5)  # one process, the whole batch
    loss.backward()
    parts = [r["contrastive"] for r in results]
    # the data-parallel mean of the per-process losses and gradients is the whole batch's
    torch.testing.assert_close(sum(p["loss"] for p in parts) / WORLD, loss.detach())
    for name, z in (("grad1", z1), ("grad2", z2)):
        torch.testing.assert_close(torch.cat([p[name] for p in parts]) / WORLD, z.grad)
    assert all(p["keys"].tolist() == [0, 1, 2, 10, 11, 12] for p in parts)
    assert all("divisible by 2" in p["uneven"] and "[2, 3]" in p["uneven"] for p in parts)


def test_cpc_audio_draws_negatives_from_every_process_clips(ddp):
    results, _ = ddp
    y = torch.tensor([0, 1, 1, 0])
    for rank, r in enumerate(results):
        own, neg, loss = r["cpc_audio"]["all"]
        assert set(own.tolist()) == {2 * rank, 2 * rank + 1} and set(neg.tolist()) == {0, 1, 2, 3}
        assert math.isfinite(loss)
        own, neg, _ = r["cpc_audio"]["speaker"]  # the other process's clip of the same speaker too
        assert torch.equal(y[own], y[neg]) and set(neg.tolist()) == {0, 1, 2, 3}


def test_cpc_image_candidates_are_every_process_patches(ddp):
    results, _ = ddp
    model, x = cpc_images()
    loss = model.loss({"x": x})["loss"]  # one process, the whole batch
    loss.backward()
    parts = [r["cpc_image"] for r in results]
    # equal numbers of predictions per process: the mean of the losses is the whole batch's
    torch.testing.assert_close(sum(p["loss"] for p in parts) / WORLD, loss.detach())
    torch.testing.assert_close(sum(p["grad"] for p in parts) / WORLD, model.predictors["down"].weight.grad)
