"""uni3d orbit cameras as nerfstudio cameras and back, and rays between the two worlds.

uni3d's world is y-up (``uni3d.cameras``); nerfstudio's viewer is z-up. A point ``p`` of the uni3d world is
``U2NS @ p`` in nerfstudio's: ``(x, y, z) -> (x, -z, y)``, a rotation, so distances and depths agree.
nerfstudio cameras follow OpenGL: the camera looks along its -z axis with +y up, pixel centres at +0.5.
"""

from __future__ import annotations

import math

import torch
from nerfstudio.cameras.cameras import Cameras as NSCameras

from uni3d.cameras import Cameras

U2NS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""Rotation from uni3d world coordinates (y up) to nerfstudio's (z up)."""


def to_nerfstudio(cams: Cameras, resolution: int) -> NSCameras:
    """Square pinhole nerfstudio cameras that cast exactly the rays of ``cams.rays(resolution)``."""
    right, up, forward = cams.basis()
    rotation = U2NS @ torch.stack([right, up, -forward], dim=-1)  # columns: camera x, y, z in the world
    position = (U2NS @ cams.positions()[..., None])
    focal = resolution / 2 / math.tan(math.radians(cams.fov) / 2)
    return NSCameras(camera_to_worlds=torch.cat([rotation, position], dim=-1), fx=focal, fy=focal,
                     cx=resolution / 2, cy=resolution / 2, width=resolution, height=resolution)


def from_nerfstudio(cams: NSCameras, atol: float = 1e-4) -> Cameras:
    """The uni3d orbit cameras of nerfstudio cameras made by :func:`to_nerfstudio`.

    Raises ValueError for cameras that do not look at the origin from one radius with one square field of
    view (uni3d's Cameras describe only those).
    """
    c2w = cams.camera_to_worlds.reshape(-1, 3, 4).detach().cpu().float()
    pos = (U2NS.T @ c2w[:, :, 3:])[..., 0]
    radius = pos.norm(dim=-1)
    back = (U2NS.T @ c2w[:, :, 2:3])[..., 0]  # the camera's +z: from the origin towards the camera
    fx, fy = cams.fx.reshape(-1).cpu(), cams.fy.reshape(-1).cpu()
    half_h = cams.cy.reshape(-1).cpu()
    if not (torch.allclose(back, pos / radius[:, None], atol=atol) and torch.allclose(radius, radius[0].expand_as(radius), atol=atol)
            and torch.allclose(fx, fy) and torch.allclose(fx, fx[0].expand_as(fx))):
        raise ValueError("not uni3d orbit cameras: each must look at the origin, from one radius, with one square field of view")
    azimuth = torch.rad2deg(torch.atan2(pos[:, 0], pos[:, 2])) % 360.0
    elevation = torch.rad2deg(torch.asin((pos[:, 1] / radius).clamp(-1, 1)))
    fov = math.degrees(2 * math.atan(float(half_h[0]) / float(fy[0])))
    return Cameras(azimuth, elevation, float(radius[0]), fov)


def rays_to_uni3d(origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray origins and directions (..., 3) from nerfstudio's world to uni3d's."""
    r = U2NS.to(origins)
    return origins @ r, directions @ r
