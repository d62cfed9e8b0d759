"""Scene -> cleaned, coloured mesh in world units (y up, centred, never rescaled) -> .glb / .obj / .ply.

Two routes to the surface. ``density`` (the default): marching cubes on the scene's density at a
level chosen automatically, the one whose silhouettes best match the scene's own rendered opacity
(alpha > 0.5) over a ring of views, so faint fog that renders as almost transparent is left out while
the object is kept whole; before meshing, space that no rendered view sees into is made solid (a trained
field is often spongy inside its visible shell, every channel a handle of the surface) and a closing seals
pores and pits too narrow to be real. ``tsdf``: fusion of rendered depth into a truncated signed distance grid
(``uni3d.tsdf``: open3d's volume when open3d imports, else the same in pure torch), for scenes whose density
is not a good surface, such as 3D Gaussians.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import trimesh

from uni3d.cameras import CameraSampler
from uni3d.errors import UserError
from uni3d.tsdf import fuse, fuse_open3d, fusion_cameras, open3d_available, project, rendered_depth

FORMATS = ("glb", "obj", "ply")


@dataclass
class ExportConfig:
    """Mesh extraction."""

    resolution: int = 128
    """Marching-cubes grid resolution over the scene cube."""
    level: float | None = None
    """Density iso-level; None picks it automatically from the scene's silhouettes."""
    min_component: float = 0.05
    """Drop connected components with fewer faces than this fraction of the largest one."""
    close_radius: float = 0.08
    """Radius (world units) of the morphological closing of the solid before meshing: fills pores, tunnels and
    cavities narrower than twice it, each of which would otherwise be a handle of the surface; 0: off. The
    ground-truth mug keeps its handle at this radius and loses it at 0.16 (tests/test_export.py)."""
    pit_radius: float = 0.16
    """Radius (world units) of a second, wider closing that fills pits and dents of the surface, keeping only the
    pieces that change no handle of it: a torus's hole and a mug's handle stay open, which a plain closing this
    wide would fill (tests/test_export.py); 0: off."""
    hidden_views: int = 8
    """Space no view sees into is solid: a lattice node behind the rendered surface from every camera of 5 rings
    of this many views (elevations -60 to 80 degrees) is filled before the closings. A spongy inside that no
    render shows, whose channels are handles of the surface, becomes the solid the renders show; a mug's inside
    and a torus's hole, seen from above, stay open (tests/test_export.py). 0: off."""
    hidden_resolution: int = 96
    """Render resolution (pixels) of the hidden-space test."""
    views: int = 8
    """Views used to pick the level automatically."""
    method: Literal["density", "tsdf"] = "density"
    """density: isosurface of the scene's density; tsdf: fusion of rendered depth (suits Gaussians)."""
    tsdf_views: int = 12
    """tsdf: views per ring (three rings of elevations -20, 15 and 50 degrees)."""
    tsdf_render: int = 128
    """tsdf: render resolution of the fused depth maps (pixels)."""
    tsdf_truncation: float = 3.0
    """tsdf: truncation distance, in voxels of the marching-cubes grid."""
    tsdf_backend: Literal["auto", "open3d", "torch"] = "auto"
    """tsdf: open3d's TSDF volume, or the same fusion in pure torch (which also carves seen-through free space);
    auto: open3d when it imports (pip install open3d-cpu; Debian/Ubuntu also need libusb-1.0-0), else torch."""
    texture: int = 0
    """Side of a UV texture (xatlas) baked from the colour field, in pixels; 0 keeps vertex colours only."""


class ExportError(UserError):
    """The scene holds nothing that makes a mesh; the message says what to change."""


def _silhouette_level(scene, values: torch.Tensor, bound: float, views: int, resolution: int = 48) -> float:
    """The density level whose binary silhouettes best match rendered alpha > 0.5 (IoU over views).

    ``values`` is the density grid [x, y, z] over [-bound, bound]^3; rays sample it trilinearly, so
    any scene with a density grid is handled the same way.
    """
    cams = CameraSampler().turntable(views, elevation=20.0)
    cams = type(cams)(cams.azimuth, torch.tensor([20.0 if i % 2 else -5.0 for i in range(views)]), cams.radius, cams.fov)
    with torch.no_grad():
        mask = (scene.render(cams, resolution, jitter=False).alpha > 0.5).flatten().cpu()
    if mask.sum() == 0:
        raise ExportError("the scene renders empty (no pixel reaches 50% opacity): train longer, or lower the "
                          "opacity regulariser (loss_opacity)")
    origins, dirs = cams.rays(resolution)
    t = torch.linspace(cams.radius - bound * 1.8, cams.radius + bound * 1.8, 160)
    pts = origins.reshape(-1, 1, 3) + t[None, :, None] * dirs.reshape(-1, 1, 3)
    grid = values.permute(2, 1, 0)[None, None].float()  # grid_sample wants (D, H, W) = (z, y, x)
    sigma = torch.nn.functional.grid_sample(grid, (pts / bound).view(1, -1, 1, 1, 3), align_corners=True,
                                            padding_mode="zeros").view(pts.shape[:2])
    peak = sigma.max(dim=1).values
    candidates = torch.quantile(peak[mask], torch.linspace(0.0, 0.95, 40))
    best, best_iou = float(candidates[0]), -1.0
    for c in candidates.tolist():
        sil = peak > c
        iou = (sil & mask).sum().item() / max(1, (sil | mask).sum().item())
        if iou > best_iou:
            best, best_iou = c, iou
    return best


