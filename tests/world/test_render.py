"""Renderer spec: white background, the lit-face colour, the handle on +x."""

import math

import pytest
import torch

from uni3d.cameras import Cameras
from uni3d.world.render import render


def test_background_is_white():
    img = render(["sphere"], ["red"], Cameras.from_angles(0.0, 0.0), resolution=32)
    assert img.shape == (1, 3, 32, 32)
    assert torch.all(img[0, :, 0, 0] == 1.0)
    assert torch.all(img[0, :, -1, -1] == 1.0)


def test_lit_top_face_colour():
    # Seen from above, the centre pixel is the cube's top face: normal +y, n.l = 1/|(0.5, 1, 0.35)|.
    img = render(["cube"], ["red"], Cameras.from_angles(0.0, 89.0), resolution=16)
    lambert = 1.0 / math.sqrt(0.5**2 + 1.0**2 + 0.35**2)
    expected = torch.tensor([0.85, 0.10, 0.10]) * (0.35 + 0.65 * lambert)
    assert torch.allclose(img[0, :, 8, 8], expected, atol=1e-3)


def test_unlit_face_is_ambient():
    # The cube's -x face faces away from the light (l.x > 0): ambient only. Seen from azimuth -90.
    img = render(["cube"], ["gray"], Cameras.from_angles(-90.0, 0.0), resolution=16)
    assert torch.allclose(img[0, :, 8, 8], torch.full((3,), 0.55 * 0.35), atol=1e-3)


@pytest.mark.parametrize("azimuth,side", [(0.0, 1), (180.0, -1)])
def test_mug_handle_points_to_plus_x(azimuth, side):
    img = render(["mug"], ["blue"], Cameras.from_angles(azimuth, 0.0), resolution=64)
    occupancy = (img[0].min(dim=0).values < 0.99).float()
    cols = torch.arange(64).float() - 31.5
    centroid = (occupancy.sum(0) * cols).sum() / occupancy.sum()
    assert centroid * side > 2.0  # the handle pulls the silhouette to the image's right at az 0


def test_deterministic_and_batched():
    cams = Cameras.from_angles([10.0, 200.0], [5.0, 30.0])
    a = render(["torus", "cone"], ["green", "yellow"], cams)
    b = render(["cone"], ["yellow"], cams[1:])
    assert torch.equal(a[1:], b)
