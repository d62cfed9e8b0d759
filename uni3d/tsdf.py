"""Truncated signed distance fusion of rendered depth (Curless and Levoy 1996): open3d's, or the same in pure torch.

The route from a scene without a usable density field (3D Gaussians) to a mesh: render depth and
opacity from a ring of views, fuse them into a voxel grid of truncated signed distances, and take
its zero level set with marching cubes. In the torch route, pixels below half opacity count as seen-through, so
every view carves free space as well as placing surface. open3d's route (``fuse_open3d``, chosen when open3d
imports) integrates the same depth maps into its ``UniformTSDFVolume`` and meshes it with its own marching cubes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from uni3d.cameras import Cameras, CameraSampler
from uni3d.errors import UserError


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


def rendered_depth(scene, view: Cameras, resolution: int) -> torch.Tensor:
    """(B, 1, H, W) ray distance to the surface each pixel sees, on the CPU; inf where the render is below half
    opacity (seen-through)."""
    out = scene.render(view, resolution, jitter=False)
    alpha = out.alpha.detach().float().cpu()
    depth = out.depth.detach().float().cpu() / alpha.clamp(min=1e-6)
    return torch.where(alpha > 0.5, depth, torch.full_like(alpha, math.inf))


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
        depth = rendered_depth(scene, view, resolution)
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



def open3d_available() -> bool:
    """Whether open3d imports (it needs Debian's libusb-1.0-0 besides the wheel)."""
    try:
        import open3d  # noqa: F401
    except ImportError:
        return False
    return True


def _import_open3d():
    try:
        import open3d as o3d
    except ImportError as err:
        raise UserError(f"open3d does not import ({err}): pip install open3d-cpu (and, on Debian/Ubuntu, apt-get "
                        "install libusb-1.0-0), or pass --export.tsdf-backend torch") from err
    return o3d


@torch.no_grad()
def fuse_open3d(scene, cams: Cameras, resolution: int, grid: int, bound: float, truncation: float,
                chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The same fusion by open3d's ``UniformTSDFVolume``, then its marching cubes: (vertices (V, 3), faces (F, 3)).

    The volume's voxel centres are the nodes of the torch route's lattice (``grid`` over [-bound, bound]^3).
    Pixels below half opacity carry no depth, so open3d carves no free space: only voxels near a seen surface
    are meshed. Cameras follow OpenCV's convention there (x right, y down, z forward, pixel centres at integers).
    """
    o3d = _import_open3d()
    spacing = 2 * bound / (grid - 1)
    volume = o3d.pipelines.integration.UniformTSDFVolume(
        length=spacing * grid, resolution=grid, sdf_trunc=truncation,
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.NoColor,
        origin=np.full((3, 1), -bound - spacing / 2))
    focal = resolution / (2 * math.tan(math.radians(cams.fov) / 2))
    intrinsic = o3d.camera.PinholeCameraIntrinsic(resolution, resolution, focal, focal,
                                                  resolution / 2 - 0.5, resolution / 2 - 0.5)
    blank = o3d.geometry.Image(np.zeros((resolution, resolution, 3), np.uint8))
    for i in range(0, len(cams), chunk):
        view = cams[i:i + chunk]
        z = rendered_depth(scene, view, resolution) * view.ray_cosines(resolution).cpu()  # open3d takes z-depth
        z = torch.nan_to_num(z, posinf=0.0)[:, 0].numpy()  # 0: no depth
        right, up, forward = (v.cpu() for v in view.basis())
        rot = torch.stack([right, -up, forward], 1)  # (b, 3, 3): world -> camera rows
        trans = -(rot @ view.positions().cpu()[..., None])[..., 0]
        for k in range(len(view)):
            extrinsic = np.eye(4)
            extrinsic[:3, :3], extrinsic[:3, 3] = rot[k].numpy(), trans[k].numpy()
            rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
                blank, o3d.geometry.Image(np.ascontiguousarray(z[k])), depth_scale=1.0,
                depth_trunc=view.radius + 2 * bound, convert_rgb_to_intensity=False)
            volume.integrate(rgbd, intrinsic, extrinsic)
    mesh = volume.extract_triangle_mesh()
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.triangles, dtype=np.int64)
