"""Bad input gets a clear error: every registered model, and the command line.

For each model (``unsup list``) on a tiny spec, hypothesis draws batches of the wrong shape, the
wrong dtype and out-of-range values; ``loss`` and ``log_prob`` must raise a ``ValueError`` or an
:class:`~unsup.errors.UnsupError` whose message names what was expected. Valid data in any integer
dtype (uint8 for 8-bit pixels) must give the same result as int64.
"""

import functools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unsup
from unsup.cli import main
from unsup.data.base import DataSpec
from unsup.errors import UnsupError
from unsup.models import LikelihoodModel

IMAGE = DataSpec((1, 4, 4), 4)
SEQUENCE = DataSpec((8,), 5, None, "sequence")
VECTOR2 = DataSpec((2,), None, None, "vector")
CONT_IMAGE = DataSpec((1, 4, 4), None)

# Every registered model on small discrete data (ar-flow models continuous 2-D data only).
TINY = {"width": 4, "depth": 2}
CPC_AUDIO = {"channels": 4, "strides": [2, 2], "kernels": [2, 2], "context": 4, "steps_ahead": 2,
             "num_negatives": 2}
COLOUR = DataSpec((3, 8, 8), 4)
DISCRETE = {
    "ar-flow": (VECTOR2, {"hidden": [8]}),
    "bytenet": (SEQUENCE, {"hidden": 8, "num_sets": 1, "blocks_per_set": 2, "kernel_size": 2}),
    "cdf-flow": (DataSpec((1,), 10, None, "vector"), {"num_components": 2}),
    "flow++": (IMAGE, {"flow_steps": 1, "hidden": 4, "blocks": 0, "components": 2, "dequant_steps": 1}),
    "gated-pixelcnn": (IMAGE, {"hidden": 8, "num_layers": 2, "kernel_size": 3, "first_kernel_size": 3}),
    "glow": (IMAGE, {"hidden": 4, "flow_steps": 1, "num_levels": 1}),
    "gumbel-vae": (IMAGE, {"latents": 2, "categories": 3, "hidden": [8]}),
    "histogram": (DataSpec((2,), 4, None, "vector"), {}),
    "hvae": (IMAGE, {"z_dims": [2, 2], "hidden": [8], "top_hidden": [8]}),
    "iaf": (IMAGE, {}),
    "iwae": (IMAGE, {"hidden": [8], "z_dim": 2}),
    "logistic-mixture": (DataSpec((1,), 10, None, "vector"), {"num_components": 2}),
    "lstm": (SEQUENCE, {"hidden": 8, "num_layers": 1}),
    "made": (IMAGE, {"hidden": [16]}),
    "maf": (IMAGE, {}),
    "nade": (IMAGE, {"hidden": 8}),
    "nice": (IMAGE, {"hidden": 4, "layers": 1}),
    "pixelcnn": (IMAGE, {"hidden": 8, "num_layers": 2, "kernel_size": 3, "first_kernel_size": 3}),
    "pixelcnn++": (IMAGE, {"hidden": 8, "res_per_stage": 1, "num_stages": 3, "num_logistics": 2}),
    "pixelsnail": (IMAGE, {"hidden": 8, "num_blocks": 1, "res_per_block": 1, "first_kernel_size": 3,
                           "key_dim": 4, "value_dim": 8}),
    "pixelvae": (IMAGE, {"z_dim": 2, "channels": 2, "pixel_channels": 4}),
    "realnvp": (IMAGE, {"hidden": 4, "blocks": 0}),
    "transformer": (IMAGE, {"num_layers": 1, "d_model": 8, "num_heads": 2}),
    "vae": (IMAGE, {"hidden": [8], "z_dim": 2}),
    "vae-flow-prior": (IMAGE, {"hidden": [8], "z_dim": 2, "prior_hidden": 8}),
    "vae-iaf": (IMAGE, {"hidden": [8], "z_dim": 2, "iaf_hidden": 8, "context": 4}),
    "vqvae": (IMAGE, {"hidden": 8, "res_hidden": 4, "res_blocks": 1, "codebook_size": 4, "code_dim": 2,
                      "downsample": 2}),
    "wavenet": (SEQUENCE, {"residual_channels": 4, "gate_channels": 4, "skip_channels": 4,
                           "num_stacks": 1, "layers_per_stack": 2}),
    # representation methods (issue #6): tiny backbones
    "supervised": (DataSpec((1, 4, 4), 4, 2), TINY),
    "autoencoder": (IMAGE, TINY),
    "denoising-autoencoder": (IMAGE, TINY),
    "stacked-dae": (IMAGE, {"layers": [8, 4], "steps_per_layer": 2}),
    "hashing-autoencoder": (IMAGE, {"bits": 4, "hidden": [8]}),
    "context-encoder": (IMAGE, TINY),
    "colorization": (COLOUR, {**TINY, "grid": 40}),
    "split-brain": (COLOUR, {**TINY, "grid": 40, "l_bins": 4}),
    "rotation": (IMAGE, TINY),
    "relative-patch": (IMAGE, {**TINY, "patch": 1, "gap": 0, "jitter": 0, "hidden": 4}),
    "jigsaw": (IMAGE, {**TINY, "cell": 1, "tile": 1, "permutations": 2, "hidden": 4}),
    "simclr": (IMAGE, {**TINY, "head_hidden": 4, "dim": 4}),
    "moco": (IMAGE, {**TINY, "head_hidden": 4, "dim": 4, "queue": 8}),
    "instance-discrimination": (IMAGE, {**TINY, "dim": 4, "examples": 16, "negatives": 4}),
    "cpc-image": (IMAGE, {**TINY, "patch": 2, "steps_ahead": 1, "context": 4, "context_layers": 1}),
    "word2vec": (DataSpec((5,), 5, None, "sequence"), {"dim": 4, "negatives": 2}),
    "cpc-audio": (DataSpec((64,), 256, None, "sequence"), CPC_AUDIO),
    "sparse-coding": (DataSpec((4,), None, None, "vector"), {"atoms": 3, "inference_steps": 2}),
    "psd": (DataSpec((4,), None, None, "vector"), {"atoms": 3, "inference_steps": 2}),
    # implicit models (issue #19)
    "gan": (IMAGE, {"hidden": 4, "latent": 2}),
    "gmmn": (IMAGE, {"hidden": 4, "latent": 2}),
    "bigan": (IMAGE, {"hidden": 4, "latent": 2}),
    "ebm": (IMAGE, {"hidden": 4, "langevin_steps": 1, "buffer_size": 4}),
    "cyclegan": (IMAGE, {"target_shape": [3, 4, 4], "target_levels": 4, "hidden": 2, "res_blocks": 1,
                         "d_hidden": 2}),
    # diffusion, flow matching, score models (issue #20)
    "ddpm": (IMAGE, {"hidden": 4, "mults": [1], "timesteps": 4, "bound_steps": 2}),
    "flow-matching": (IMAGE, {"hidden": 4, "mults": [1], "ode_method": "rk4", "likelihood_repeats": 1}),
    "ncsn": (IMAGE, {"hidden": 4, "mults": [1], "sigma_max": 2.0, "noise_levels": 2}),
}
# The models that also take continuous data, on continuous data.
CONTINUOUS = {
    "cdf-flow": (DataSpec((1,), None, None, "vector"), {"num_components": 2}),
    "cpc-audio": (DataSpec((64,), None, None, "sequence"), CPC_AUDIO),
    "flow++": (VECTOR2, {"flow_steps": 1, "hidden": 4, "blocks": 0, "components": 2}),
    "glow": (CONT_IMAGE, {"hidden": 4, "flow_steps": 1, "num_levels": 1}),
    "gumbel-vae": (VECTOR2, {"latents": 2, "categories": 3, "hidden": [8]}),
    "hvae": (VECTOR2, {"z_dims": [2, 2], "hidden": [8], "top_hidden": [8]}),
    "iaf": (VECTOR2, {}),
    "iwae": (VECTOR2, {"hidden": [8], "z_dim": 2}),
    "maf": (VECTOR2, {}),
    "nice": (VECTOR2, {"hidden": 4, "layers": 1}),
    "realnvp": (VECTOR2, {"hidden": 4, "num_couplings": 2}),
    "vae": (VECTOR2, {"hidden": [8], "z_dim": 2}),
    "vae-flow-prior": (VECTOR2, {"hidden": [8], "z_dim": 2, "prior_hidden": 8}),
    "vae-iaf": (VECTOR2, {"hidden": [8], "z_dim": 2, "iaf_hidden": 8, "context": 4}),
    "gan": (VECTOR2, {"hidden": 4, "latent": 2}),
    "gmmn": (VECTOR2, {"hidden": 4, "latent": 2}),
    "bigan": (VECTOR2, {"hidden": 4, "latent": 2}),
    "ebm": (VECTOR2, {"hidden": 4, "langevin_steps": 1, "buffer_size": 4}),
    "ddpm": (VECTOR2, {"hidden": 4, "layers": 1, "timesteps": 4}),
    "flow-matching": (VECTOR2, {"hidden": 4, "layers": 1}),
    "ncsn": (VECTOR2, {"hidden": 4, "layers": 1, "sigma_max": 2.0, "noise_levels": 2}),
}
CASES = [(n, "discrete") for n in DISCRETE if DISCRETE[n][0].levels is not None]
CASES += [(n, "continuous") for n in CONTINUOUS] + [("ar-flow", "continuous")]

