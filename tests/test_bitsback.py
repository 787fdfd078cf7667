"""Bits-back coding of VAEs (unsup.codec.bitsback): exact round trips for every latent-variable
family that codes this way, a net code as long as the negative ELBO, the initial bits
returned, and the models that cannot be coded refused."""

import math

import pytest
import torch
from cli_helpers import run

import unsup
from unsup.cli import main
from unsup.codec import bitsback, compress, decompress, read_stream
from unsup.codec.autoregressive import computing_as
from unsup.codec.stream import write_stream
from unsup.data.base import DataSpec
from unsup.errors import ConfigError, DataError
from unsup.models import MODELS, names

BINARY = DataSpec(shape=(1, 8, 8), levels=2, kind="image")
LEVELS = DataSpec(shape=(1, 8, 8), levels=17, kind="image")
FAMILIES = [  # (name, data, options)
    ("vae", BINARY, {"hidden": [32], "z_dim": 6}),
    ("vae", LEVELS, {"arch": "conv", "channels": 8, "z_dim": 5}),
    ("iwae", BINARY, {"hidden": [32], "z_dim": 6}),
    ("hvae", BINARY, {"hidden": [32], "top_hidden": [16], "z_dims": [6, 3]}),
    ("hvae", LEVELS, {"hidden": [32], "top_hidden": [16], "z_dims": [6, 3], "inference": "bottom-up",
                      "scale": 1.3}),  # doubled, p(z1 | z2) of a random chain is far off q
]
IDS = ["vae-binary", "vae-conv-17", "iwae", "hvae", "hvae-bit-swap"]


def _meta(name, model):
    return {"model": name, "model_config": vars(model.config)}


