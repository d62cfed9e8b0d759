import math

import torch

from uni3d.cameras import CAMERA_FEATURES, Cameras, CameraSampler, camera_features


def test_azimuth_zero_looks_from_plus_z():
    pos = Cameras.from_angles([0.0, 90.0, 180.0, 0.0], [0.0, 0.0, 0.0, 90.0]).positions()
    expected = torch.tensor([[0, 0, 2.5], [2.5, 0, 0], [0, 0, -2.5], [0, 2.5, 0]])
    assert torch.allclose(pos, expected, atol=1e-5)


def test_rays_centre_and_right_is_plus_x():
    origins, dirs = Cameras.from_angles(0.0, 0.0).rays(2)
    centre = dirs[0].mean(dim=(0, 1))
    assert torch.allclose(centre / centre.norm(), torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)
    # column 1 (right) leans to +x, row 0 (top) leans to +y
    assert dirs[0, 0, 1, 0] > 0 > dirs[0, 0, 0, 0]
    assert dirs[0, 0, 0, 1] > 0 > dirs[0, 1, 0, 1]
    assert torch.allclose(origins[0, 0, 0], torch.tensor([0.0, 0.0, 2.5]))


def test_field_of_view_is_40_degrees():
    _, dirs = Cameras.from_angles(30.0, 10.0).rays(64)
    left, right = dirs[0, 32, 0], dirs[0, 32, -1]
    angle = math.degrees(math.acos(float((left * right).sum())))
    # pixel centres span (63/64) of the full 40 degree field
    expected = 2 * math.degrees(math.atan(math.tan(math.radians(20)) * 63 / 64))
    assert abs(angle - expected) < 1e-3


def test_sampler_matches_training_distribution():
    cams = CameraSampler().sample(4000, generator=torch.Generator().manual_seed(0))
    assert cams.azimuth.min() >= 0 and cams.azimuth.max() < 360
    assert cams.elevation.min() >= -10 and cams.elevation.max() <= 45
    assert abs(cams.azimuth.mean().item() - 180) < 10


def test_camera_features_drop_to_zero():
    f = camera_features(Cameras.from_angles([0.0, 90.0], [0.0, 30.0]), 2)
    assert f.shape == (2, CAMERA_FEATURES)
    assert torch.all(f[:, -1] == 1)
    assert torch.count_nonzero(camera_features(None, 3)) == 0


def test_cameras_follow_the_device_of_their_angles():
    """Rays and bases are made where the angles are (a scene on CUDA moves its cameras there)."""
    cams = CameraSampler().sample(3, torch.Generator().manual_seed(0)).to("meta")
    origins, dirs = cams.rays(8)
    assert origins.device.type == dirs.device.type == "meta" and dirs.shape == (3, 8, 8, 3)
