"""word2vec: subsampling and noise distributions, dynamic windows, the negative-sampling loss
against a loop, planted word groups recovered by both architectures, analogies, export, and the
`unsup words` command."""

import math

import pytest
import torch
import torch.nn.functional as F

import unsup
from unsup.cli import main
from unsup.data.base import DataSpec, WindowDataset
from unsup.errors import ConfigError
from unsup.models.representation.word2vec import write_vectors

SPEC = DataSpec((5,), 6, None, "sequence")  # windows of 2R + 1 = 5 words, R = 2


def model(spec=SPEC, counts=None, **options):
    torch.manual_seed(0)
    m = unsup.create("word2vec", spec, **{"dim": 8, **options})
    if counts is not None:
        m.counts.copy_(torch.tensor(counts, dtype=torch.float))
    return m


def test_frequent_words_are_kept_with_probability_sqrt_t_over_f():
    m = model(counts=[600, 300, 60, 30, 6, 4], subsample=0.01)
    f = torch.tensor([600, 300, 60, 30, 6, 4]) / 1000
    torch.testing.assert_close(m.keep_probability(), (0.01 / f).sqrt().clamp(max=1))
    assert m.keep_probability()[-1] == 1.0  # rare words are always kept
    assert torch.equal(model(subsample=0.0).keep_probability(), torch.ones(6))


def test_noise_words_follow_the_unigram_distribution_to_the_three_quarters():
    counts = torch.tensor([600.0, 300, 60, 30, 6, 4])
    m = model(counts=counts.tolist())
    torch.manual_seed(1)
    draws = m.noise((200_000,))
    freq = torch.bincount(draws, minlength=6).float() / len(draws)
    want = counts.pow(0.75) / counts.pow(0.75).sum()
    assert (freq - want).abs().max() < 0.005, (freq, want)


def test_dynamic_windows_use_context_within_a_drawn_size_and_validation_uses_all():
    m = model(subsample=0.0)
    x = torch.randint(6, (4000, 5))
    torch.manual_seed(0)
    centre, mask = m.context_mask(x, train=True)
    assert centre.all()
    # positions -2 -1 | +1 +2: the nearest are always used, the outer ones when b = 2 (half the time)
    assert mask[:, 1].all() and mask[:, 2].all()
    assert torch.equal(mask[:, 0], mask[:, 3])
    assert abs(mask[:, 0].float().mean().item() - 0.5) < 0.03
    centre, mask = m.context_mask(x, train=False)
    assert centre.all() and mask.all()


@pytest.mark.parametrize("arch", ["skipgram", "cbow"])
def test_the_loss_is_negative_sampling_on_the_kept_pairs(arch):
    m = model(arch=arch, negatives=3).eval()  # validation: the whole window, no subsampling
    with torch.no_grad():
        m.u.weight.normal_()
    x = torch.randint(6, (4, 5))
    shape = (4, 4, 3) if arch == "skipgram" else (4, 3)
    noise = torch.randint(6, shape)
    m.noise = lambda s: noise
    with torch.no_grad():
        got = m.loss({"x": x})
    v, u = m.v.weight, m.u.weight
    total, pairs = 0.0, 0
    for b in range(4):
        context = [x[b, j] for j in (0, 1, 3, 4)]
        if arch == "skipgram":
            for i, o in enumerate(context):
                total -= F.logsigmoid(u[o] @ v[x[b, 2]]).item()
                total -= sum(F.logsigmoid(-u[n] @ v[x[b, 2]]).item() for n in noise[b, i])
                pairs += 1
        else:
            h = torch.stack([v[o] for o in context]).mean(0)
            total -= F.logsigmoid(u[x[b, 2]] @ h).item()
            total -= sum(F.logsigmoid(-u[n] @ h).item() for n in noise[b])
            pairs += 1
    assert got["loss"].item() == pytest.approx(total / pairs, rel=1e-5)
    assert got["pairs"].item() == pairs


def test_the_initial_loss_is_one_plus_k_log_2():
    # output vectors start at zero: every score is 0 and each term costs log 2
    m = model(negatives=4, subsample=0.0).train()
    loss = m.loss({"x": torch.randint(6, (16, 5))})["loss"]
    assert loss.item() == pytest.approx(5 * math.log(2), rel=1e-6)


