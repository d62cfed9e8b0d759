"""uni3d orbit cameras <-> nerfstudio cameras: the same rays, both ways."""

import pytest
import torch

pytest.importorskip("nerfstudio.plugins")  # not just tests/nerfstudio as a namespace package

from uni3d.cameras import Cameras, CameraSampler  # noqa: E402
from uni3d.nerfstudio.cameras import U2NS, from_nerfstudio, rays_to_uni3d, to_nerfstudio  # noqa: E402


def test_u2ns_is_a_rotation_taking_y_up_to_z_up():
    assert torch.allclose(U2NS @ U2NS.T, torch.eye(3)) and torch.det(U2NS) == 1
    assert torch.equal(U2NS @ torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]))


def test_nerfstudio_cameras_cast_the_rays_of_uni3d_cameras():
    cams = CameraSampler().sample(3, torch.Generator().manual_seed(0))
    ns = to_nerfstudio(cams, 8)
    rays = ns.generate_rays(camera_indices=torch.arange(3)[:, None], keep_shape=True)
    # nerfstudio: (H, W, B, 3) for per-camera indices; uni3d: (B, H, W, 3)
    origins, dirs = rays_to_uni3d(rays.origins.permute(2, 0, 1, 3), rays.directions.permute(2, 0, 1, 3))
    want_o, want_d = cams.rays(8)
    assert torch.allclose(origins, want_o, atol=1e-5) and torch.allclose(dirs, want_d, atol=1e-5)


def test_round_trip():
    cams = Cameras.from_angles([0.0, 90.0, 200.0], [-10.0, 15.0, 45.0])
    back = from_nerfstudio(to_nerfstudio(cams, 16))
    assert torch.allclose(back.azimuth, cams.azimuth, atol=1e-3) and torch.allclose(back.elevation, cams.elevation, atol=1e-3)
    assert back.radius == pytest.approx(cams.radius, abs=1e-5) and back.fov == pytest.approx(cams.fov, abs=1e-4)


def test_a_camera_not_looking_at_the_origin_is_refused():
    ns = to_nerfstudio(Cameras.from_angles(30.0, 10.0), 16)
    ns.camera_to_worlds[..., 3] += 0.5
    with pytest.raises(ValueError, match="orbit"):
        from_nerfstudio(ns)
