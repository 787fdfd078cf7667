"""Word windows: tokens, the training vocabulary, contiguous splits, and centred windows."""

import pytest
import torch

import unsup.data as udata
from unsup.data.words import tokenize, vocabulary
from unsup.errors import DataError


def test_tokens_are_lower_case_words_with_inner_apostrophes():
    assert tokenize("1:1 In the Beginning, God's earth -- 'twas ROUND.") == [
        "in", "the", "beginning", "god's", "earth", "twas", "round"]


def test_the_vocabulary_keeps_words_seen_min_count_times_most_frequent_first():
    words = "b a c a b a d".split()
    assert vocabulary(words, 1)[0] == ["a", "b", "c", "d"]
    vocab, counts = vocabulary(words, 2)
    assert vocab == ["a", "b"] and counts.tolist() == [3, 2]


def test_windows_are_centred_on_each_word_of_a_contiguous_split(tmp_path):
    path = tmp_path / "t.txt"
    animals = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]
    words = [animals[i % 7] for i in range(400)] + ["rare"]
    path.write_text(" ".join(words))
    name = f"words:{path}"
    splits = {s: udata.load(name, s, "native", window=2, min_count=2) for s in ("train", "val", "test")}
    train = splits["train"]
    assert train.spec.shape == (5,) and train.spec.levels == 7 and train.spec.kind == "sequence"
    assert "rare" not in train.vocab and all(s.vocab == train.vocab for s in splits.values())
    n = {s: len(d.stream) for s, d in splits.items()}
    assert n["test"] == 39 and n["train"] + n["val"] == 361  # 401 tokens; "rare" (the last) dropped
    x = train.batch(torch.tensor([0, 10]))["x"]
    decoded = [[train.vocab[i] for i in row] for row in x.tolist()]
    assert decoded == [words[0:5], words[10:15]]  # example i: words i..i+2R, centre i+R
    assert train.counts.tolist() == sorted(train.counts.tolist(), reverse=True)


def test_text_without_enough_repeated_words_is_refused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("every word here is different from all others")
    with pytest.raises(DataError, match="min_count"):
        udata.load(f"words:{path}", "train", "native")


def test_bible_words_come_from_the_packaged_bible():
    test = udata.load("bible-words", "test", "native", window=2)
    assert test.spec.shape == (5,) and test.vocab[:3] == ["the", "and", "of"]
    assert {"lord", "god", "israel"} <= set(test.vocab) and len(test.stream) > 50_000
