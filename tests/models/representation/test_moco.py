"""MoCo: the key encoder follows the query encoder by the momentum rule and gets no gradient, the
queue is a FIFO of past keys, shuffled batch norm returns keys in order, and a run resumes exactly
with its queue."""

import pytest
import torch
import torch.nn.functional as F

import unsup
from unsup.data.base import DataSpec, TensorDataset
from unsup.errors import ConfigError
from unsup.train import TrainConfig, Trainer

FASHION = DataSpec((1, 12, 12), 256, 10, "image")
TINY = {"width": 4, "depth": 2, "head_hidden": 8, "dim": 4, "queue": 10}


def moco(**options):
    torch.manual_seed(0)
    return unsup.create("moco", FASHION, **{**TINY, **options})


def images(n, seed=0):
    return torch.randint(0, 256, (n, 1, 12, 12), generator=torch.Generator().manual_seed(seed))


def test_the_key_network_starts_as_a_copy_and_follows_by_momentum():
    model = moco(key_momentum=0.9)
    pairs = model._pairs()
    assert pairs and all(torch.equal(t, x) for t, x in pairs)
    before = [x.detach().clone() for _, x in pairs]
    with torch.no_grad():
        for theta, _ in pairs:
            theta.add_(torch.randn_like(theta))
    model.momentum_update()
    for (theta, xi), old in zip(pairs, before, strict=True):
        torch.testing.assert_close(xi, 0.9 * old + 0.1 * theta)
    model.config.key_momentum = 0.0  # m = 0: the key network is the query network
    model.momentum_update()
    assert all(torch.equal(t, x) for t, x in pairs)


def test_keys_get_no_gradient_and_the_queries_do():
    model = moco().train()
    model.loss({"x": images(8)})["loss"].backward()
    assert all(x.grad is None and not x.requires_grad for _, x in model._pairs())
    assert all(t.grad is not None for t, _ in model._pairs())


def test_the_queue_is_first_in_first_out_with_wrap_around():
    model = moco(queue=10)
    keys = [F.normalize(torch.randn(n, 4), dim=1) for n in (4, 4, 4)]
    for k in keys:
        model.enqueue(k)
    # 12 keys into 10 slots: the third batch fills slots 8-9 and wraps round to overwrite 0-1
    torch.testing.assert_close(model.queue[:2], keys[2][2:])
    torch.testing.assert_close(model.queue[2:4], keys[0][2:])
    torch.testing.assert_close(model.queue[4:8], keys[1])
    torch.testing.assert_close(model.queue[8:], keys[2][:2])
    assert int(model.queue_ptr) == 2
    model.enqueue(F.normalize(torch.randn(15, 4), dim=1))  # more than K: the newest K stay
    assert int(model.queue_ptr) == 2


def test_a_training_step_enqueues_the_batch_keys_and_validation_changes_nothing():
    model = moco(queue=10).train()
    x = images(6)
    model.loss({"x": x})
    assert int(model.queue_ptr) == 6
    model.eval()
    queue, keys = model.queue.clone(), [p.clone() for _, p in model._pairs()]
    with torch.no_grad():
        model.loss({"x": x})
    assert torch.equal(model.queue, queue) and int(model.queue_ptr) == 6
    assert all(torch.equal(a, b) for a, (_, b) in zip(keys, model._pairs(), strict=True))


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_shuffled_keys_come_back_in_the_order_of_their_images(groups):
    model = moco(shuffle_groups=groups).eval()  # running statistics: the shuffle is invisible
    views = torch.rand(7, 1, 12, 12)
    with torch.no_grad():
        want = F.normalize(model.key_head(model.key_encoder(views)), dim=1)
    torch.testing.assert_close(model.keys(views), want)


def test_the_loss_scores_each_query_against_its_key_and_the_queue():
    model = moco(augment="none", temperature=0.5, key_momentum=0.0).train()
    x = images(5)
    queue = model.queue.clone()
    torch.manual_seed(2)
    got = model.loss({"x": x})
    torch.manual_seed(2)
    q = model.queries(model.images(x))
    k = model.keys(model.images(x))
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], 1) / 0.5
    torch.testing.assert_close(got["loss"], F.cross_entropy(logits, torch.zeros(5, dtype=torch.long)))


def test_validation_matches_views_within_the_batch_whatever_the_queue_holds():
    model = moco().eval()
    x = images(6)
    with torch.no_grad():
        torch.manual_seed(1)
        a = model.loss({"x": x})["loss"]
        model.queue.copy_(F.normalize(torch.randn_like(model.queue), dim=1))
        torch.manual_seed(1)
        b = model.loss({"x": x})["loss"]
    assert torch.equal(a, b)


def test_a_resumed_run_repeats_the_uninterrupted_one_queue_included(tmp_path):
    data = TensorDataset(images(40), FASHION, y=torch.zeros(40, dtype=torch.long))

    def run(steps, out, resume=False):
        cfg = TrainConfig(steps=steps, batch_size=8, eval_every=2, progress=False, tensorboard=False,
                          device="cpu", seed=0)
        t = Trainer(moco(), data, None, cfg, out=out)
        t.fit(resume=resume)
        return t.model.state_dict()

    whole = run(6, tmp_path / "whole")
    run(4, tmp_path / "part")
    resumed = run(6, tmp_path / "part", resume=True)
    assert whole.keys() == resumed.keys() and "queue" in whole
    assert any(name.startswith("key_encoder.") for name in whole)
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], msg=name)


@pytest.mark.parametrize("options, words", [({"queue": 0}, ["queue", "0"]),
                                            ({"key_momentum": 1.0}, ["key_momentum", "[0, 1)"]),
                                            ({"shuffle_groups": 0}, ["shuffle_groups"])])
def test_bad_options_are_named(options, words):
    with pytest.raises(ConfigError) as e:
        moco(**options)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_presets_v1_and_paper():
    v1 = unsup.models.config_for("moco", "v1")
    assert (v1.augment, v1.head, v1.temperature) == ("moco-v1", "linear", 0.07)
    paper = unsup.models.config_for("moco", "paper")
    assert (paper.queue, paper.key_momentum, paper.augment, paper.head) == (65536, 0.999, "moco-v2", "mlp")
