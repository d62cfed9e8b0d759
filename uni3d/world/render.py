"""A batched sphere tracer for Shapes World: Lambertian shading, fixed light, white background."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from uni3d.cameras import Cameras
from uni3d.world.shapes import BOUNDING_RADIUS, COLOUR_NAMES, COLOURS, SHAPE_NAMES, sdf_by_index

LIGHT = torch.tensor([0.5, 1.0, 0.35]) / math.sqrt(0.5**2 + 1.0**2 + 0.35**2)
"""Unit direction towards the light, fixed in the world."""
AMBIENT, DIFFUSE = 0.35, 0.65


def shade(albedo: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """``albedo * (0.35 + 0.65 * max(0, n . l))`` for (..., 3) albedos and unit normals."""
    lambert = (normal * LIGHT.to(normal)).sum(-1, keepdim=True).clamp(min=0)
    return albedo * (AMBIENT + DIFFUSE * lambert)


def _normals(p: torch.Tensor, shape_idx: torch.Tensor, sdf_fn, eps: float = 1e-4) -> torch.Tensor:
    offsets = torch.eye(3, dtype=p.dtype) * eps
    grad = torch.stack([sdf_fn(p + o, shape_idx) - sdf_fn(p - o, shape_idx) for o in offsets], dim=-1)
    return grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-12)


@torch.no_grad()
def render(
    shapes: list[str] | torch.Tensor,
    colours: list[str] | torch.Tensor,
    cams: Cameras,
    resolution: int = 32,
    supersample: int = 2,
    steps: int = 96,
    sdf_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = sdf_by_index,
) -> torch.Tensor:
    """Render one object per camera.

    Args:
        shapes: shape names, or indices into ``SHAPE_NAMES``, one per camera.
        colours: colour names, or indices into ``COLOUR_NAMES``, one per camera.
        cams: the cameras (B).
        resolution: output side in pixels.
        supersample: rays per pixel side; the image is the box-filtered mean.
        steps: sphere-tracing iterations.
        sdf_fn: signed distance of points (N, 3) given their shape indices (N,); the world's by default.

    Returns:
        (B, 3, resolution, resolution) display values in [0, 1].
    """
    shape_idx = _indices(shapes, SHAPE_NAMES)
    colour_idx = _indices(colours, COLOUR_NAMES)
    b = len(cams)
    if shape_idx.numel() != b or colour_idx.numel() != b:
        raise ValueError(f"need one shape and one colour per camera ({b}), got {shape_idx.numel()} and {colour_idx.numel()}")
    res = resolution * supersample
    origins, dirs = cams.rays(res)
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    ray_shape = shape_idx.repeat_interleave(res * res)
    # Enter the bounding sphere, then march.
    bo = (o * d).sum(-1)
    disc = bo * bo - (o * o).sum(-1) + BOUNDING_RADIUS**2
    t = (-bo - disc.clamp(min=0).sqrt()).clamp(min=0)
    t_far = -bo + disc.clamp(min=0).sqrt()
    active = disc > 0
    hit = torch.zeros_like(active)
    for _ in range(steps):
        idx = active.nonzero().squeeze(-1)
        if idx.numel() == 0:
            break
        dist = sdf_fn(o[idx] + t[idx, None] * d[idx], ray_shape[idx])
        t[idx] = t[idx] + dist
        done_hit = dist < 1e-4
        done_miss = t[idx] > t_far[idx]
        hit[idx[done_hit]] = True
        active[idx[done_hit | done_miss]] = False
    palette = torch.tensor([COLOURS[c] for c in COLOUR_NAMES])
    albedo = palette[colour_idx].repeat_interleave(res * res, dim=0)
    image = torch.ones(o.shape[0], 3)
    hit_idx = hit.nonzero().squeeze(-1)
    if hit_idx.numel():
        p = o[hit_idx] + t[hit_idx, None] * d[hit_idx]
        image[hit_idx] = shade(albedo[hit_idx], _normals(p, ray_shape[hit_idx], sdf_fn))
    image = image.view(b, res, res, 3).permute(0, 3, 1, 2)
    if supersample > 1:
        image = F.avg_pool2d(image, supersample)
    return image.clamp(0, 1).contiguous()


def _indices(names: list[str] | torch.Tensor, table: list[str]) -> torch.Tensor:
    if isinstance(names, torch.Tensor):
        return names.long().reshape(-1)
    out = []
    for n in names:
        if n not in table:
            raise ValueError(f"unknown name {n!r}; expected one of {', '.join(table)}")
        out.append(table.index(n))
    return torch.tensor(out, dtype=torch.long)
