"""Lossless coding (`unsup compress` / `unsup decompress`, unsup.codec): exact round trips for
every autoregressive family, a code as long as the model's NLL, text and WAV files back byte for
byte, and every damaged, foreign or mismatched stream or unrepresentable file refused."""

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
from unsup.nn.layers import categorical_log_prob

GREY = DataSpec(shape=(1, 5, 5), levels=256, kind="image")
WAVENET = {"residual_channels": 8, "gate_channels": 8, "skip_channels": 8, "num_stacks": 1,
           "layers_per_stack": 3}
FAMILIES = [  # (name, data, options): every model with a walk loop
    ("pixelcnn", GREY, {"hidden": 8}),
    ("gated-pixelcnn", DataSpec(shape=(3, 4, 4), levels=4, kind="image"), {"hidden": 8, "num_layers": 2}),
    ("pixelcnn++", GREY, {"hidden": 8}),
    ("pixelsnail", GREY, {"hidden": 8, "num_blocks": 1, "res_per_block": 1}),
    ("transformer", DataSpec(shape=(12,), levels=7, kind="sequence"), {"num_layers": 1, "d_model": 16}),
    ("lstm", DataSpec(shape=(12,), levels=7, kind="sequence"), {}),
    ("bytenet", DataSpec(shape=(12,), levels=7, kind="sequence"), {"hidden": 16}),
    ("nade", DataSpec(shape=(10,), levels=2, kind="vector"), {"hidden": 16}),
    ("made", DataSpec(shape=(10,), levels=3, kind="vector"), {"hidden": [16], "ordering": "random"}),
    ("wavenet", DataSpec(shape=(12,), levels=7, kind="sequence"), WAVENET),
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
    histogram = unsup.create("histogram", DataSpec(shape=(1,), levels=8, kind="vector"))
    with pytest.raises(ConfigError, match="cannot code data"):
        compress(histogram, _meta("histogram", histogram), x[:, 0, 0, :1], tmp_path / "h.unsupz")
    labelled = DataSpec(shape=(1, 5, 5), levels=256, kind="image", num_classes=3)
    conditional = unsup.create("pixelcnn", labelled, hidden=8, conditional=True)
    with pytest.raises(ConfigError, match="class-conditional"):
        compress(conditional, _meta("pixelcnn", conditional), x, tmp_path / "c.unsupz")
    model = _perturbed(*FAMILIES[0])
    with pytest.raises(ConfigError, match="expects values in"):
        compress(model, _meta("pixelcnn", model), x + 300, tmp_path / "r.unsupz")


def test_the_refusals_name_the_families_and_the_orderings_that_cannot_code(tmp_path):
    histogram = unsup.create("histogram", DataSpec(shape=(1,), levels=8, kind="vector"))
    with pytest.raises(ConfigError, match=r"walk loop \(.*made.*wavenet") as e:
        compress(histogram, _meta("histogram", histogram), torch.zeros(1, 1, dtype=torch.long),
                 tmp_path / "h.unsupz")
    assert all(name in str(e.value) for name, _, _ in FAMILIES)
    speakers = DataSpec(shape=(12,), levels=7, kind="sequence", num_classes=2)
    conditional = unsup.create("wavenet", speakers, conditional=True, **WAVENET)
    with pytest.raises(ConfigError, match="class-conditional"):
        compress(conditional, _meta("wavenet", conditional), torch.zeros(1, 12, dtype=torch.long),
                 tmp_path / "c.unsupz")
    spec = DataSpec(shape=(10,), levels=3, kind="vector")
    mixture = unsup.create("made", spec, hidden=[16], ordering="random", num_masks=3)
    with pytest.raises(ConfigError, match="mixture of num_masks=3 orderings"):
        compress(mixture, _meta("made", mixture), torch.zeros(1, 10, dtype=torch.long), tmp_path / "m.unsupz")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["wavenet", "lstm", "made"])
