"""The diffusion family from the command line: training, the bound, sampler options, the 2-D
pictures, and latent diffusion on a VAE run's codes."""

import json

import pytest
import torch
from cli_helpers import run
from PIL import Image

import unsup


def test_ddpm_trains_reports_its_bound_and_samples_with_any_sampler(tmp_path, capsys):
    out = tmp_path / "ddpm"
    code, stdout, err = run(capsys, "train", "ddpm", "--data", "digits", "--steps", "3",
                            "--batch-size", "16", "--hidden", "8", "--mults", "1", "2", "--timesteps", "20",
                            "--bound-steps", "4", "--samples", "8", "--out", str(out))
    assert code == 0, err
    test = json.loads((out / "test.json").read_text())
    assert test["exact"] is False and test["likelihood"] == "bound" and test["nll_se"] > 0
    assert "upper bound" in stdout + err
    for sampler, extra in (("ancestral", []), ("ddim", ["--eta", "0.5"]), ("dpm-solver", [])):
        png = tmp_path / f"{sampler}.png"
        code, stdout, err = run(capsys, "sample", str(out), "--n", "4", "--sampler", sampler,
                                "--steps", "5", *extra, "--out", str(png))
        assert code == 0, err
        assert Image.open(png).size[0] > 8
    code, _, err = run(capsys, "sample", str(out), "--n", "4", "--steps", "50", "--out", str(png))
    assert code == 2 and "sampling steps must be in [1, 20]" in err
    code, _, err = run(capsys, "sample", str(out), "--n", "4", "--guidance", "2", "--out", str(png))
    assert code == 2 and "needs a class-conditional model" in err


def test_sampler_options_are_refused_by_models_without_them(tmp_path, capsys):
    out = tmp_path / "made"
    assert run(capsys, "train", "made", "--data", "digits", "--steps", "2", "--samples", "0",
               "--out", str(out))[0] == 0
    code, _, err = run(capsys, "sample", str(out), "--steps", "5", "--out", str(tmp_path / "s.png"))
    assert code == 2 and "MADE takes no --steps" in err


@pytest.mark.parametrize("model", ["ddpm", "flow-matching", "ncsn"])
def test_2d_toys_draw_samples_and_trajectories(model, tmp_path, capsys):
    out = tmp_path / model
    fast = {"ddpm": ["--timesteps", "20", "--bound-steps", "0"], "flow-matching": ["--sample-steps", "4"],
            "ncsn": ["--langevin-steps", "3", "--noise-levels", "4"]}[model]
    code, stdout, err = run(capsys, "train", model, "--data", "two-moons", "--steps", "3",
                            "--batch-size", "64", *fast, "--samples", "200", "--out", str(out))
    assert code == 0, err
    expected = {"samples.png", "trajectories.png"} | ({"density.png"} if model != "ncsn" else set())
    assert expected <= {p.name for p in out.glob("*.png")}
    if model == "flow-matching":  # an estimate: neither exact nor a bound
        assert json.loads((out / "test.json").read_text())["likelihood"] == "estimate"
        assert "an estimate" in stdout + err
        # a cheaper estimator for evaluation, recorded; an option the model lacks is refused
        code, stdout, err = run(capsys, "eval", str(out), "--examples", "8", "--estimator",
                                "ode_method=rk4", "ode_steps=2", "likelihood_repeats=1", "--json")
        assert code == 0, err
        assert json.loads(stdout.strip().splitlines()[-1])["estimator"] == {
            "ode_method": "rk4", "ode_steps": 2, "likelihood_repeats": 1}
        code, _, err = run(capsys, "ood", str(out), "--examples", "8", "--outliers", "noise",
                           "--estimator", "samples=3")
        assert code == 2 and "no estimator option 'samples'" in err and "ode_steps" in err


def test_latent_diffusion_on_a_vae_runs_codes_samples_and_scores_images(tmp_path, capsys):
    vae, prior = tmp_path / "vae", tmp_path / "prior"
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--steps", "3", "--samples", "0",
                       "--z-dim", "6", "--out", str(vae))
    assert code == 0, err
    code, _, err = run(capsys, "train", "ddpm", "--data", f"vae-latents:{vae}", "--steps", "3",
                       "--timesteps", "10", "--samples", "8", "--out", str(prior))
    assert code == 0, err
    model, _ = unsup.train.load_run(prior)
    assert model.spec.shape == (6,) and model.spec.levels is None
    assert (prior / "samples.png").exists()  # decoded by the VAE: 8x8 images
    png = tmp_path / "s.png"
    code, _, err = run(capsys, "sample", str(prior), "--n", "4", "--steps", "5", "--out", str(png))
    assert code == 0, err
    code, stdout, err = run(capsys, "eval", str(prior), "--sample-quality", "20", "--steps", "2",
                            "--json")
    assert code == 0, err
    quality = json.loads(stdout.strip().splitlines()[-1])["sample_quality"]
    assert quality["sampling"] == {"steps": 2} and quality["samples"]["kid"] == quality["samples"]["kid"]
    code, _, err = run(capsys, "train", "ddpm", "--data", f"vae-latents:{prior}", "--steps", "1",
                       "--out", str(tmp_path / "bad"))  # a ddpm run is no VAE
    assert code == 2 and "holds a ddpm run; this source needs a run of the VAE family" in err


def test_reflow_pairs_each_sample_with_its_noise_and_trains_a_second_flow(tmp_path, capsys):
    teacher_dir, student_dir = tmp_path / "fm", tmp_path / "reflow"
    assert run(capsys, "train", "flow-matching", "--data", "two-moons", "--steps", "3", "--samples", "0",
               "--sample-steps", "3", "--out", str(teacher_dir))[0] == 0
    pairs = unsup.data.load(f"reflow:{teacher_dir}", "train", n=50, steps=4)
    teacher, _ = unsup.train.load_run(teacher_dir)
    batch = pairs.batch(torch.arange(50))
    with torch.no_grad():  # the teacher's ODE from each stored noise lands on the stored sample
        again = teacher.draw_from(batch["noise"], steps=4)
    torch.testing.assert_close(teacher.from_unit(again), batch["x"], atol=1e-5, rtol=1e-5)
    assert len(unsup.data.load(f"reflow:{teacher_dir}", "test")) == len(unsup.data.load("two-moons", "test"))
    code, _, err = run(capsys, "train", "flow-matching", "--data", f"reflow:{teacher_dir}", "--data-opt",
                       "n=64", "--data-opt", "steps=2", "--steps", "3", "--samples", "16",
                       "--out", str(student_dir))
    assert code == 0, err
    code, _, err = run(capsys, "train", "flow-matching", "--data", f"reflow:{tmp_path / 'nothing'}",
                       "--steps", "1", "--out", str(tmp_path / "bad"))
    assert code == 2 and "is not a directory; pass the --out directory" in err


def test_load_run_gives_the_moving_average_or_the_trained_weights(tmp_path, capsys):
    out = tmp_path / "ema"
    assert run(capsys, "train", "ddpm", "--data", "two-moons", "--steps", "4", "--ema", "0.5",
               "--samples", "0", "--no-test", "--out", str(out))[0] == 0
    averaged, _ = unsup.train.load_run(out, "last")
    trained, _ = unsup.train.load_run(out, "last", ema=False)
    state = unsup.train.load_state(out / "last.safetensors")
    for name, value in trained.state_dict().items():
        if name in state["model"]:
            assert torch.equal(value, state["model"][name]), name
            assert torch.equal(averaged.state_dict()[name], state["ema"][name]), name
    assert any(not torch.equal(averaged.state_dict()[k], v) for k, v in trained.state_dict().items())
