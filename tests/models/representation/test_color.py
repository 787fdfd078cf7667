"""sRGB <-> CIE Lab: known values and the round trip."""

import torch

from unsup.models.representation.color import lab_to_rgb, rgb_to_lab


def pixels(*rgb: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor(rgb).T.reshape(1, 3, len(rgb), 1)  # (1, 3, N, 1)


def test_known_lab_values():
    lab = rgb_to_lab(pixels((1, 1, 1), (1, 0, 0), (0, 0, 0), (0.5, 0.5, 0.5)))[0, :, :, 0].T
    assert torch.allclose(lab[0], torch.tensor([100.0, 0, 0]), atol=1e-3)  # white
    assert torch.allclose(lab[1], torch.tensor([53.24, 80.09, 67.20]), atol=0.01)  # sRGB red
    assert torch.allclose(lab[2], torch.zeros(3), atol=1e-4)  # black
    assert torch.allclose(lab[3, 1:], torch.zeros(2), atol=1e-3)  # greys are achromatic
    assert abs(lab[3, 0] - 53.39) < 0.01  # sRGB 0.5 (128/255 is 53.59)


def test_rgb_lab_rgb_round_trip():
    rgb = torch.rand(8, 3, 16, 16)
    assert (lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max() < 1e-4


def test_lab_to_rgb_clips_out_of_gamut_colours():
    lab = torch.tensor([50.0, 150.0, -150.0]).view(1, 3, 1, 1)
    rgb = lab_to_rgb(lab)
    assert torch.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