def mesh_route(cfg: ExportConfig) -> str:
    """Which route ``extract_mesh`` takes: ``density``, ``tsdf:open3d`` or ``tsdf:torch`` (recorded with a run)."""
    if cfg.method == "density":
        return "density"
    return "tsdf:open3d" if cfg.tsdf_backend == "open3d" or (cfg.tsdf_backend == "auto" and open3d_available()) else "tsdf:torch"


def extract_mesh(scene, cfg: ExportConfig = ExportConfig(), shaded_colours: bool = False) -> trimesh.Trimesh:
    """Marching cubes on the scene's density at an automatic level (or on fused depth, ``method="tsdf"``),
    small components removed, vertex colours from the field."""
    from skimage.measure import marching_cubes

    bound = scene.config.bound
    route = mesh_route(cfg)
    if route != "density":
        spacing = 2 * bound / (cfg.resolution - 1)
        args = (scene, fusion_cameras(cfg.tsdf_views), cfg.tsdf_render, cfg.resolution, bound, cfg.tsdf_truncation * spacing)
    empty = ExportError("no rendered depth reaches 50% opacity from any view: the scene is empty; train longer "
                        "or lower the opacity regulariser (loss_opacity)")
    if route == "tsdf:open3d":
        verts, faces = fuse_open3d(*args)
        if len(faces) == 0:
            raise empty
    else:
        if route == "tsdf:torch":
            tsdf, _ = fuse(*args)
            if not (tsdf < 0).any():
                raise empty
            values, level = -tsdf.numpy(), 0.0  # inside positive, as for a density
        else:
            values, spacing = scene.density_grid(cfg.resolution)
            level = cfg.level if cfg.level is not None else _silhouette_level(scene, values, bound, cfg.views)
            values = values.numpy()
            if not (values.min() < level < values.max()):
                raise ExportError(f"the density never crosses the level {level:.3g}: the scene is empty or solid; "
                                  "train longer or pass --level")
            if cfg.hidden_views > 0:
                hidden = hidden_space(scene, cfg.resolution, bound, cfg.hidden_views, cfg.hidden_resolution,
                                      among=values <= level)
                values = fill_hidden(values, level, hidden)
            values = close_solid(values, level, round(cfg.close_radius / spacing), round(cfg.pit_radius / spacing))
        verts, faces, _, _ = marching_cubes(values, level=level, spacing=(spacing,) * 3)
        verts = verts - bound
    mesh = trimesh.Trimesh(verts, faces, process=True)
    if mesh.volume < 0:  # denser inside: make normals point outwards
        mesh.invert()
    mesh = remove_small_components(mesh, cfg.min_component)
    if len(mesh.faces) < 4:
        raise ExportError("the extracted mesh is degenerate (fewer than 4 faces): train longer or lower --level")
    with torch.no_grad():
        rgb = scene.colour_at(torch.tensor(mesh.vertices, dtype=torch.float32), shaded=shaded_colours).numpy()
    mesh.visual.vertex_colors = np.concatenate([(rgb * 255).round(), np.full((len(rgb), 1), 255)], 1).astype(np.uint8)
    if cfg.texture > 0:
        from uni3d.texture import bake

        mesh = bake(mesh, scene, cfg.texture, shaded=shaded_colours)
    return mesh


def _closing(solid: np.ndarray, radius: int) -> np.ndarray:
    """The morphological closing of ``solid`` by a ball of ``radius`` voxels, enclosed cavities filled.

    Dilation and erosion by a ball are thresholds of Euclidean distance transforms (a voxel is in the dilation
    when a solid voxel lies within ``radius`` of it), exact and linear in the grid's size at any radius."""
    from scipy import ndimage

    padded = np.pad(solid, radius + 1)  # closing must not glue the solid to the grid's border
    dilated = ndimage.distance_transform_edt(~padded) <= radius
    closed = ndimage.distance_transform_edt(dilated) > radius
    return ndimage.binary_fill_holes(closed[(slice(radius + 1, -radius - 1),) * 3])