FEW = settings(max_examples=12, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow])
INTEGER = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]
FLOATING = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@functools.cache
def model(name, kind, levels=None):
    spec, options = (CONTINUOUS if kind == "continuous" and name in CONTINUOUS else DISCRETE)[name]
    if levels is not None:
        spec = DataSpec(spec.shape, levels, spec.num_classes, spec.kind)
    torch.manual_seed(0)
    return unsup.create(name, spec, **options).eval()


def valid(m, n=3, dtype=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = m.spec
    if s.levels is None:
        return torch.rand(n, *s.shape, generator=g)
    x = torch.randint(s.levels, (n, *s.shape), generator=g)
    x.view(n, -1)[0, 0] = s.levels - 1  # the top level, where a narrow dtype would wrap
    return x if dtype is None else x.to(dtype)


def scores(m, x):
    """Everything a caller can score ``x`` with: ``loss`` and, for likelihood models, ``log_prob``."""
    batch = {"x": x}
    if m.spec.num_classes is not None:  # a supervised model: labels beside the (maybe bad) examples
        batch["y"] = torch.zeros(len(x), dtype=torch.long)
    if hasattr(m, "spec_b"):  # a translation model: valid examples of the second domain beside
        batch["x_b"] = torch.zeros(len(x), *m.spec_b.shape, dtype=torch.long)
    calls = [lambda: m.loss(batch)]
    if isinstance(m, LikelihoodModel):
        calls.append(lambda: m.log_prob(x))
    return calls


def assert_refused(m, x, *expected):
    for call in scores(m, x):
        with pytest.raises((ValueError, UnsupError)) as e:
            call()
        message = str(e.value)
        assert all(w in message for w in expected), (type(m).__name__, message)


def test_every_registered_model_is_swept():
    assert set(DISCRETE) == set(unsup.models.names())


@pytest.mark.parametrize("name, kind", CASES)
@FEW
@given(data=st.data())
def test_a_batch_of_the_wrong_shape_names_the_expected_shape(name, kind, data):
    m = model(name, kind)
    shape = tuple(data.draw(st.lists(st.integers(1, 5), max_size=4).filter(
        lambda s: tuple(s) != m.spec.shape), label="example shape"))
    x = valid(m)
    x = torch.zeros((2, *shape), dtype=x.dtype)
    assert_refused(m, x, "shape", str(m.spec.shape))


@pytest.mark.parametrize("name, kind", CASES)
@FEW
@given(data=st.data())
def test_a_batch_of_the_wrong_dtype_names_the_expected_dtype(name, kind, data):
    m = model(name, kind)
    if m.spec.levels is not None:
        dtype = data.draw(st.sampled_from(FLOATING + [torch.complex64]), label="dtype")
        assert_refused(m, valid(m).to(dtype), "integer levels", str(dtype))
    else:
        dtype = data.draw(st.sampled_from(INTEGER + [torch.bool]), label="dtype")
        assert_refused(m, valid(m).to(dtype), "floating-point", str(dtype))


@pytest.mark.parametrize("name, kind", CASES)
@FEW
@given(data=st.data())
def test_values_out_of_range_name_the_expected_range(name, kind, data):
    m = model(name, kind)
    x = valid(m)
    at = data.draw(st.integers(0, x.numel() - 1), label="position")
    if m.spec.levels is not None:
        k = m.spec.levels
        bad = data.draw(st.integers(-(2**40), -1) | st.integers(k, 2**40), label="value")
        x.view(-1)[at] = bad
        assert_refused(m, x, f"[0, {k - 1}]", str(bad))
    else:
        x.view(-1)[at] = data.draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
        assert_refused(m, x, "finite")


@pytest.mark.parametrize("name", [n for n, kind in CASES if kind == "discrete"])
@FEW
@given(dtype=st.sampled_from(INTEGER[:-1] + [torch.bool]), seed=st.integers(0, 2**16))
def test_any_integer_dtype_scores_like_int64(name, dtype, seed):
    levels = 2 if dtype == torch.bool else 128 if dtype == torch.int8 else 256  # all the dtype holds
    m = model(name, "discrete", levels)
    x = valid(m, seed=seed)
    for reference, call in zip(scores(m, x), scores(m, x.to(dtype)), strict=True):
        torch.manual_seed(seed)  # the same noise (dequantisation, latent samples) for both
        want = reference()
        torch.manual_seed(seed)
        got = call()
        if isinstance(want, dict):
            want, got = want["loss"], got["loss"]
        torch.testing.assert_close(got, want)


# --- the command line -----------------------------------------------------------------------

def run(capsys, argv):
    """``unsup ARGV`` in-process -> (exit code, stderr); argparse's own errors exit too."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


TRAIN = ["train", "made", "--out", "run", "--steps", "1"]


@pytest.mark.parametrize("argv, message", [
    (["train", "nosuchmodel", "--out", "run", "--steps", "1"], "unknown model 'nosuchmodel'"),
    (["train", "made", "--data", "nosuch", "--out", "run", "--steps", "1"], "unknown dataset 'nosuch'"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["train", "made", "--out", "run", "--steps", "-5"], "--steps must be positive, got -5"),
    (["train", "made", "--out", "run", "--steps", "abc"], "--steps: invalid int value"),
    (["train", "made", "--out", "run", "--epochs", "0"], "--epochs must be positive"),
    (["train", "made", "--out", "run", "--time", "soon"], "expected a duration like 90s"),
    (TRAIN + ["--batch-size", "0"], "--batch-size must be >= 1"),
    (TRAIN + ["--lr", "-1"], "--lr must be positive, got -1.0"),
    (TRAIN + ["--lr", "nan"], "--lr must be positive"),
    (TRAIN + ["--weight-decay", "-1"], "--weight-decay must be >= 0"),
    (TRAIN + ["--warmup", "-3"], "--warmup must be >= 0"),
    (TRAIN + ["--clip", "-1"], "--clip must be >= 0"),
    (TRAIN + ["--ema", "1.5"], "--ema must be in [0, 1)"),
    (TRAIN + ["--eval-every", "-1"], "--eval-every must be >= 0"),
    (TRAIN + ["--eval-batches", "-1"], "--eval-batches must be >= 0"),
    (TRAIN + ["--log-every", "0"], "--log-every must be >= 1"),
    (TRAIN + ["--samples", "-1"], "--samples must be >= 0"),
    (TRAIN + ["--schedule", "linear"], "invalid choice: 'linear'"),
    (TRAIN + ["--amp", "fp8"], "invalid choice: 'fp8'"),
    (TRAIN + ["--device", "tpu"], "unknown device 'tpu'"),
    (TRAIN + ["--represent", "grey"], "unknown representation 'grey'"),
    (TRAIN + ["--represent", "levels:abc"], "expected levels:K with an integer K >= 2"),
    (TRAIN + ["--represent", "levels:1"], "expected levels:K with an integer K >= 2"),
    (TRAIN + ["--val-fraction", "1.5"], "must be in (0, 1)"),
    (TRAIN + ["--data-opt", "noequals"], "--data-opt expects KEY=VALUE"),
    (TRAIN + ["--hidden", "-4"], "positive layer widths"),
    (TRAIN + ["--preset", "nosuch"], "no preset 'nosuch'"),
    (TRAIN + ["--keep-last", "0"], "--keep-last must be >= 1"),
    (TRAIN + ["--on-divergence", "retry"], "invalid choice: 'retry'"),
    (TRAIN + ["--rollback-lr-factor", "2"], "--rollback-lr-factor must be in (0, 1]"),
    (TRAIN + ["--max-rollbacks", "-1"], "--max-rollbacks must be >= 0"),
    (["sample", "run", "--out", "a.png", "--n", "0"], "--n must be at least 1"),
    (["sample", "run", "--out", "a.png", "--temperature", "-1"], "--temperature must be positive"),
    (["eval", "/nonexistent/run"], "not a directory"),
    (["ood", "/nonexistent/run"], "not a directory"),
    (["ood", "run", "--examples", "0"], "--examples must be >= 1"),
    (["ood", "run", "--typicality-batch", "0"], "--typicality-batch must be >= 1"),
    (["ood", "run", "--outliers", "nosuch"], "unknown dataset 'nosuch'"),
    (["ood", "run", "--outliers", "cifar10-jpeg="], "expected NAME or NAME=DIR"),
    (["ood", "run", "--codec", "gif"], "unknown codec 'gif'"),
])
def test_bad_command_lines_exit_2_with_a_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run(capsys, argv)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_eval_options_are_checked_against_a_real_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run(capsys, ["train", "histogram", "--data", "toy-1d", "--steps", "2", "--out", "run",
                             "--no-progress", "--no-tensorboard", "--samples", "0", "--no-test"])
    assert code == 0, err
    for argv, message in [
        (["eval", "run", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["eval", "run", "--examples", "0"], "--examples must be in [1, "),
        (["eval", "run", "--importance-samples", "5"], "--importance-samples applies to"),
        (["eval", "run", "--split", "everything"], "invalid choice: 'everything'"),
        (["sample", "run", "--out", "s.png", "--length", "5"], "--length"),
        (["compress", "run", "-o", "c.unsupz"], "histogram cannot code data"),
        (["decompress", "run", "nosuch.unsupz", "-o", "out"], "nosuch.unsupz: no such file"),
        (["ood", "run"], "input complexity codes images"),
        (["ood", "run", "--codec", "none", "--outliers", "digits"], "only images convert"),
    ]:
        code, err = run(capsys, argv)
        assert code == 2 and message in err, (argv, err)
