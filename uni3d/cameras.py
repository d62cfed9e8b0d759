"""Pinhole cameras on a sphere around the origin, and the sampler of training views.

Convention (shared by Shapes World, the teachers and every scene): world units, y up; a camera
at azimuth ``az`` and elevation ``el`` (degrees) sits at
``radius * (cos(el) sin(az), sin(el), cos(el) cos(az))`` and looks at the origin with up +y, so
azimuth 0 looks from +z and +x appears on the right of the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

FOV_DEG = 40.0
"""Vertical (= horizontal) field of view of every camera, in degrees."""
RADIUS = 2.5
"""Distance of every camera from the origin, in world units."""
ELEVATION_RANGE = (-10.0, 45.0)
"""Elevation range of the training views, in degrees."""


@dataclass(frozen=True)
class Cameras:
    """A batch of cameras looking at the origin.

    Attributes:
        azimuth: (B,) degrees; 0 looks from +z, 90 from +x.
        elevation: (B,) degrees above the xz-plane.
        radius: distance from the origin (world units).
        fov: field of view in degrees.
    """

    azimuth: torch.Tensor
    elevation: torch.Tensor
    radius: float = RADIUS
    fov: float = FOV_DEG

    def __len__(self) -> int:
        return int(self.azimuth.shape[0])

    @staticmethod
    def from_angles(azimuth, elevation, radius: float = RADIUS, fov: float = FOV_DEG) -> Cameras:
        """Cameras from scalars, lists or tensors of angles in degrees."""
        az = torch.as_tensor(azimuth, dtype=torch.float32).reshape(-1)
        el = torch.as_tensor(elevation, dtype=torch.float32).reshape(-1)
        az, el = torch.broadcast_tensors(az, el)
        return Cameras(az.contiguous(), el.contiguous(), radius, fov)

    def to(self, device: torch.device | str) -> Cameras:
        """The same cameras with their angles on ``device`` (rays and bases are made where the angles are)."""
        return Cameras(self.azimuth.to(device), self.elevation.to(device), self.radius, self.fov)

    def __getitem__(self, idx) -> Cameras:
        return Cameras(self.azimuth[idx].reshape(-1), self.elevation[idx].reshape(-1), self.radius, self.fov)

    def positions(self) -> torch.Tensor:
        """(B, 3) camera centres in world coordinates."""
        az, el = torch.deg2rad(self.azimuth), torch.deg2rad(self.elevation)
        return self.radius * torch.stack(
            [torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)], dim=-1
        )

    def basis(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit (right, up, forward) vectors of each camera in world coordinates, each (B, 3)."""
        origin = self.positions()
        forward = -origin / origin.norm(dim=-1, keepdim=True)
        up = torch.tensor([0.0, 1.0, 0.0], device=forward.device).expand_as(forward)
        right = torch.linalg.cross(forward, up, dim=-1)
        right = right / right.norm(dim=-1, keepdim=True)
        return right, torch.linalg.cross(right, forward, dim=-1), forward

    def rays(self, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Ray origins and unit directions, each (B, H, W, 3), pixel centres, row 0 at the top."""
        origin = self.positions()
        right, true_up, forward = self.basis()
        half = math.tan(math.radians(self.fov) / 2)
        coords = (torch.arange(resolution, dtype=torch.float32, device=origin.device) + 0.5) / resolution * 2 - 1
        x = (coords * half).view(1, 1, -1, 1)  # columns, left to right
        y = (-coords * half).view(1, -1, 1, 1)  # rows, top to bottom
        dirs = forward[:, None, None] + x * right[:, None, None] + y * true_up[:, None, None]
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        origins = origin[:, None, None].expand_as(dirs)
        return origins, dirs

    def ray_cosines(self, resolution: int) -> torch.Tensor:
        """(B, 1, H, W) cosine between each pixel's ray and the optical axis: z-depth / ray distance."""
        _, dirs = self.rays(resolution)
        return (dirs * self.basis()[2][:, None, None]).sum(-1)[:, None]


def camera_features(cams: Cameras | None, batch: int) -> torch.Tensor:
    """Sinusoidal features of a view: the camera input of a camera-aware teacher or fake score.

    Returns (B, 13): sin/cos of 1..4 x azimuth, sin/cos of 1..2 x elevation, and a flag that is 1
    for a known camera. ``None`` (the camera dropped) gives all zeros.
    """
    if cams is None:
        return torch.zeros(batch, CAMERA_FEATURES)
    az, el = torch.deg2rad(cams.azimuth), torch.deg2rad(cams.elevation)
    feats = []
    for k in (1, 2, 3, 4):
        feats += [torch.sin(k * az), torch.cos(k * az)]
    for k in (1, 2):
        feats += [torch.sin(k * el), torch.cos(k * el)]
    feats.append(torch.ones_like(az))
    return torch.stack(feats, dim=-1)


CAMERA_FEATURES = 13
"""Width of :func:`camera_features`."""


@dataclass
class CameraSampler:
    """Random training views: azimuth uniform on [0, 360), elevation uniform in a range.

    The defaults match the shapes teacher's training distribution.
    """

    elevation_range: tuple[float, float] = ELEVATION_RANGE
    radius: float = RADIUS
    fov: float = FOV_DEG

    def sample(self, n: int, generator: torch.Generator | None = None) -> Cameras:
        u = torch.rand(2, n, generator=generator)
        lo, hi = self.elevation_range
        return Cameras(u[0] * 360.0, lo + u[1] * (hi - lo), self.radius, self.fov)

    def turntable(self, n: int, elevation: float = 20.0) -> Cameras:
        """``n`` views evenly spaced in azimuth at one elevation."""
        az = torch.arange(n, dtype=torch.float32) * (360.0 / n)
        return Cameras(az, torch.full((n,), float(elevation)), self.radius, self.fov)
