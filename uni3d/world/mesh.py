"""Ground-truth meshes of Shapes World objects (world units, y up, centred, vertex-coloured)."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from uni3d.world.shapes import BOUNDING_RADIUS, COLOURS, sdf


def sdf_grid(shape: str, resolution: int = 128, extent: float = BOUNDING_RADIUS + 0.05) -> tuple[np.ndarray, float]:
    """SDF sampled on a ``resolution``^3 grid over [-extent, extent]^3; returns (values[x, y, z], spacing)."""
    axis = torch.linspace(-extent, extent, resolution)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
    return sdf(grid, shape).numpy(), float(axis[1] - axis[0])


def ground_truth_mesh(shape: str, colour: str | None = None, resolution: int = 128) -> trimesh.Trimesh:
    """The zero level set of the shape's SDF by marching cubes, optionally with the colour's albedo."""
    from skimage.measure import marching_cubes

    extent = BOUNDING_RADIUS + 0.05
    values, spacing = sdf_grid(shape, resolution, extent)
    verts, faces, _, _ = marching_cubes(values, level=0.0, spacing=(spacing,) * 3)
    verts = verts - extent
    mesh = trimesh.Trimesh(verts, faces, process=True)
    if mesh.volume < 0:  # make the normals point out of the solid
        mesh.invert()
    if colour is not None:
        rgba = np.append(np.asarray(COLOURS[colour]) * 255, 255).astype(np.uint8)
        mesh.visual.vertex_colors = np.tile(rgba, (len(mesh.vertices), 1))
    return mesh


def sample_surface(shape: str, n: int = 20000, seed: int = 0, resolution: int = 160) -> np.ndarray:
    """``n`` points spread uniformly over the shape's surface, (n, 3)."""
    mesh = ground_truth_mesh(shape, resolution=resolution)
    points, _ = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points, dtype=np.float32)
