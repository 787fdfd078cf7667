"""Which checkpoint a run keeps (``best.safetensors``): the model's rule, not the loop's.

Likelihood (and every other) models keep the lowest validation loss; self-supervised representation
models the highest ``knn_accuracy`` of a leave-one-out cosine kNN probe on a labelled validation
slice, or the last checkpoint on unlabelled data; the supervised reference its lowest validation
error. The decision survives a resume and is the same on every rank.
"""

import csv
import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import unsup
import unsup.train.trainer as trainer_mod
from unsup.data import load
from unsup.data.base import DataSpec, TensorDataset
from unsup.models.base import LikelihoodModel, Selection
from unsup.models.representation.base import (
    KNN_EXAMPLES,
    RepresentationModel,
    knn_accuracy,
    labelled_slice,
)
from unsup.train import BEST, LAST, TrainConfig, Trainer, distributed, load_state, save_state

TINY = {"width": 4, "depth": 2, "head_hidden": 8, "dim": 4}


def cfg(**kw) -> TrainConfig:
    base = dict(steps=8, batch_size=32, lr=1e-2, eval_every=2, log_every=2, progress=False,
                tensorboard=False, seed=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def digits():
    """The embedded 8x8 digits: a small training set and the labelled validation split (144)."""
    train, val = load("digits", "train"), load("digits", "val")
    return train.subset(torch.arange(256), "train"), val


def simclr(spec: DataSpec) -> RepresentationModel:
    torch.manual_seed(0)
    return unsup.create("simclr", spec, **TINY)


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def unlabelled(ds: TensorDataset) -> TensorDataset:
    return TensorDataset(ds.x, ds.spec, name=ds.name, split=ds.split)


# --- the kNN probe --------------------------------------------------------------------------

def test_knn_accuracy_is_the_leave_one_out_cosine_vote_computed_by_hand():
    # six directions (the lengths differ: cosine ignores them); each point's k most similar
    # others vote, a tie goes to the smaller label
    angles = torch.tensor([0.0, 10.0, 20.0, 90.0, 100.0, 200.0]) * math.pi / 180
    lengths = torch.tensor([1.0, 5.0, 0.3, 2.0, 1.0, 7.0])
    f = torch.stack([angles.cos(), angles.sin()], 1) * lengths[:, None]
    y = torch.tensor([0, 0, 1, 1, 1, 0])
    # k = 2, the two nearest by angle (self excluded) and their labels:
    #   0 deg: 10, 20   -> 0, 1 -> tie -> 0  right
    #  10 deg: 0, 20    -> 0, 1 -> tie -> 0  right
    #  20 deg: 10, 0    -> 0, 0 -> 0         wrong (1)
    #  90 deg: 100, 20  -> 1, 1 -> 1         right
    # 100 deg: 90, 20   -> 1, 1 -> 1         right
    # 200 deg: 100, 90  -> 1, 1 -> 1         wrong (0)
    assert knn_accuracy(f, y, k=2) == pytest.approx(4 / 6)
    # k = 1 on 0, 20, 90, 100 deg: nearest 20, 0, 100, 90 -> labels 1, 0, 1, 1 against 0, 1, 1, 1
    assert knn_accuracy(f[[0, 2, 3, 4]], torch.tensor([0, 1, 1, 1]), k=1) == pytest.approx(2 / 4)
    # k beyond the others: all 5 vote, and three-three labels make every point's others a
    # majority of the other label
    assert knn_accuracy(f, y, k=50) == 0.0
    assert knn_accuracy(f, torch.tensor([0, 0, 0, 0, 0, 1]), k=50) == pytest.approx(5 / 6)


def test_knn_accuracy_matches_scikit_learn_leave_one_out_in_blocks():
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (300,), generator=g)
    f = torch.randn(300, 8, generator=g) + 1.5 * nn.functional.one_hot(y, 8).float()
    want = 0
    for i in range(len(f)):  # leave-one-out with scikit-learn's brute-force cosine vote
        rest = torch.cat([torch.arange(i), torch.arange(i + 1, len(f))])
        clf = KNeighborsClassifier(n_neighbors=20, metric="cosine", algorithm="brute")
        clf.fit(f[rest].double().numpy(), y[rest].numpy())
        want += int(clf.predict(f[i:i + 1].double().numpy())[0] == int(y[i]))
    got = knn_accuracy(f, y)
    assert got == pytest.approx(want / len(f))
    assert knn_accuracy(f, y, chunk=7) == got  # the similarity blocks change nothing
    assert 0.5 < got < 1.0
    with pytest.raises(ValueError):
        knn_accuracy(f[:1], y[:1])


