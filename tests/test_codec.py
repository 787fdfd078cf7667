"""Lossless coding (`unsup compress` / `unsup decompress`, unsup.codec): exact round trips for
every autoregressive family, a code as long as the model's NLL, and every damaged, foreign or
mismatched stream refused."""

import functools
import json
import math

import numpy as np
import pytest
import torch
from cli_helpers import run
from PIL import Image

import unsup
from unsup.cli import main
from unsup.codec import compress, decompress, read_stream
from unsup.codec.stream import write_stream
from unsup.data.base import DataSpec
from unsup.errors import ConfigError, DataError

GREY = DataSpec(shape=(1, 5, 5), levels=256, kind="image")
FAMILIES = [  # (name, data, options): every model with a raster or sequence loop
    ("pixelcnn", GREY, {"hidden": 8}),
    ("gated-pixelcnn", DataSpec(shape=(3, 4, 4), levels=4, kind="image"), {"hidden": 8, "num_layers": 2}),
    ("pixelcnn++", GREY, {"hidden": 8}),
    ("pixelsnail", GREY, {"hidden": 8, "num_blocks": 1, "res_per_block": 1}),
    ("transformer", DataSpec(shape=(12,), levels=7, kind="sequence"), {"num_layers": 1, "d_model": 16}),
    ("lstm", DataSpec(shape=(12,), levels=7, kind="sequence"), {}),
    ("bytenet", DataSpec(shape=(12,), levels=7, kind="sequence"), {"hidden": 16}),
    ("nade", DataSpec(shape=(10,), levels=2, kind="vector"), {"hidden": 16}),
]


def _meta(name, model):
    return {"model": name, "model_config": vars(model.config)}


def _perturbed(name, spec, options, seed=0):
    """A model whose outputs are far from uniform (initial weights scaled up), so the code's
    length is a real test of the model's probabilities."""
    torch.manual_seed(seed)
    model = unsup.create(name, spec, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


@pytest.mark.parametrize("name,spec,options", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_round_trip_is_exact_and_costs_the_nll(name, spec, options, tmp_path):
    model = _perturbed(name, spec, options)
    x = torch.randint(0, spec.levels, (5, *spec.shape))
    path = tmp_path / "x.unsupz"
    sizes = compress(model, _meta(name, model), x, path, chunk=2)  # 3 chunks: 2, 2, 1
    y, header = decompress(model, _meta(name, model), path)
    assert torch.equal(y, x) and header.count == 5 and header.chunk == 2
    # the coder's words hold the NLL, give or take the quantisation (which also lifts the least
    # likely symbols to the coder's smallest probability, 2^-24: below their -log2 p) and at most
    # two words of flush
    assert sizes["payload_bits"] == pytest.approx(sizes["nll_bits"], rel=0.01, abs=64)
    assert 8 * path.stat().st_size == sizes["payload_bits"] + sizes["container_bits"]


def test_a_likely_example_costs_fewer_bits(tmp_path):
    """The code length follows the model: a sample of the model is cheaper than noise."""
    name, spec, options = FAMILIES[0]
    model = _perturbed(name, spec, options)
    torch.manual_seed(1)
    likely = model.sample(4)
    noise = torch.randint(0, 256, likely.shape)
    a = compress(model, _meta(name, model), likely, tmp_path / "a.unsupz")
    b = compress(model, _meta(name, model), noise, tmp_path / "b.unsupz")
    assert a["payload_bits"] < b["payload_bits"]
    assert a["payload_bits"] == pytest.approx(a["nll_bits"], rel=0.01, abs=64)


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    name, spec, options = FAMILIES[0]
    model = _perturbed(name, spec, options)
    path = tmp_path_factory.mktemp("codec") / "x.unsupz"
    x = torch.randint(0, 256, (3, *spec.shape))
    compress(model, _meta(name, model), x, path, chunk=2)
    return model, path, x


def test_every_damaged_stream_is_refused(stream, tmp_path):
    """Random corruption (flipped bytes, truncation, appended bytes), 300 times: every one is
    refused with a DataError before decoding; none decodes into wrong data."""
    model, path, _ = stream
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.unsupz"
    for trial in range(300):
        damaged = bytearray(data)
        kind = trial % 3
        if kind == 0:
            for pos in rng.integers(0, len(data), rng.integers(1, 4)):
                damaged[pos] ^= int(rng.integers(1, 256))
        elif kind == 1:
            damaged = damaged[:int(rng.integers(0, len(data)))]
        else:
            damaged += rng.integers(0, 256, int(rng.integers(1, 9))).astype(np.uint8).tobytes()
        bad.write_bytes(bytes(damaged))
        with pytest.raises(DataError, match="corrupt|truncated|not an unsup|version"):
            decompress(model, _meta(FAMILIES[0][0], model), bad)


def test_a_stream_decodes_only_with_its_own_model(stream, tmp_path):
    model, path, _ = stream
    name, spec, options = FAMILIES[0]
    other = _perturbed(name, spec, options, seed=1)
    with pytest.raises(DataError, match="written by another model"):
        decompress(other, _meta(name, other), path)
    png = tmp_path / "x.png"
    Image.new("L", (5, 5)).save(png)
    with pytest.raises(DataError, match="not an unsup compressed stream"):
        decompress(model, _meta(name, model), png)


def test_a_decoder_that_computes_otherwise_is_caught(stream, tmp_path):
    """Decoded data are checked against the original's SHA-256: a stream whose probabilities the
    decoder does not reproduce fails loudly (simulated by a checksum of other data)."""
    model, path, _ = stream
    header, words = read_stream(path)
    header.data_sha256 = "0" * 64
    moved = tmp_path / "moved.unsupz"
    write_stream(moved, header, words)
    with pytest.raises(DataError, match="do not match the original's checksum"):
        decompress(model, _meta(FAMILIES[0][0], model), moved)


def test_models_that_cannot_code_say_so(tmp_path):
    x = torch.zeros(2, 1, 5, 5, dtype=torch.long)
    vae = unsup.create("vae", GREY)
    with pytest.raises(ConfigError, match="cannot code data"):
        compress(vae, _meta("vae", vae), x, tmp_path / "v.unsupz")
    labelled = DataSpec(shape=(1, 5, 5), levels=256, kind="image", num_classes=3)
    conditional = unsup.create("pixelcnn", labelled, hidden=8, conditional=True)
    with pytest.raises(ConfigError, match="class-conditional"):
        compress(conditional, _meta("pixelcnn", conditional), x, tmp_path / "c.unsupz")
    model = _perturbed(*FAMILIES[0])
    with pytest.raises(ConfigError, match="expects values in"):
        compress(model, _meta("pixelcnn", model), x + 300, tmp_path / "r.unsupz")


# --------------------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Six 8x8 8-bit grey PNGs and a PixelCNN trained on them for a few steps."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(6):
        ramp = np.add.outer(np.arange(8), np.arange(8)) * 16 + rng.integers(0, 8, (8, 8))
        Image.fromarray(ramp.astype(np.uint8)).save(root / f"p{i}.png")
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "pixelcnn", "--data", f"image-folder:{root}", "--data-opt", "channels=1",
                 "--data-opt", "size=8", "--steps", "3", "--out", str(out), "--no-progress", "--samples", "0",
                 "--hidden", "8"]) == 0
    return root, out