def _model(name, spec, options, seed=0):
    """A model with confident outputs (initial weights doubled; ``scale`` in ``options``: by
    that): posteriors narrower than the prior, so bits-back has bits to give back."""
    torch.manual_seed(seed)
    options = dict(options)
    scale = options.pop("scale", 2.0)
    model = unsup.create(name, spec, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


def _data(spec, n, seed=1):
    return torch.randint(0, spec.levels, (n, *spec.shape), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name,spec,options", FAMILIES, ids=IDS)
def test_round_trip_is_exact_and_costs_the_negative_elbo(name, spec, options, tmp_path):
    model = _model(name, spec, options)
    x = _data(spec, 60)
    path = tmp_path / "x.unsupz"
    sizes = compress(model, _meta(name, model), x, path, chunk=7)  # chunks of 7 and a last of 4
    y, header = decompress(model, _meta(name, model), path)
    assert torch.equal(y, x) and header.coder == "bits-back" and header.chunk == 7
    # each example's net cost is -log p(x | z) - log p(z) + log q(z | x) at the z it drew: the
    # negative ELBO, up to its sampling spread over 60 examples and the grid
    with torch.no_grad():
        draws = torch.stack([-model.iwae_bound(x, 1).double() for _ in range(30)]) / math.log(2)
    expected, spread = draws.mean().item() * len(x), draws.std().item() * math.sqrt(len(x))
    net = sizes["payload_bits"] - sizes["initial_bits"]
    assert abs(net - expected) < 4 * spread + 0.01 * expected + 64
    assert sizes["neg_elbo_bits"] == pytest.approx(expected, rel=0.05)
    assert 8 * path.stat().st_size == sizes["payload_bits"] + sizes["container_bits"]


def test_initial_bits_are_paid_once_and_amortise(tmp_path):
    """Chunks after the first take their bits from what the earlier ones wrote: the initial
    words do not grow with the number of examples."""
    name, spec, options = FAMILIES[0]
    model = _model(name, spec, options)
    x = _data(spec, 40)
    few = compress(model, _meta(name, model), x[:2], tmp_path / "few.unsupz")
    many = compress(model, _meta(name, model), x, tmp_path / "many.unsupz")
    assert few["initial_bits"] == many["initial_bits"] > 0
    grid = bitsback.Grid()  # enough for the entropy of one chunk's 6 latents on the grid, + 2 words
    assert many["initial_bits"] == 32 * (math.ceil(6 * math.log2(2 * grid.k + 1) / 32) + 2)
    with_chunks = compress(model, _meta(name, model), x, tmp_path / "chunks.unsupz", chunk=8)
    assert with_chunks["initial_bits"] == 32 * (math.ceil(8 * 6 * math.log2(2 * grid.k + 1) / 32) + 2)


def test_bit_swap_needs_initial_bits_for_the_lowest_level_only(tmp_path):
    """Top-down inference draws every level before anything is written; Bit-Swap's order draws
    z2 with the bits that x just wrote."""
    sizes = {}
    for inference in ("top-down", "bottom-up"):
        model = _model("hvae", BINARY, {"hidden": [32], "top_hidden": [16], "z_dims": [6, 10],
                                        "inference": inference})
        sizes[inference] = compress(model, _meta("hvae", model), _data(BINARY, 3), tmp_path / "x.unsupz")
    top, bit_swap = bitsback.Grid(), bitsback.Grid(range=16.0)  # Bit-Swap's absolute grid is wider
    assert sizes["top-down"]["initial_bits"] == 32 * (math.ceil(16 * math.log2(2 * top.k + 1) / 32) + 2)
    assert sizes["bottom-up"]["initial_bits"] == 32 * (math.ceil(6 * math.log2(2 * bit_swap.k + 1) / 32) + 2)


def test_the_stack_ends_on_its_initial_words():
    name, spec, options = FAMILIES[3]
    model = _model(name, spec, options)
    x = _data(spec, 9)
    grid = bitsback.Grid()
    with computing_as(torch.get_num_threads()):
        words, n0 = bitsback.encode(model, x, 4, grid)
        assert torch.equal(bitsback.decode(model, words, 9, 4, grid, n0), x)
        with pytest.raises(DataError, match="initial words"):  # a decoder on another grid derails
            bitsback.decode(model, words, 9, 4, bitsback.Grid(bin_bits=5), n0)


def test_likelihood_tables_are_the_decoders_distributions():
    for spec, options in [(BINARY, FAMILIES[0][2]), (LEVELS, FAMILIES[1][2])]:
        model = _model("vae", spec, options)
        z = torch.randn(3, model.z_dim)
        table = model.decoder_table([z])  # (3, 1, 8, 8, L)
        assert table.shape == (3, *spec.shape, spec.levels)
        assert torch.allclose(table.exp().sum(-1), torch.ones(3, *spec.shape), atol=1e-5)
        x = _data(spec, 3)
        picked = table.gather(-1, x[..., None]).squeeze(-1).flatten(1).sum(1)
        assert torch.allclose(picked, model.decoder_log_prob(x, z), atol=1e-3)


def test_which_models_code_by_bits_back():
    assert {n for n in names() if MODELS.get(n).bits_back} == {"vae", "iwae", "hvae"}
    assert not ({n for n in names() if MODELS.get(n).bits_back} & {n for n in names() if MODELS.get(n).codes})


@pytest.mark.parametrize("name,spec,options,match", [
    ("gumbel-vae", BINARY, {}, "cannot code data.*bits-back.*vae"),
    ("vae-flow-prior", BINARY, {}, "cannot code data"),
    ("pixelvae", BINARY, {}, "cannot code data"),
    ("vae", DataSpec(shape=(4,), levels=None, kind="vector"), {}, "continuous data"),
])
def test_models_that_cannot_be_coded_are_refused(name, spec, options, match, tmp_path):
    model = unsup.create(name, spec, **options)
    x = torch.zeros(2, *spec.shape, dtype=torch.long if spec.levels else torch.float)
    with pytest.raises(ConfigError, match=match):
        compress(model, _meta(name, model), x, tmp_path / "x.unsupz")


def test_a_stream_of_the_other_coder_or_without_its_grid_is_refused(tmp_path):
    name, spec, options = FAMILIES[0]
    model = _model(name, spec, options)
    path = tmp_path / "x.unsupz"
    compress(model, _meta(name, model), _data(spec, 3), path)
    header, words = read_stream(path)
    header.coder_params = {"initial_words": 3}
    write_stream(tmp_path / "no-grid.unsupz", header, words)
    with pytest.raises(DataError, match="bits-back parameters"):
        decompress(model, _meta(name, model), tmp_path / "no-grid.unsupz")
    header.coder = "range"
    write_stream(tmp_path / "range.unsupz", header, words)
    with pytest.raises(DataError, match="coded by range"):
        decompress(model, _meta(name, model), tmp_path / "range.unsupz")


def test_cli_round_trip_of_a_vae_run(tmp_path, capsys):
    out = tmp_path / "run"
    run(capsys, "train", "vae", "--data", "digits", "--represent", "binary", "--steps", "30",
        "--samples", "0", "--eval-batches", "1", "--eval-samples", "10", "--out", str(out))
    stream = tmp_path / "test.unsupz"
    assert main(["compress", str(out), "--split", "test", "--examples", "25", "-o", str(stream)]) == 0
    assert "bits-back" in capsys.readouterr().out
    assert main(["decompress", str(out), str(stream), "-o", str(tmp_path / "back")]) == 0
    model, meta = unsup.train.load_run(out)
    y, header = decompress(model, meta, stream)
    assert header.count == 25 and header.chunk == 1 and header.kind == "examples"
    ds = unsup.data.DataArgs.from_dict(meta["data"]).load("test")
    assert torch.equal(y, ds.batch(torch.arange(25), generator=torch.Generator().manual_seed(0))["x"])