def test_examples_coded_in_part_round_trip_and_cost_their_prefix(name, tmp_path):
    """``lengths``: only the first k elements of an example are coded, the rest are zeros the
    decoder fills in without a bit. For a causal model that costs the prefix's own NLL, computed
    here by the full network on the prefix alone; in MADE's random order it stays exact."""
    _, spec, options = next(f for f in FAMILIES if f[0] == name)
    model = _perturbed(name, spec, options)
    lengths = [spec.dims, 5, 0, spec.dims - 1, 1]
    x = torch.randint(0, spec.levels, (5, *spec.shape))
    x = torch.where(torch.arange(spec.dims) < torch.tensor(lengths)[:, None], x.flatten(1), 0).view_as(x)
    path = tmp_path / "x.unsupz"
    sizes = compress(model, _meta(name, model), x, path, chunk=2, lengths=lengths)
    y, header = decompress(model, _meta(name, model), path)
    assert torch.equal(y, x)
    assert header.lengths == [[spec.dims, 1], [5, 1], [0, 1], [spec.dims - 1, 1], [1, 1]]  # as runs
    assert sizes["dims"] == sum(lengths)
    assert sizes["payload_bits"] == pytest.approx(sizes["nll_bits"], rel=0.01, abs=64)
    if name != "made":
        with torch.no_grad():
            prefix = sum(-categorical_log_prob(model.logits(x[i:i + 1, :k]), x[i:i + 1, :k]).item()
                         for i, k in enumerate(lengths) if k) / math.log(2)
        assert sizes["nll_bits"] == pytest.approx(prefix, rel=1e-5)
    with pytest.raises(ConfigError, match="must be zeros"):
        compress(model, _meta(name, model), (x + 1) % spec.levels, path, lengths=lengths)


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


# ------------------------------------------------------------------------------ text files

TEXTS = {  # a 16-symbol model: shorter than a window, exactly 2 windows, 2 and a bit, empty
    "short.txt": b"And God said",
    "exact.txt": b"Let there be light: and there wa",
    "long.txt": b"In the beginning God created the heaven\nand the earth.",
    "empty.txt": b"",
}


@pytest.fixture(scope="module")
def bible_run(tmp_path_factory):
    """An LSTM over windows of 16 characters of the bible (mode=char), trained 2 steps."""
    out = tmp_path_factory.mktemp("bible")
    assert main(["train", "lstm", "--data", "bible", "--data-opt", "mode=char", "--data-opt", "length=16",
                 "--steps", "2", "--hidden", "16", "--embedding-dim", "8", "--eval-every", "0",
                 "--eval-batches", "1", "--no-test", "--samples", "0", "--no-progress", "--no-tensorboard",
                 "--out", str(out)]) == 0
    return out


def test_cli_round_trip_of_text_files(bible_run, tmp_path, capsys):
    """Files of any length come back byte for byte; the tail shorter than a window costs only
    its own symbols (dims counts the files' bytes, not the padded windows)."""
    texts = tmp_path / "texts"
    texts.mkdir()
    for name, data in TEXTS.items():
        (texts / name).write_bytes(data)
    stream_path, back = tmp_path / "t.unsupz", tmp_path / "back"
    code, out, err = run(capsys, "compress", str(bible_run), str(texts), "-o", str(stream_path), "--json")
    assert code == 0, err
    sizes = json.loads(out.strip().splitlines()[-1])
    assert sizes["count"] == 1 + 2 + 4 and sizes["dims"] == sum(map(len, TEXTS.values()))
    assert sizes["payload_bits"] == pytest.approx(sizes["nll_bits"], rel=0.01, abs=64)
    header, _ = read_stream(stream_path)
    assert header.kind == "text" and header.names == sorted(TEXTS)
    assert [f["bytes"] for f in header.files] == [len(TEXTS[n]) for n in sorted(TEXTS)]
    code, out, err = run(capsys, "decompress", str(bible_run), str(stream_path), "-o", str(back))
    assert code == 0 and "wrote 4 text files" in out, err
    for name, data in TEXTS.items():
        assert (back / name).read_bytes() == data