def planted_corpus(n=6000, seed=0):
    """Sentences of 8 words drawn from one of two groups: words 0-3 or words 4-7."""
    g = torch.Generator().manual_seed(seed)
    group = torch.randint(2, (n // 8, 1), generator=g) * 4
    return (group + torch.randint(4, (n // 8, 8), generator=g)).flatten()


@pytest.mark.parametrize("arch", ["skipgram", "cbow"])
def test_training_recovers_planted_word_groups(arch):
    data = WindowDataset(planted_corpus(), 5, 8, stride=1, name="planted")
    data.counts = torch.bincount(data.stream, minlength=8)
    torch.manual_seed(0)
    m = unsup.create("word2vec", data=data, arch=arch, dim=8, subsample=0.0)
    assert torch.equal(m.counts, data.counts.float())
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(150):
        loss = m.loss(data.batch(torch.randint(len(data), (256,))))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    for w in range(8):
        nearest = [i for i, _ in m.neighbours(w, 3)]
        assert all(i // 4 == w // 4 for i in nearest), (w, nearest)


def test_an_analogy_is_the_nearest_word_to_b_minus_a_plus_c():
    m = model(spec=DataSpec((3,), 5, None, "sequence"), dim=3)
    with torch.no_grad():  # man, king, woman, queen, other
        m.v.weight.copy_(torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 1]]))
    answers = m.analogy(0, 1, 2, k=2)
    assert answers[0][0] == 3 and answers[0][1] > answers[1][1]
    assert all(i not in (0, 1, 2) for i, _ in answers)


def test_vectors_export_in_word2vec_text_format(tmp_path):
    m = model()
    write_vectors(m, ["a", "b", "c", "d", "e", "f"], tmp_path / "v.txt")
    lines = (tmp_path / "v.txt").read_text().splitlines()
    assert lines[0] == "6 8" and len(lines) == 7
    word, *values = lines[2].split()
    assert word == "b"
    torch.testing.assert_close(torch.tensor([float(v) for v in values]), m.v.weight[1].detach(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="5 words for 6 vectors"):
        write_vectors(m, list("abcde"), tmp_path / "w.txt")


@pytest.mark.parametrize("spec, options, words", [
    (DataSpec((4,), 6, None, "sequence"), {}, ["2R + 1", "4"]),
    (DataSpec((1, 5, 5), 6), {}, ["sequence"]),
    (SPEC, {"arch": "glove"}, ["skipgram or cbow", "glove"]),
    (SPEC, {"negatives": 0}, ["negatives >= 1"]),
])
def test_bad_data_and_options_are_named(spec, options, words):
    with pytest.raises(ConfigError) as e:
        unsup.create("word2vec", spec, **options)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_the_words_command_answers_queries_and_exports(tmp_path, capsys):
    import json

    text = tmp_path / "t.txt"
    names = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen"]
    text.write_text(" ".join(names[i] for i in planted_corpus(4000).tolist()))
    run = tmp_path / "run"
    assert main(["train", "word2vec", "--data", f"words:{text}", "--data-opt", "window=2",
                 "--dim", "8", "--steps", "3", "--batch-size", "64", "--eval-batches", "1",
                 "--device", "cpu", "--no-progress", "--no-tensorboard", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["words", str(run), "--neighbours", "ant,Fox", "--analogy", "ant:bee::cat", "--k", "3",
                 "--export", str(tmp_path / "v.txt"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["vocabulary"] == 8 and set(out["neighbours"]) == {"ant", "Fox"}
    assert len(out["neighbours"]["ant"]) == 3 and "ant" not in [w for w, _ in out["neighbours"]["ant"]]
    assert len(out["analogies"]["ant:bee::cat"]) == 3
    assert (tmp_path / "v.txt").read_text().startswith("8 8\n")
    assert main(["words", str(run), "--neighbours", "zebra"]) == 2
    assert "'zebra' is not in the run's vocabulary of 8 words" in capsys.readouterr().err
    assert main(["words", str(run), "--analogy", "ant:bee"]) == 2
    assert "A:B::C" in capsys.readouterr().err