def _keep_topology(solid: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``solid`` plus each connected piece of ``candidates`` that touches one part of the solid and leaves its
    Euler number as it is: a pit or dent filled, never a tunnel closed (+1) or bridged (-1). A piece that touches
    two parts would join them (-1), which hides a tunnel closed with it (as a fill of a handle's hole that reaches a
    floater inside it does). Pieces are tried one after another, each against the solid with the pieces accepted
    before it."""
    from scipy import ndimage
    from skimage.measure import euler_number

    out = solid.copy()
    full = np.ones((3, 3, 3))
    parts, _ = ndimage.label(solid, structure=full)  # accepted pieces join the one part they touch
    labels, _ = ndimage.label(candidates, structure=full)
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        # The Euler number is a sum over 2x2x2 neighbourhoods, so its change shows in a box one voxel wider
        # than the piece (two here, for the border of the crop).
        box = tuple(slice(max(b.start - 2, 0), b.stop + 2) for b in box)
        piece = labels[box] == i
        touched = np.unique(parts[box][ndimage.binary_dilation(piece, full)])
        touched = touched[touched > 0]
        if len(touched) != 1:
            continue
        before = out[box]
        after = before | piece
        if euler_number(after, connectivity=3) == euler_number(before, connectivity=3):
            out[box] = after
            parts[box][piece] = touched[0]
    return out


HIDDEN_ELEVATIONS = (-60.0, -20.0, 15.0, 50.0, 80.0)


@torch.no_grad()
def hidden_space(scene, grid: int, bound: float, views: int, resolution: int, among: np.ndarray | None = None,
                 chunk: int = 4) -> np.ndarray:
    """Which nodes of a ``grid``^3 lattice over [-bound, bound]^3 (indexed [x, y, z]) no view sees into: in the
    image of every camera of ``fusion_cameras(views, HIDDEN_ELEVATIONS)`` and behind the surface that camera
    renders there (a seen-through pixel has none, so nothing on its ray is hidden).
    ``among`` (a boolean lattice) limits the test to those nodes; the rest read False."""
    cams = fusion_cameras(views, HIDDEN_ELEVATIONS)
    axis = torch.linspace(-bound, bound, grid)
    index = torch.arange(grid**3) if among is None else torch.from_numpy(np.flatnonzero(among))
    for i in range(0, len(cams), chunk):
        view = cams[i:i + chunk]
        depth = rendered_depth(scene, view, resolution)  # inf where the render is seen-through
        ix, iy, iz = index // grid**2, index // grid % grid, index % grid
        uv, dist, front = project(torch.stack([axis[ix], axis[iy], axis[iz]], -1), view, resolution)
        surface = torch.nn.functional.grid_sample(depth, uv[:, :, None], mode="nearest", align_corners=False,
                                                  padding_mode="border")[:, 0, :, 0]
        index = index[(front & (uv.abs() <= 1).all(-1) & (dist > surface)).all(0)]  # still hidden
    hidden = np.zeros(grid**3, dtype=bool)
    hidden[index.numpy()] = True
    return hidden.reshape(grid, grid, grid)


def fill_hidden(values: np.ndarray, level: float, hidden: np.ndarray) -> np.ndarray:
    """``values`` with the ``hidden`` space outside the solid ``values > level`` set just above the level, as
    ``close_solid`` sets what it adds: the surface moves only where no view saw it."""
    return _set_solid(values, level, hidden & ~(values > level))


def _set_solid(values: np.ndarray, level: float, added: np.ndarray) -> np.ndarray:
    """``values`` with the voxels ``added`` set halfway between the level and the field's maximum."""
    out = values.copy()
    out[added] = level + 0.5 * (values.max() - level)
    return out


def close_solid(values: np.ndarray, level: float, radius: int, pit_radius: int = 0) -> np.ndarray:
    """``values`` with the solid ``values > level`` closed by a ball of ``radius`` voxels and its enclosed
    cavities filled: the voxels this adds are set just above the level, every other value is kept, so the
    surface stays where the field puts it except across the gaps that were closed.

    ``pit_radius`` (voxels; 0: off), larger than ``radius``, then fills the pits and dents a ball of that radius
    cannot enter, keeping each filled piece only where it changes no handle of the surface (``_keep_topology``):
    a torus's hole or a mug's handle stays open, and no new bridge is built over a groove."""
    if radius <= 0 and pit_radius <= 0:
        return values
    solid = values > level
    closed = _closing(solid, radius) if radius > 0 else solid
    if pit_radius > radius:
        closed = _keep_topology(closed, _closing(closed, pit_radius) & ~closed)
    return _set_solid(values, level, closed & ~solid)


def remove_small_components(mesh: trimesh.Trimesh, min_fraction: float) -> trimesh.Trimesh:
    """Keep connected components with at least ``min_fraction`` of the largest one's faces (floaters go)."""
    parts = mesh.split(only_watertight=False)
    if len(parts) <= 1:
        return mesh
    biggest = max(len(p.faces) for p in parts)
    kept = [p for p in parts if len(p.faces) >= min_fraction * biggest]
    return trimesh.util.concatenate(kept)


def save_mesh(mesh: trimesh.Trimesh, path: Path) -> Path:
    """Write ``mesh``; the format follows the suffix (.glb, .obj, .ply)."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UserError(f"unsupported mesh format {path.suffix!r}: use one of {', '.join('.' + f for f in FORMATS)}")
    if fmt == "ply" and isinstance(mesh.visual, trimesh.visual.TextureVisuals):
        mesh = mesh.copy()
        mesh.visual = mesh.visual.to_color()  # PLY has no textures: colours sampled at the vertices
    mesh.export(path)
    return path