def test_cli_refuses_a_character_outside_the_vocabulary(bible_run, tmp_path, capsys):
    (tmp_path / "cafe.txt").write_bytes("Le café".encode())
    code, _, err = run(capsys, "compress", str(bible_run), str(tmp_path / "cafe.txt"),
                       "-o", str(tmp_path / "c"))
    assert code == 2 and "cafe.txt: character 'é' (byte 0xc3, at byte 6)" in err and "mode=bytes" in err
    code, _, err = run(capsys, "compress", str(bible_run), str(tmp_path / "cafe.txt"), "--quantise",
                       "-o", str(tmp_path / "c"))
    assert code == 2 and "--quantise applies to WAV inputs" in err
    assert not (tmp_path / "c").exists()


def test_cli_codes_a_split_of_the_bible(bible_run, tmp_path, capsys):
    stream_path, back = tmp_path / "s.unsupz", tmp_path / "back"
    code, _, err = run(capsys, "compress", str(bible_run), "--split", "test", "--examples", "3",
                       "-o", str(stream_path))
    assert code == 0, err
    code, _, err = run(capsys, "decompress", str(bible_run), str(stream_path), "-o", str(back))
    assert code == 0, err
    from unsup.data import DataArgs

    test = DataArgs(name="bible", options={"mode": "char", "length": 16}).load("test")
    assert np.array_equal(np.load(back / "examples.npy"), test.batch(torch.arange(3))["x"].numpy())


def test_any_bytes_code_under_a_byte_model(tmp_path):
    """mode=bytes: every byte is a symbol, so binary data and UTF-8 come back as they were."""
    from unsup.codec.sequences import read_texts, write_files

    spec = DataSpec(shape=(8,), levels=256, kind="sequence")
    model = _perturbed("lstm", spec, {"hidden": 16, "embedding_dim": 8})
    (tmp_path / "a.bin").write_bytes(bytes(range(256))[::-7])
    (tmp_path / "b.txt").write_bytes("naïve café\n".encode())
    paths = [tmp_path / "a.bin", tmp_path / "b.txt"]
    packed = read_texts(paths, spec, bytes(range(256)))
    compress(model, _meta("lstm", model), packed.x, tmp_path / "s.unsupz", kind="text",
             names=[p.name for p in paths], lengths=packed.lengths, files=packed.files, vocab=packed.vocab)
    y, header = decompress(model, _meta("lstm", model), tmp_path / "s.unsupz")
    assert header.vocab is None  # a byte is its own symbol: no table in the header
    for path in write_files(y, header, tmp_path / "back"):
        assert path.read_bytes() == (tmp_path / path.name).read_bytes()


# ----------------------------------------------------------------------------- audio files

def _mu_law_wav(path, levels, extra=b""):
    """A 16 kHz WAV of mu-law levels as `unsup sample` writes it, plus raw chunks ``extra``."""
    from unsup.audio import to_amplitudes, write_wav

    write_wav(path, to_amplitudes(torch.as_tensor(levels), 256).numpy(), 16000)
    if extra:
        data = bytearray(path.read_bytes() + extra)
        data[4:8] = (len(data) - 8).to_bytes(4, "little")
        path.write_bytes(bytes(data))


def test_wav_files_round_trip_byte_for_byte(tmp_path):
    """The samples are coded under the model, the bytes around them kept: a WAV with a LIST
    chunk after its samples (odd-sized, so padded) comes back identical."""
    from unsup.codec.sequences import read_wavs, write_files

    spec = DataSpec(shape=(50,), levels=256, kind="sequence")
    model = _perturbed("wavenet", spec, WAVENET)
    rng = np.random.default_rng(0)
    _mu_law_wav(tmp_path / "a.wav", rng.integers(0, 256, 120))  # 2 windows and 20 samples
    _mu_law_wav(tmp_path / "b.wav", rng.integers(100, 156, 50), extra=b"LIST\x05\x00\x00\x00INFOx\x00")
    paths = [tmp_path / "a.wav", tmp_path / "b.wav"]
    packed = read_wavs(paths, spec, 16000)
    assert packed.lengths == [50, 50, 20, 50]
    sizes = compress(model, _meta("wavenet", model), packed.x, tmp_path / "s.unsupz", kind="audio",
                     names=[p.name for p in paths], lengths=packed.lengths, files=packed.files)
    assert sizes["dims"] == 170
    y, header = decompress(model, _meta("wavenet", model), tmp_path / "s.unsupz")
    for path in write_files(y, header, tmp_path / "back"):
        assert path.read_bytes() == (tmp_path / path.name).read_bytes()