def test_the_slice_is_the_first_validation_examples_with_labels(digits):
    _, val = digits
    x, y = labelled_slice(val)
    assert len(x) == min(KNN_EXAMPLES, len(val)) and torch.equal(y, val.y[:len(x)])
    assert len(labelled_slice(val, 10)[0]) == 10
    assert labelled_slice(unlabelled(val)) is None
    model = simclr(val.spec)
    assert model.checkpoint_selection(val) == Selection("knn_accuracy", higher_is_better=True)
    assert model.checkpoint_selection(unlabelled(val)).metric is None
    # the score is the probe of the encoder's features, in eval mode, and leaves the mode alone
    model.train()
    with torch.no_grad():
        model.eval()
        h = model.encode(x)
        model.train()
    assert model.validation_scores(val, 32) == {"knn_accuracy": pytest.approx(knn_accuracy(h, y))}
    assert model.training
    assert model.validation_scores(unlabelled(val), 32) == {}


def test_cpc_on_audio_selects_by_the_speaker_probe_too():
    torch.manual_seed(0)
    model = unsup.create("cpc-audio", DataSpec((400,), None, 3, "sequence"), channels=8, strides=[4, 2],
                         kernels=[8, 4], context=6, steps_ahead=2)
    g = torch.Generator().manual_seed(1)
    clips = TensorDataset(torch.randn(30, 400, generator=g), model.spec,
                          y=torch.arange(30) % 3, split="val")
    assert model.checkpoint_selection(clips) == Selection("knn_accuracy", higher_is_better=True)
    model.eval()
    with torch.no_grad():
        want = knn_accuracy(model.encode(clips.x), clips.y)
    assert model.validation_scores(clips, 8) == {"knn_accuracy": pytest.approx(want)}
    assert model.checkpoint_selection(unlabelled(clips)).metric is None


# --- the kept checkpoint ----------------------------------------------------------------------

SCORES = {2: 0.30, 4: 0.70, 6: 0.50, 8: 0.60}  # knn_accuracy by step: step 4 is the best


def scripted(monkeypatch, scores: dict[int, float], seen: dict[int, dict]) -> list:
    """Make the kNN score of the validation at step s ``scores[s]`` and record the validated weights
    (the EMA copy under --ema); returns a list to put the trainer in."""
    holder: list = []

    def validation_scores(self, val, batch_size):
        step = holder[-1].step
        seen[step] = weights(self)
        return {"knn_accuracy": scores[step]}

    monkeypatch.setattr(RepresentationModel, "validation_scores", validation_scores)
    return holder


@pytest.mark.parametrize("ema", [0.0, 0.9], ids=["weights", "ema"])
def test_best_holds_the_weights_of_the_highest_knn_accuracy(tmp_path, monkeypatch, digits, ema):
    train, val = digits
    seen: dict[int, dict] = {}
    holder = scripted(monkeypatch, SCORES, seen)
    t = Trainer(simclr(train.spec), train, val, cfg(ema=ema), out=tmp_path)
    holder.append(t)
    t.fit()
    best, last = load_state(tmp_path / BEST), load_state(tmp_path / LAST)
    assert best["step"] == 4 and last["step"] == 8
    assert t.best_val == pytest.approx(-0.70)  # stored lower-is-better: the negated accuracy
    assert best["best_val"] == pytest.approx(-0.70) and last["best_val"] == pytest.approx(-0.70)
    assert_same(seen[4], best["ema"] if ema else best["model"])
    assert not torch.equal(seen[4]["encoder.trunk.0.0.weight"], seen[8]["encoder.trunk.0.0.weight"])
    # knn_accuracy is a validation metric like the others, in the history and metrics.csv
    logged = {r["step"]: r["knn_accuracy"] for r in t.history if r["split"] == "val"}
    assert logged == pytest.approx(SCORES)
    with open(tmp_path / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val" and r["metric"] == "knn_accuracy"]
    assert {int(r["step"]): float(r["value"]) for r in rows} == pytest.approx(SCORES)


def test_a_real_run_keeps_the_checkpoint_whose_features_probe_best(tmp_path, digits):
    train, val = digits
    meta = {"model": "simclr", "model_config": dict(TINY), "spec": train.spec.to_dict()}
    t = Trainer(simclr(train.spec), train, val, cfg(lr=3e-2), out=tmp_path, meta=meta)
    t.fit()
    logged = {r["step"]: r["knn_accuracy"] for r in t.history if r["split"] == "val"}
    assert sorted(logged) == [2, 4, 6, 8] and all(0 <= v <= 1 for v in logged.values())
    first_best = max(logged, key=lambda s: (logged[s], -s))  # of equal scores the earlier stays
    best = load_state(tmp_path / BEST)
    assert best["step"] == first_best and t.best_val == pytest.approx(-logged[first_best])
    model = simclr(train.spec)
    model.load_state_dict(best["model"])  # the kept weights probe as well as logged
    assert model.validation_scores(val, 32)["knn_accuracy"] == pytest.approx(logged[first_best])
    # unsup eval / probe read best.safetensors through load_run
    loaded, info = unsup.train.load_run(tmp_path, "best")
    assert info["step"] == first_best and not loaded.training
    assert_same(weights(loaded), best["model"])


def test_without_labels_the_best_is_the_last(tmp_path, monkeypatch, digits):
    train, val = digits
    saved: list[tuple[int, str]] = []
    save = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self, name: (saved.append((self.step, name)),
                                                              save(self, name))[1])
    t = Trainer(simclr(train.spec), unlabelled(train), unlabelled(val), cfg(), out=tmp_path)
    t.fit()
    assert saved == [(s, n) for s in (2, 4, 6, 8) for n in (BEST, LAST)]  # every checkpoint
    best, last = load_state(tmp_path / BEST), load_state(tmp_path / LAST)
    assert best["step"] == last["step"] == 8
    assert_same(best["model"], last["model"])
    assert t.best_val == math.inf  # nothing compared
    assert all("knn_accuracy" not in r for r in t.history)
    assert all("loss" in r for r in t.history if r["split"] == "val")  # still validated
    assert "best = last checkpoint" in t.model.checkpoint_selection(unlabelled(val)).describe(t.best_val)


