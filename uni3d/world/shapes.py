"""Shapes World v1: the six solids as signed distance functions, and the palette.

Every SDF takes points ``p`` of shape (..., 3) in world units (y up, object centred at the
origin) and returns (...) signed distances, negative inside.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "green": (0.10, 0.65, 0.15),
    "blue": (0.10, 0.20, 0.85),
    "yellow": (0.90, 0.80, 0.10),
    "purple": (0.55, 0.15, 0.70),
    "gray": (0.55, 0.55, 0.55),
}
"""Albedo of each colour name, RGB in [0, 1]."""


def _length2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(a * a + b * b)


def sdf_sphere(p: torch.Tensor, radius: float = 0.50) -> torch.Tensor:
    return p.norm(dim=-1) - radius


def sdf_box(p: torch.Tensor, half_extent: float = 0.38) -> torch.Tensor:
    q = p.abs() - half_extent
    outside = q.clamp(min=0).norm(dim=-1)
    inside = q.max(dim=-1).values.clamp(max=0)
    return outside + inside


def sdf_cylinder_y(p: torch.Tensor, radius: float, half_height: float) -> torch.Tensor:
    """Capped cylinder about the y axis with flat closed caps."""
    dx = _length2(p[..., 0], p[..., 2]) - radius
    dy = p[..., 1].abs() - half_height
    outside = _length2(dx.clamp(min=0), dy.clamp(min=0))
    inside = torch.maximum(dx, dy).clamp(max=0)
    return outside + inside


def sdf_cone(p: torch.Tensor, base_radius: float = 0.45, half_height: float = 0.42) -> torch.Tensor:
    """Closed cone about y: a base disc of ``base_radius`` at y = -h, the apex at y = +h.

    Exact distance in the (radial, y) half-plane: the nearer of the base segment and the slanted
    side segment, negative when the point is inside both the slab and the side.
    """
    qx = _length2(p[..., 0], p[..., 2])
    qy = p[..., 1]
    h = half_height
    # Distance to the base cap segment {(x, -h): 0 <= x <= base_radius}.
    cap_x = qx - qx.clamp(max=base_radius)
    cap_y = qy + h
    d_cap = _length2(cap_x, cap_y)
    # Distance to the side segment from the base rim (R, -h) to the apex (0, h).
    ax, ay = base_radius, -h
    ex, ey = -base_radius, 2 * h  # apex - rim
    s = (((qx - ax) * ex + (qy - ay) * ey) / (ex * ex + ey * ey)).clamp(0, 1)
    d_side = _length2(qx - (ax + s * ex), qy - (ay + s * ey))
    # Inside: above the base and on the axis side of the slanted line.
    below_side = (qx - ax) * ey - (qy - ay) * ex < 0  # cross product sign: left of rim->apex
    inside = (qy > -h) & below_side
    d = torch.minimum(d_cap, d_side)
    return torch.where(inside, -d, d)


def sdf_torus_xz(p: torch.Tensor, major: float = 0.38, minor: float = 0.17) -> torch.Tensor:
    """Torus whose ring lies in the xz-plane, centred at the origin."""
    return _length2(_length2(p[..., 0], p[..., 2]) - major, p[..., 1]) - minor


def sdf_mug(p: torch.Tensor) -> torch.Tensor:
    """Union of the body (cylinder r 0.30, half-height 0.36) and a handle pointing to +x."""
    body = sdf_cylinder_y(p, 0.30, 0.36)
    hx, hy, hz = p[..., 0] - 0.34, p[..., 1], p[..., 2]
    handle = _length2(_length2(hx, hy) - 0.20, hz) - 0.07
    return torch.minimum(body, handle)


SHAPES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sphere": sdf_sphere,
    "cube": sdf_box,
    "cylinder": lambda p: sdf_cylinder_y(p, 0.35, 0.42),
    "cone": sdf_cone,
    "torus": sdf_torus_xz,
    "mug": sdf_mug,
}
"""SDF of each shape name."""

SHAPE_NAMES = list(SHAPES)
COLOUR_NAMES = list(COLOURS)
BOUNDING_RADIUS = 0.75
"""Every object lies inside this sphere about the origin."""


def sdf(p: torch.Tensor, shape: str) -> torch.Tensor:
    """Signed distance of points ``p`` (..., 3) to the named shape."""
    try:
        fn = SHAPES[shape]
    except KeyError:
        raise ValueError(f"unknown shape {shape!r}; Shapes World has {', '.join(SHAPES)}") from None
    return fn(p)


def sdf_by_index(p: torch.Tensor, shape_idx: torch.Tensor) -> torch.Tensor:
    """Signed distances of points (N, 3), each to the shape of its own index (N,) into SHAPE_NAMES."""
    out = torch.empty(p.shape[:-1], dtype=p.dtype, device=p.device)
    for i in shape_idx.unique().tolist():
        mask = shape_idx == i
        out[mask] = SHAPES[SHAPE_NAMES[i]](p[mask])
    return out