def test_wav_files_the_levels_do_not_hold_are_refused_with_how_to_convert(tmp_path):
    import wave

    from unsup.codec.sequences import read_wavs
    from unsup.data.speech import mu_law_encode

    spec = DataSpec(shape=(50,), levels=256, kind="sequence")

    def wav(name, rate=16000, channels=1, width=2, frames=b"\x00\x01" * 40):
        with wave.open(str(tmp_path / name), "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(width)
            w.setframerate(rate)
            w.writeframes(frames)
        return tmp_path / name

    cases = [
        (wav("pcm16.wav"), "are not among the 256 values of the model's mu-law levels"),
        (wav("u8.wav", width=1), "8 bit; the model codes PCM (format 1), mono, 16000 Hz, 16 bit"),
        (wav("stereo.wav", channels=2), "2 channel(s)"),
        (wav("cd.wav", rate=44100), "44100 Hz"),
        (tmp_path / "no.wav", "not a WAV file"),
    ]
    (tmp_path / "no.wav").write_bytes(b"ID3 not a riff file")
    g711 = bytearray(wav("g711.wav", width=1).read_bytes())
    g711[20:22] = (7).to_bytes(2, "little")  # the format tag of WAVE_FORMAT_MULAW
    (tmp_path / "g711.wav").write_bytes(bytes(g711))
    cases.append((tmp_path / "g711.wav", "G.711 mu-law WAV"))
    for path, message in cases:
        with pytest.raises(DataError, match="sox|--quantise|not a WAV") as e:
            read_wavs([path], spec, 16000)
        assert message in str(e.value) and path.name in str(e.value)
    # --quantise: the nearest levels, as the speech dataset quantises
    ramp = (np.linspace(-0.9, 0.9, 80) * 32767).astype("<i2")
    packed = read_wavs([wav("ramp.wav", frames=ramp.tobytes())], spec, 16000, quantise=True)
    expected = mu_law_encode(torch.from_numpy(ramp / 32768.0))
    assert torch.equal(packed.x.flatten()[:80], expected) and packed.files[0]["quantised"]


@pytest.mark.usefixtures("espeak_ng")
def test_cli_round_trip_of_a_wav_file_under_a_wavenet_trained_on_speech(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNSUP_CACHE", str(tmp_path / "cache"))
        mp.delenv("UNSUP_DATA", raising=False)
        assert main(["train", "wavenet", "--data", "speech", "--data-opt", "voices=2", "--data-opt",
                     "sentences=3", "--data-opt", "length=200", "--steps", "2", "--batch-size", "4",
                     "--eval-every", "0", "--eval-batches", "1", "--no-test", "--samples", "0",
                     "--no-progress", "--no-tensorboard", "--num-stacks", "1", "--layers-per-stack", "3",
                     "--residual-channels", "8", "--gate-channels", "8", "--skip-channels", "8",
                     "--out", str(out)]) == 0
    clip = tmp_path / "clip.wav"
    _mu_law_wav(clip, np.random.default_rng(1).integers(60, 200, 450))
    stream_path, back = tmp_path / "c.unsupz", tmp_path / "back"
    code, stdout, err = run(capsys, "compress", str(out), str(clip), "-o", str(stream_path))
    assert code == 0 and "1 audio files (3 windows)" in stdout, err
    code, _, err = run(capsys, "decompress", str(out), str(stream_path), "-o", str(back))
    assert code == 0, err
    assert (back / "clip.wav").read_bytes() == clip.read_bytes()