# --- other models --------------------------------------------------------------------------------

class Categorical(LikelihoodModel):
    """Independent categoricals: a likelihood model selected by its validation loss."""

    Config = dict

    def __init__(self, spec):
        super().__init__(spec, {})
        self.logits = nn.Parameter(torch.zeros(spec.dims, spec.levels))

    def log_prob(self, x, y=None):
        lp = torch.log_softmax(self.logits, -1)
        return lp.gather(1, x.reshape(len(x), -1).T).sum(0)


def test_a_likelihood_model_keeps_the_lowest_validation_loss(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randint(0, 2, (64, 1, 2, 2), generator=g), DataSpec((1, 2, 2), 2))
    losses = {2: 0.9, 4: 0.5, 6: 0.7, 8: 0.5}  # the earlier of equal losses stays
    evaluate, holder = trainer_mod.evaluate, []

    def scripted_evaluate(*args, **kw):
        out = evaluate(*args, **kw)
        return {**out, "loss": losses[holder[-1].step]}

    monkeypatch.setattr(trainer_mod, "evaluate", scripted_evaluate)
    seen = {}
    t = Trainer(Categorical(data.spec), data, data, cfg(lr=0.1), out=tmp_path)
    holder.append(t)
    save = t.save
    t.save = lambda name: (seen.setdefault(t.step, weights(t.model)) if name == BEST else None,
                           save(name))[1]
    t.fit()
    assert Categorical(data.spec).checkpoint_selection(data) == Selection("loss", False)
    assert sorted(seen) == [2, 4] and t.best_val == 0.5
    best = load_state(tmp_path / BEST)
    assert best["step"] == 4 and best["best_val"] == 0.5
    assert_same(best["model"], seen[4])
    assert all("knn_accuracy" not in r for r in t.history)


def test_the_supervised_reference_keeps_its_lowest_validation_error(tmp_path, digits):
    train, val = digits
    torch.manual_seed(0)
    model = unsup.create("supervised", train.spec, width=4, depth=2)
    assert model.checkpoint_selection(val) == Selection("error")
    t = Trainer(model, train, val, cfg(lr=3e-2), out=tmp_path)
    t.fit()
    val_rows = [r for r in t.history if r["split"] == "val"]
    assert all("knn_accuracy" in r for r in val_rows)  # logged for comparison
    lowest = min(val_rows, key=lambda r: (r["error"], r["step"]))
    assert t.best_val == pytest.approx(lowest["error"])
    assert load_state(tmp_path / BEST)["step"] == lowest["step"]


# --- resume -------------------------------------------------------------------------------------

