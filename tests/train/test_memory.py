"""Evaluation in memory-bounded chunks gives the same figures; the allocator setting is applied."""

import platform

import pytest
import torch

from unsup.data.base import DataSpec, TensorDataset
from unsup.memory import chunk_size, keep_freed_memory, largest_activation
from unsup.models import MODELS, config_for
from unsup.train.trainer import evaluate


def _pixelcnn(spec):
    config = config_for("pixelcnn", hidden=16, num_layers=2)
    torch.manual_seed(0)
    return MODELS.get("pixelcnn")(spec, config).eval()


def test_largest_activation_is_the_biggest_module_output():
    net = torch.nn.Sequential(torch.nn.Linear(3, 50), torch.nn.ReLU(), torch.nn.Linear(50, 2))
    got = largest_activation(net, lambda: net(torch.zeros(4, 3)))
    assert got == 4 * 50 * 4  # (4, 50) float32


def test_chunk_size_bounds_the_largest_activation():
    spec = DataSpec(kind="image", shape=(1, 8, 8), levels=2)
    model = _pixelcnn(spec)
    x = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    per_example = largest_activation(model, lambda: model.log_prob(x))
    assert per_example == 16 * 8 * 8 * 4  # the widest layer's (1, 16, 8, 8) output
    assert chunk_size(model, lambda: model.log_prob(x), 256, budget=10 * per_example) == 10
    assert chunk_size(model, lambda: model.log_prob(x), 4, budget=10 * per_example) == 4
    assert chunk_size(model, lambda: model.log_prob(x), 256, budget=1) == 1


@pytest.mark.parametrize("name,options", [("pixelcnn", {"hidden": 16, "num_layers": 2}),
                                          ("vae", {"hidden": [16], "z_dim": 2})])
def test_chunked_evaluation_gives_the_same_figures(name, options, monkeypatch):
    spec = DataSpec(kind="image", shape=(1, 8, 8), levels=2)
    torch.manual_seed(1)
    ds = TensorDataset(torch.randint(2, (70, 1, 8, 8)), spec)
    model = MODELS.get(name)(spec, config_for(name, **options)).eval()
    monkeypatch.setattr("unsup.memory.CHUNK_BYTES", 1)  # chunks of one example
    seen = []
    log_prob = model.log_prob_with_se
    monkeypatch.setattr(model, "log_prob_with_se", lambda x, *a, **k: (seen.append(len(x)),
                                                                          log_prob(x, *a, **k))[1])
    torch.manual_seed(2)
    whole = evaluate(model, ds, batch_size=32, chunked=False)
    sizes_whole, seen[:] = list(seen), []
    torch.manual_seed(2)
    chunked = evaluate(model, ds, batch_size=32)
    assert sizes_whole == [32, 32, 6] and set(seen[1:]) == {1}  # (seen[0]: the measuring pass)
    assert chunked["n"] == whole["n"] == 70
    if name == "pixelcnn":  # exact: the same sum
        assert chunked["nll"] == pytest.approx(whole["nll"], rel=1e-6)
    else:  # importance-sampled: draws differ by chunk; both estimate the same mean
        assert abs(chunked["nll"] - whole["nll"]) < 5 * (chunked["nll_se"] + whole["nll_se"])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt thresholds are glibc's")
def test_keep_freed_memory_on_glibc(monkeypatch):
    assert keep_freed_memory(True) is True
    monkeypatch.setenv("UNSUP_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False