def test_cli_round_trip_of_png_files(photos, tmp_path, capsys):
    root, run_dir = photos
    stream_path, back = tmp_path / "p.unsupz", tmp_path / "back"
    code, out, err = run(capsys, "compress", str(run_dir), str(root), "-o", str(stream_path))
    assert code == 0, err
    assert "6 examples" in out and "bits/dim" in out
    code, out, err = run(capsys, "decompress", str(run_dir), str(stream_path), "-o", str(back))
    assert code == 0, err
    for png in sorted(root.glob("*.png")):
        assert np.array_equal(np.asarray(Image.open(back / png.name)), np.asarray(Image.open(png)))


def test_cli_refuses_pngs_the_model_does_not_code(photos, tmp_path, capsys):
    root, run_dir = photos
    compress_ = functools.partial(run, capsys, "compress", str(run_dir))
    Image.new("L", (9, 8)).save(tmp_path / "wide.png")
    code, _, err = compress_(str(tmp_path / "wide.png"), "-o", str(tmp_path / "w"))
    assert code == 2 and "9x8 pixels, the model codes 8x8" in err
    Image.new("RGB", (8, 8)).save(tmp_path / "colour.png")
    code, _, err = compress_(str(tmp_path / "colour.png"), "-o", str(tmp_path / "c"))
    assert code == 2 and "mode RGB" in err
    code, _, err = compress_(str(tmp_path / "missing"), "-o", str(tmp_path / "m"))
    assert code == 2 and "no such file" in err
    code, _, err = compress_(str(root), "--chunk", "0", "-o", str(tmp_path / "z"))
    assert code == 2 and "chunk must be at least 1" in err
    assert not list(tmp_path.glob("*.unsupz")) and not (tmp_path / "z").exists()


def test_cli_round_trip_of_a_dataset_split(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "gated-pixelcnn", "--data", "digits", "--steps", "3", "--out", str(run_dir),
                 "--no-progress", "--samples", "0", "--hidden", "8", "--num-layers", "2"]) == 0
    stream_path, back = tmp_path / "d.unsupz", tmp_path / "back"
    code, out, err = run(capsys, "compress", str(run_dir), "--examples", "5", "--chunk", "2",
                         "-o", str(stream_path), "--json")
    assert code == 0, err
    sizes = json.loads(out.strip().splitlines()[-1])
    assert sizes["count"] == 5 and sizes["dims"] == 5 * 64
    assert math.isclose(sizes["bits_per_dim"], 8 * stream_path.stat().st_size / 320)
    code, out, err = run(capsys, "decompress", str(run_dir), str(stream_path), "-o", str(back))
    assert code == 0, err
    from unsup.data import DataArgs

    test = DataArgs(name="digits").load("test")
    decoded = np.load(back / "examples.npy", allow_pickle=False)
    assert np.array_equal(decoded, test.x[:5].numpy()) and not list(back.glob("*.png"))  # 17 levels
