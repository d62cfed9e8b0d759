"""UV textures baked from a colour field: the texel under a surface point holds that point's colour."""

import numpy as np
import pytest
import torch
import trimesh

pytest.importorskip("xatlas")

from uni3d.export import save_mesh  # noqa: E402
from uni3d.texture import bake, triangle_ids  # noqa: E402


class Field:
    """A colour field that varies smoothly in space: rgb = (xyz + 1) / 2."""

    def colour_at(self, xyz, shaded=False):
        return ((xyz + 1) / 2).clamp(0, 1)


def test_triangle_ids_cover_the_drawn_triangle_only():
    uvs = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]])
    ids = triangle_ids(uvs, np.array([[0, 1, 2]]), 32)
    assert ids[31 - 5, 5] == 0  # near uv (0.15, 0.15): inside (row 0 is the top, v = 1)
    assert ids[2, 29] == -1  # near uv (0.9, 0.9): outside


def test_baked_texture_reproduces_the_field():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    textured = bake(mesh, Field(), size=256)
    uv, img = textured.visual.uv, np.asarray(textured.visual.material.image).astype(float) / 255
    rng = np.random.default_rng(0)
    faces = rng.choice(len(textured.faces), 200, replace=False)
    centre_uv = uv[textured.faces[faces]].mean(1)
    centre_xyz = textured.vertices[textured.faces[faces]].mean(1)
    col = np.clip((centre_uv[:, 0] * 256).astype(int), 0, 255)
    row = np.clip(((1 - centre_uv[:, 1]) * 256).astype(int), 0, 255)
    got = img[row, col]
    want = Field().colour_at(torch.tensor(centre_xyz)).numpy()
    assert np.abs(got - want).mean() < 0.02


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_textured_mesh_saves_and_reloads_with_colour(tmp_path, fmt):
    mesh = bake(trimesh.creation.icosphere(subdivisions=2, radius=0.5), Field(), size=64)
    path = save_mesh(mesh, tmp_path / f"m.{fmt}")
    back = trimesh.load(path, force="mesh")
    assert len(back.faces) == len(mesh.faces)
    if fmt == "ply":
        assert back.visual.vertex_colors[:, :3].std() > 10  # colours sampled at the vertices
    else:
        assert back.visual.uv is not None and back.visual.material is not None
