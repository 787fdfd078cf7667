"""Cached convolutions: cropped kernels, position and row evaluation equal to the dense pass, and
PixelCNN's cached sampler equal to its naive one."""

import itertools

import pytest
import torch

import unsup
from unsup.data.base import DataSpec
from unsup.nn.cached_conv import ConvCache, Kernel, PaddedConv2d, dense
from unsup.nn.layers import MaskedConv2d


def test_kernels_are_cropped_to_their_taps():
    a = Kernel.of(MaskedConv2d(2, 3, 5, "A"))
    assert tuple(a.weight.shape) == (3, 2, 3, 5) and (a.top, a.left) == (2, 2)
    assert a.pads == (2, 2, 2, 0)  # nothing below the centre row is read
    b = Kernel.of(MaskedConv2d(2, 3, 1, "B"))
    assert b.pointwise
    row = Kernel.of(PaddedConv2d(2, 4, (1, 3), top=0, left=2,
                                 mask=torch.tensor([1.0, 1.0, 0.0]).expand(4, 2, 1, 3)))
    assert tuple(row.weight.shape) == (4, 2, 1, 2) and (row.top, row.left) == (0, 2)
    assert row.pads == (2, 0, 0, 0)


CAUSAL = [  # windows within the rows above and the current row up to the centre
    MaskedConv2d(3, 4, 3, "A"),
    MaskedConv2d(3, 4, 5, "B", channel_groups=3),
    PaddedConv2d(3, 4, (1, 2), top=0, left=1),
    MaskedConv2d(3, 4, 1, "B"),
]
VERTICAL = PaddedConv2d(3, 4, (2, 3), top=1, left=1)  # reads the current row to the right too


@pytest.mark.parametrize("conv", CAUSAL)
def test_positions_in_raster_order_equal_the_dense_map(conv):
    """Causal convolutions at each position in turn, storing each input as it comes."""
    torch.manual_seed(0)
    h = torch.randn(2, 3, 5, 6)
    with torch.no_grad():
        full = dense(conv, h)
        cache = ConvCache(2, 5, 6)
        for i, j in itertools.product(range(5), range(6)):
            out = cache.at(i, j)(conv, h[:, :, i:i + 1, j:j + 1])
            assert torch.allclose(out[:, :, 0, 0], full[:, :, i, j], atol=1e-5), (i, j)
            source = cache.at(i, j)(conv, h, source=True)  # the input image read directly
            assert torch.allclose(source[:, :, 0, 0], full[:, :, i, j], atol=1e-5), (i, j)


@pytest.mark.parametrize("conv", [*CAUSAL, VERTICAL])
def test_rows_in_order_equal_the_dense_map(conv):
    torch.manual_seed(0)
    h = torch.randn(2, 3, 5, 6)
    with torch.no_grad():
        full = dense(conv, h)
        cache = ConvCache(2, 5, 6)
        for i in range(5):
            out = cache.row(i)(conv, h[:, :, i:i + 1])
            assert torch.allclose(out[:, :, 0], full[:, :, i], atol=1e-5), i
            source = cache.row(i)(conv, h, source=True)
            assert torch.allclose(source[:, :, 0], full[:, :, i], atol=1e-5), i


def test_padded_conv_footprint():
    conv = PaddedConv2d(1, 1, (2, 3), top=1, left=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = 1.0
    out = conv(x)[0, 0]
    assert out.shape == (4, 4)
    # (1, 2) is read by outputs in rows 1..2 (rows p - 1 .. p) and columns 1..3.
    expected = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0]]) > 0
    assert torch.equal(out > 0, expected)
    with pytest.raises(ValueError, match="outside"):
        PaddedConv2d(1, 1, (2, 3), top=2, left=0)


@pytest.mark.parametrize("shape,levels,classes,options", [
    ((1, 7, 6), 2, None, {}),
    ((1, 5, 5), 4, None, {"residual": True, "first_kernel_size": 5}),
    ((3, 4, 4), 3, None, {"hidden": 30, "channel_dependence": "autoregressive"}),
    ((1, 5, 6), 2, 3, {"conditional": True}),
    ((2, 4, 4), 5, 4, {"conditional": True, "residual": True}),
    ((2,), 7, None, {}),  # a vector: a one-row image
])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_pixelcnn_cached_sampling_equals_naive_sampling(shape, levels, classes, options,
                                                        temperature):
    torch.manual_seed(0)
    kind = "vector" if len(shape) == 1 else "image"
    model = unsup.create("pixelcnn", DataSpec(shape, levels, classes, kind),
                         **{"hidden": 8, "num_layers": 2, "first_kernel_size": 3, **options})
    model.eval()
    y = None if classes is None else torch.tensor([2, 0, 1, 2, 1])
    torch.manual_seed(3)
    naive = model.sample(5, y=y, temperature=temperature, fast=False)
    torch.manual_seed(3)
    fast = model.sample(5, y=y, temperature=temperature)
    assert torch.equal(naive, fast) and naive.shape == (5, *shape)
    assert model.supports_fast_sampling