def test_resume_keeps_the_selection(tmp_path, monkeypatch, digits):
    train, val = digits
    seen: dict[int, dict] = {}
    holder = scripted(monkeypatch, SCORES, seen)
    full = Trainer(simclr(train.spec), train, val, cfg(), out=tmp_path / "full")
    holder.append(full)
    full.fit()
    # the same run stopped after step 4 (a checkpoint), then continued by a fresh trainer
    part = Trainer(simclr(train.spec), train, val, cfg(steps=4), out=tmp_path / "part")
    holder.append(part)
    part.fit()
    assert load_state(tmp_path / "part" / LAST)["best_val"] == pytest.approx(-0.70)
    resumed = Trainer(simclr(train.spec), train, val, cfg(), out=tmp_path / "part")
    holder.append(resumed)
    resumed.fit(resume=True)
    # step 6 (0.50) and 8 (0.60) are below step 4's 0.70: best stays step 4, as without the restart
    for run in ("full", "part"):
        assert load_state(tmp_path / run / BEST)["step"] == 4
    assert resumed.best_val == full.best_val == pytest.approx(-0.70)
    assert_same(load_state(tmp_path / "part" / BEST)["model"], load_state(tmp_path / "full" / BEST)["model"])
    assert_same(weights(resumed.model), weights(full.model))


def test_a_checkpoint_from_before_the_rule_resumes_and_starts_the_comparison_afresh(
        tmp_path, monkeypatch, digits):
    train, val = digits
    holder = scripted(monkeypatch, SCORES, {})
    part = Trainer(simclr(train.spec), train, val, cfg(steps=4), out=tmp_path)
    holder.append(part)
    part.fit()
    # as an older version wrote it: best_val the lowest validation loss, no knn_accuracy
    state = load_state(tmp_path / LAST)
    metrics = {k: v for k, v in state["metrics"].items() if k != "knn_accuracy"}
    save_state(tmp_path / LAST, {**state, "best_val": -1e9, "metrics": metrics})
    resumed = Trainer(simclr(train.spec), train, val, cfg(), out=tmp_path)
    holder.append(resumed)
    resumed.fit(resume=True)
    # the stored -1e9 was another rule's: step 6 becomes the best, then step 8 (0.60) beats it
    assert load_state(tmp_path / BEST)["step"] == 8 and resumed.best_val == pytest.approx(-0.60)


def test_a_likelihood_checkpoint_without_metrics_keeps_its_best(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randint(0, 2, (64, 1, 2, 2), generator=g), DataSpec((1, 2, 2), 2))
    part = Trainer(Categorical(data.spec), data, data, cfg(steps=4), out=tmp_path)
    part.fit()
    state = load_state(tmp_path / LAST)
    state.pop("metrics")  # the oldest checkpoints: the rule was the loss, and it still is
    save_state(tmp_path / LAST, {**state, "best_val": -1e9})
    resumed = Trainer(Categorical(data.spec), data, data, cfg(), out=tmp_path)
    resumed.fit(resume=True)
    assert resumed.best_val == -1e9 and load_state(tmp_path / BEST)["step"] == 4


# --- torch.distributed ---------------------------------------------------------------------------

RANK_SCORES = [SCORES, {2: 0.9, 4: 0.1, 6: 0.95, 8: 0.2}]  # rank 1 alone would keep other steps


def _worker(rank: int, tmp: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    distributed.setup(torch.device("cpu"))
    result: dict = {}
    try:
        train, val = load("digits", "train"), load("digits", "val")
        # SimCLR's validation loss gathers negatives from every rank: as many batches on each
        train, val = train.subset(torch.arange(256), "train"), val.subset(torch.arange(128), "val")
        kept: list[int] = []
        holder: list = []

        def validation_scores(self, val, batch_size):
            return {"knn_accuracy": RANK_SCORES[rank][holder[-1].step]}

        RepresentationModel.validation_scores = validation_scores
        t = Trainer(simclr(train.spec), train, val, cfg(), out=Path(tmp) / "run")
        holder.append(t)
        save = t.save
        t.save = lambda name: (kept.append(t.step) if name == BEST else None, save(name))[1]
        t.fit()
        result = {"kept": kept, "best_val": t.best_val,
                  "logged": {r["step"]: r["knn_accuracy"] for r in t.history if r["split"] == "val"}}
    finally:
        torch.save(result, Path(tmp) / f"rank{rank}.pt")
        dist.destroy_process_group()


def test_every_rank_keeps_rank_0s_choice(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MASTER_ADDR", "127.0.0.1")
        env.setenv("MASTER_PORT", str(port))
        mp.spawn(_worker, args=(str(tmp_path),), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for r in ranks:
        assert r["kept"] == [2, 4]  # rank 0's scores: 0.30, then 0.70; never rank 1's 6
        assert r["best_val"] == pytest.approx(-0.70)
        assert r["logged"] == pytest.approx(SCORES)  # rank 0's scores, on every rank
    assert load_state(tmp_path / "run" / BEST)["step"] == 4
