"""Truncated signed distance fusion of rendered depth (Curless and Levoy 1996), in pure torch.

The route from a scene without a usable density field (3D Gaussians) to a mesh: render depth and
opacity from a ring of views, fuse them into a voxel grid of truncated signed distances, and take
its zero level set with marching cubes. Pixels below half opacity count as seen-through, so every
view carves free space as well as placing surface.
"""

from __future__ import annotations

import math

import torch

from uni3d.cameras import Cameras, CameraSampler


def fusion_cameras(views: int, elevations: tuple[float, ...] = (-20.0, 15.0, 50.0)) -> Cameras:
    """``views`` cameras per elevation, azimuths staggered between rings so they cover the sphere."""
    sampler = CameraSampler()
    rings = []
    for i, el in enumerate(elevations):
        ring = sampler.turntable(views, elevation=el)
        rings.append(Cameras(ring.azimuth + i * 360.0 / views / len(elevations), ring.elevation, ring.radius, ring.fov))
    return Cameras(torch.cat([r.azimuth for r in rings]), torch.cat([r.elevation for r in rings]),
                   rings[0].radius, rings[0].fov)


def project(points: torch.Tensor, cams: Cameras, resolution: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where world points (N, 3) land in each camera: normalised image coordinates (B, N, 2) in
    [-1, 1] (x right, y down, grid_sample's convention), ray distance (B, N), and in front (B, N)."""
    right, up, forward = cams.basis()
    rel = points[None] - cams.positions()[:, None]  # (B, N, 3)
    z = (rel * forward[:, None]).sum(-1)
    half = math.tan(math.radians(cams.fov) / 2)
    x = (rel * right[:, None]).sum(-1) / z.clamp(min=1e-6) / half
    y = -(rel * up[:, None]).sum(-1) / z.clamp(min=1e-6) / half
    return torch.stack([x, y], -1), rel.norm(dim=-1), z > 1e-3


@torch.no_grad()
def fuse(scene, cams: Cameras, resolution: int, grid: int, bound: float, truncation: float,
         chunk: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """TSDF and observation weight on a ``grid``^3 lattice over [-bound, bound]^3, indexed [x, y, z].

    Signed distances are measured along each camera's ray (positive in front of the surface), divided
    by ``truncation`` and clamped to [-1, 1]; voxels more than ``truncation`` behind the seen surface
    are occluded and get no vote from that view. A voxel no view votes on reads -1 (inside) when some
    view saw it occluded, else +1 (empty).
    """
    axis = torch.linspace(-bound, bound, grid)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).view(-1, 3)
    total = torch.zeros(points.shape[0])
    weight = torch.zeros(points.shape[0])
    behind = torch.zeros(points.shape[0])
    for i in range(0, len(cams), chunk):
        view = cams[i:i + chunk]
        out = scene.render(view, resolution, jitter=False)
        alpha = out.alpha.detach().float().cpu()
        depth = torch.where(alpha > 0.5, out.depth.detach().float().cpu() / alpha.clamp(min=1e-6), torch.full_like(alpha, math.inf))
        uv, dist, front = project(points, view, resolution)
        seen = torch.nn.functional.grid_sample(depth, uv[:, :, None], mode="nearest", align_corners=False,
                                               padding_mode="border")[:, 0, :, 0]  # (b, N)
        inside = front & (uv.abs() <= 1).all(-1)
        sdf = seen - dist
        vote = inside & (sdf > -truncation)
        value = (sdf / truncation).clamp(-1, 1)
        total += torch.where(vote, value, torch.zeros_like(value)).sum(0)
        weight += vote.float().sum(0)
        behind += (inside & (sdf <= -truncation)).float().sum(0)
    unseen = torch.where(behind > 0, -torch.ones_like(total), torch.ones_like(total))
    tsdf = torch.where(weight > 0, total / weight.clamp(min=1), unseen)
    return tsdf.view(grid, grid, grid), weight.view(grid, grid, grid)

