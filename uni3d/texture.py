"""A UV texture for an exported mesh: xatlas unwraps it, the scene's colour field fills the texels.

Each texel inside a chart is mapped back to the 3D point it covers (its triangle's barycentric
interpolation) and coloured by ``scene.colour_at`` there; texels outside every chart take the colour
of the nearest covered texel, so bilinear filtering at chart borders shows no dark seams.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from PIL import Image, ImageDraw

from uni3d.errors import UserError


def unwrap(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas charts: (vertex index into ``mesh.vertices`` for each new vertex, new faces, uv in [0, 1])."""
    try:
        import xatlas
    except ImportError:  # pragma: no cover - depends on the environment
        raise UserError("a UV texture needs xatlas: pip install 'uni3d[mesh]' (or drop --export.texture)") from None
    vmapping, faces, uvs = xatlas.parametrize(mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32))
    return vmapping.astype(np.int64), faces.astype(np.int64), uvs.astype(np.float64)


def triangle_ids(uvs: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """(size, size) index of the triangle covering each texel (-1 for none); row 0 is v = 1 (image top)."""
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    px = np.stack([uvs[:, 0] * size - 0.5, (1 - uvs[:, 1]) * size - 0.5], -1)
    for i, tri in enumerate(faces):
        code = i + 1  # 0 would collide with black; 0xFFFFFF is the background
        draw.polygon([tuple(p) for p in px[tri]], fill=(code >> 16 & 255, code >> 8 & 255, code & 255))
    rgb = np.asarray(img).astype(np.int64)
    ids = (rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]) - 1
    ids[ids == 0xFFFFFF - 1] = -1
    return ids


def texel_points(vertices: np.ndarray, uvs: np.ndarray, faces: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3D points under the covered texels (barycentric in UV, clamped into the triangle) and their (row, col)."""
    size = ids.shape[0]
    rows, cols = np.nonzero(ids >= 0)
    tri = faces[ids[rows, cols]]
    p = np.stack([(cols + 0.5) / size, 1 - (rows + 0.5) / size], -1)
    a, b, c = uvs[tri[:, 0]], uvs[tri[:, 1]], uvs[tri[:, 2]]
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) < 1e-18, 1e-18, den)
    w1 = np.clip((d11 * d20 - d01 * d21) / den, 0, 1)
    w2 = np.clip((d00 * d21 - d01 * d20) / den, 0, 1)
    s = np.maximum(w1 + w2, 1.0)
    w1, w2 = w1 / s, w2 / s
    w0 = 1 - w1 - w2
    xyz = w0[:, None] * vertices[tri[:, 0]] + w1[:, None] * vertices[tri[:, 1]] + w2[:, None] * vertices[tri[:, 2]]
    return xyz, np.stack([rows, cols], -1)


def bake(mesh: trimesh.Trimesh, scene, size: int = 512, shaded: bool = False) -> trimesh.Trimesh:
    """``mesh`` with xatlas UVs and a ``size`` x ``size`` texture of the scene's colour field."""
    from scipy.ndimage import distance_transform_edt

    vmapping, faces, uvs = unwrap(mesh)
    vertices = mesh.vertices[vmapping]
    ids = triangle_ids(uvs, faces, size)
    if (ids >= 0).sum() == 0:
        raise UserError(f"the UV charts cover no texel of a {size} px texture: raise --export.texture")
    xyz, rc = texel_points(vertices, uvs, faces, ids)
    with torch.no_grad():
        rgb = scene.colour_at(torch.tensor(xyz, dtype=torch.float32), shaded=shaded).numpy()
    image = np.zeros((size, size, 3))
    image[rc[:, 0], rc[:, 1]] = rgb
    _, (ri, ci) = distance_transform_edt(ids < 0, return_indices=True)  # empty texels: the nearest covered one
    image = image[ri, ci]
    texture = Image.fromarray((image.clip(0, 1) * 255).round().astype(np.uint8))
    material = trimesh.visual.material.SimpleMaterial(image=texture)
    visual = trimesh.visual.TextureVisuals(uv=uvs, image=texture, material=material)
    return trimesh.Trimesh(vertices, faces, visual=visual, process=False)
