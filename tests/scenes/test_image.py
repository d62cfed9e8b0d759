"""The 2D image scene: plain colour images, or colour and opacity over white."""

from __future__ import annotations

import pytest
import torch

from uni3d.cameras import Cameras
from uni3d.scenes.image import ImageScene


def _cams(n: int) -> Cameras:
    return Cameras.from_angles([20.0] * n, [15.0] * n)


def test_plain_images_are_the_sigmoid_of_their_logits():
    scene = ImageScene(2, 8, seed=0)
    out = scene.render(_cams(2))
    torch.testing.assert_close(out.rgb, torch.sigmoid(scene.logits))
    assert torch.all(out.alpha == 1)


def test_white_background_composites_colour_over_white():
    scene = ImageScene(2, 8, seed=0, background="white", opacity_init=0.05)
    with torch.no_grad():
        scene.logits.fill_(-20.0)  # black colour layer
        scene.opacity_logits[0].fill_(-20.0)  # image 0 fully transparent
        scene.opacity_logits[1].fill_(20.0)  # image 1 fully opaque
    out = scene.render(_cams(2))
    torch.testing.assert_close(out.rgb[0], torch.ones(3, 8, 8))
    torch.testing.assert_close(out.rgb[1], torch.zeros(3, 8, 8), atol=1e-6, rtol=0)
    assert out.alpha.shape == (2, 1, 8, 8)


def test_white_background_starts_almost_white_and_both_layers_learn():
    scene = ImageScene(1, 8, seed=0, background="white", opacity_init=0.05)
    out = scene.render(_cams(1), resolution=16)
    assert out.rgb.shape == (1, 3, 16, 16) and out.rgb.min() > 0.94
    out.rgb.sum().backward()
    assert scene.logits.grad.abs().sum() > 0 and scene.opacity_logits.grad.abs().sum() > 0
    assert {id(p) for g in scene.param_groups() for p in g["params"]} == {id(scene.logits), id(scene.opacity_logits)}


def test_bad_background_arguments():
    with pytest.raises(ValueError, match="background"):
        ImageScene(1, 8, background="black")
    with pytest.raises(ValueError, match="opacity_init"):
        ImageScene(1, 8, background="white", opacity_init=1.0)


def test_pyramid_starts_as_the_plain_image_and_moves_coarse_levels_faster():
    plain, pyramid = ImageScene(2, 16, seed=3), ImageScene(2, 16, seed=3, levels=3, detail_lr=0.5, lr=0.04)
    torch.testing.assert_close(pyramid.render(_cams(2)).rgb, plain.render(_cams(2)).rgb)
    assert [p.shape[-1] for p in pyramid.coarse] == [8, 4]
    assert [g["lr"] for g in pyramid.param_groups()] == pytest.approx([0.01, 0.02, 0.04])
    pyramid.render(_cams(2)).rgb[:, 0, :8, :8].sum().backward()  # one quadrant's red
    coarse = pyramid.coarse[1].grad[:, 0]
    assert coarse.abs().sum() > 0 and pyramid.logits.grad[:, :, 8:, 8:].abs().sum() == 0
    assert pyramid.coarse[1].grad[:, 1:].abs().sum() == 0  # green and blue untouched


def test_pyramid_levels_fit_the_resolution():
    from uni3d.scenes.image import pyramid_levels

    assert pyramid_levels(32) == 4 and pyramid_levels(12) == 3 and pyramid_levels(20) == 3 and pyramid_levels(15) == 1
    with pytest.raises(ValueError, match="levels"):
        ImageScene(1, 12, levels=4)
    with pytest.raises(ValueError, match="detail_lr"):
        ImageScene(1, 16, levels=2, detail_lr=0.0)
