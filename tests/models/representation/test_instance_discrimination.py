"""Instance discrimination: one bank row per training example, the bank update rule, each example
scored against its own row, and clear errors for batches the bank cannot serve."""

import pytest
import torch
import torch.nn.functional as F

import unsup
from unsup.data.base import DataSpec, TensorDataset
from unsup.errors import ConfigError
from unsup.models.representation.contrastive import info_nce

FASHION = DataSpec((1, 12, 12), 256, 10, "image")
TINY = {"width": 4, "depth": 2, "dim": 4, "negatives": 6}


def data(n=20):
    x = torch.randint(0, 256, (n, 1, 12, 12), generator=torch.Generator().manual_seed(0))
    return TensorDataset(x, FASHION, y=torch.zeros(n, dtype=torch.long))


def model(**options):
    torch.manual_seed(0)
    return unsup.create("instance-discrimination", data=data(), **{**TINY, **options})


def test_the_bank_has_a_unit_row_per_training_example():
    m = model()
    assert m.config.examples == 20 and m.bank.shape == (20, 4)
    torch.testing.assert_close(m.bank.norm(dim=1), torch.ones(20))
    with pytest.raises(ConfigError, match="examples"):
        unsup.create("instance-discrimination", FASHION, **TINY)  # a spec alone: no size


def test_the_update_moves_only_the_batch_rows_toward_the_new_embeddings():
    m = model(bank_momentum=0.5)
    bank = m.bank.clone()
    v = F.normalize(torch.randn(2, 4), dim=1)
    m.update_bank(torch.tensor([3, 7]), v)
    torch.testing.assert_close(m.bank[[3, 7]], F.normalize(0.5 * bank[[3, 7]] + 0.5 * v, dim=1))
    others = [i for i in range(20) if i not in (3, 7)]
    assert torch.equal(m.bank[others], bank[others])


def test_a_training_step_scores_each_view_against_its_own_row_and_updates_it():
    m = model(augment="none").train()
    batch = data().batch(torch.tensor([4, 9, 1]))
    bank = m.bank.clone()
    torch.manual_seed(3)
    got = m.loss(batch)
    torch.manual_seed(3)
    v = m.embed(m.images(batch["x"]))
    drawn = torch.randint(20, (6,))
    logits, labels = info_nce(v, bank[[4, 9, 1]], bank[drawn], m.config.temperature)
    torch.testing.assert_close(got["loss"], F.cross_entropy(logits, labels))
    changed = (m.bank != bank).any(1).nonzero().flatten().tolist()
    assert changed == [1, 4, 9]


def test_validation_needs_no_index_and_leaves_the_bank_alone():
    m = model().eval()
    bank = m.bank.clone()
    with torch.no_grad():
        out = m.loss({"x": data().x[:5]})
    assert torch.isfinite(out["loss"]) and torch.equal(m.bank, bank)


@pytest.mark.parametrize("index, words", [(None, ["index"]), (torch.tensor([0, 25]), ["20 rows", "25"])])
def test_training_batches_the_bank_cannot_serve_are_refused(index, words):
    m = model().train()
    batch = {"x": data().x[:2]} if index is None else {"x": data().x[:2], "index": index}
    with pytest.raises(ConfigError) as e:
        m.loss(batch)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_the_cli_stores_the_bank_size_so_the_run_reloads(tmp_path):
    from unsup.cli import main
    from unsup.train.runs import load_run

    code = main(["train", "instance-discrimination", "--data", "digits", "--width", "4", "--depth", "2",
                 "--negatives", "16", "--steps", "2", "--batch-size", "8", "--eval-every", "2",
                 "--eval-batches", "1", "--device", "cpu", "--no-progress", "--no-tensorboard",
                 "--out", str(tmp_path / "run")])
    assert code == 0
    model, meta = load_run(tmp_path / "run", "best")
    assert meta["model_config"]["examples"] == model.bank.shape[0] > 1000
    assert (tmp_path / "run" / "views.png").exists()
