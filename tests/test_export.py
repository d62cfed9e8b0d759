"""Export: automatic level, floaters removed, world units, clear errors."""

import pytest
import torch
import trimesh

from uni3d.export import ExportConfig, ExportError, extract_mesh, save_mesh
from uni3d.scenes.nerf import NeRFConfig, NeRFScene
from uni3d.world.shapes import sdf


def _ball(radius=0.4, floater=False):
    scene = NeRFScene(NeRFConfig(density_levels=(32,), feature_levels=(8,), blob_density=0.0))
    axis = torch.linspace(-0.9, 0.9, 32)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")  # grid_sample's (D, H, W) = (z, y, x)
    field = 12.0 * (radius - (x**2 + y**2 + z**2).sqrt()) / radius
    if floater:
        field = torch.maximum(field, 12.0 * (0.08 - ((x - 0.7) ** 2 + y**2 + z**2).sqrt()) / 0.08)
    with torch.no_grad():
        scene.density_grids[0].copy_(field.view(1, 1, 32, 32, 32))
        scene.update_occupancy()
    return scene.eval()


def test_ball_mesh_in_world_units():
    mesh = extract_mesh(_ball(0.4), ExportConfig(resolution=64))
    r = torch.tensor(mesh.vertices).norm(dim=-1)
    assert 0.33 < r.mean() < 0.47 and r.std() < 0.03
    assert abs(mesh.centroid).max() < 0.02
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)


def test_floater_removed():
    mesh = extract_mesh(_ball(0.4, floater=True), ExportConfig(resolution=64))
    assert len(mesh.split(only_watertight=False)) == 1
    assert mesh.vertices[:, 0].max() < 0.5


def test_empty_scene_is_an_error_not_an_empty_file(tmp_path):
    scene = NeRFScene(NeRFConfig(density_levels=(8,), feature_levels=(8,), blob_density=0.0)).eval()
    with torch.no_grad():
        scene.density_grids[0].fill_(-20.0)
    with pytest.raises(ExportError, match="train longer"):
        extract_mesh(scene, ExportConfig(resolution=32))


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_formats_roundtrip(tmp_path, fmt):
    mesh = extract_mesh(_ball(0.4), ExportConfig(resolution=48))
    path = save_mesh(mesh, tmp_path / f"m.{fmt}")
    back = trimesh.load(path, force="mesh")
    assert len(back.faces) > 100
    assert abs(back.bounds[1][1] - mesh.bounds[1][1]) < 1e-4  # y up, no rescaling


def test_uv_texture_option_keeps_the_geometry(tmp_path):
    pytest.importorskip("xatlas")
    plain = extract_mesh(_ball(0.4), ExportConfig(resolution=48))
    textured = extract_mesh(_ball(0.4), ExportConfig(resolution=48, texture=128))
    assert textured.visual.kind == "texture" and textured.visual.material.image.size == (128, 128)
    assert len(textured.faces) == len(plain.faces)
    assert abs(textured.area - plain.area) < 1e-6 * plain.area
    back = trimesh.load(save_mesh(textured, tmp_path / "t.glb"), force="mesh")
    assert back.visual.uv is not None


def _lattice(n: int = 96):
    """Coordinates x, y, z of an n^3 lattice over [-0.9, 0.9]^3, and its spacing."""
    import numpy as np

    axis = np.linspace(-0.9, 0.9, n)
    return (*np.meshgrid(axis, axis, axis, indexing="ij"), axis[1] - axis[0])


def _handles(values, spacing: float) -> int:
    """Genus of the marching-cubes surface of ``values > 0``."""
    from skimage.measure import marching_cubes

    from uni3d.evaluate import genus

    verts, faces, _, _ = marching_cubes(values, level=0.0, spacing=(spacing,) * 3)
    return genus(trimesh.Trimesh(verts, faces, process=True))


def test_closing_fills_a_narrow_tunnel_and_keeps_a_handle_hole():
    """At the default radius, a ball pierced by a 2-voxel tunnel has genus 1 before closing and 0 after; the
    ground-truth mug, whose handle hole between body and handle is the narrowest real one, keeps its handle."""
    import numpy as np

    from uni3d.export import close_solid

    x, y, z, spacing = _lattice()

    def handles(values):
        return _handles(values, spacing)

    ball = 0.5 - np.sqrt(x**2 + y**2 + z**2)
    pierced = np.where(np.sqrt(x**2 + y**2) < 1.2 * spacing, -1.0, ball)  # a tunnel along z, ~2 voxels wide
    pts = torch.from_numpy(np.stack([x, y, z], -1).reshape(-1, 3)).float()
    mug = -sdf(pts, "mug").view(x.shape).numpy()
    radius = round(ExportConfig().close_radius / spacing)
    assert handles(pierced) == 1 and handles(close_solid(pierced, 0.0, radius)) == 0
    assert handles(mug) == 1 and handles(close_solid(mug, 0.0, radius)) == 1
    assert handles(close_solid(mug, 0.0, round(0.16 / spacing))) == 0  # a closing too wide fills the handle's hole
    assert np.array_equal(close_solid(mug, 0.0, 0), mug)


def test_pit_filling_fills_a_dent_and_keeps_every_handle():
    """A wide second closing fills a dent in a ball, but neither the mug's handle hole nor a torus's hole, which
    the same radius as a plain closing fills (genus 1 -> 0)."""
    import numpy as np

    from uni3d.export import close_solid

    x, y, z, spacing = _lattice()

    def handles(values):
        return _handles(values, spacing)

    ball = 0.5 - np.sqrt(x**2 + y**2 + z**2)
    dent = np.sqrt(x**2 + y**2 + (z - 0.55) ** 2) - 0.2  # a ball of radius 0.2 bitten out of the top
    dented = np.minimum(ball, dent)
    pts = torch.from_numpy(np.stack([x, y, z], -1).reshape(-1, 3)).float()
    mug = -sdf(pts, "mug").view(x.shape).numpy()
    torus = -sdf(pts, "torus").view(x.shape).numpy()
    small, wide = round(0.08 / spacing), round(0.35 / spacing)
    filled = close_solid(dented, 0.0, small, wide)
    top = (np.abs(x) < 0.05) & (np.abs(y) < 0.05) & (z > 0.36) & (z < 0.40)  # the dent's floor is at 0.35
    assert (close_solid(dented, 0.0, small)[top] <= 0).all() and (filled[top] > 0).all()
    assert handles(filled) == 0
    for shape in (mug, torus):
        assert handles(shape) == 1
        assert handles(close_solid(shape, 0.0, wide)) == 0  # a plain closing this wide fills the hole
        assert handles(close_solid(shape, 0.0, small, wide)) == 1
    kept = mug > 0
    assert np.array_equal(close_solid(mug, 0.0, small, wide)[kept], mug[kept])  # the field is kept where solid


def test_pit_filling_closes_no_hole_by_joining_a_floater():
    """A fill of a torus's hole that also reaches a floater inside the hole leaves the Euler number as it was (a
    tunnel closed, two parts joined): it is refused, and the torus keeps its hole."""
    import numpy as np
    from skimage.measure import euler_number

    from uni3d.export import _keep_topology

    x, y, z, spacing = _lattice()
    ring = np.sqrt((np.sqrt(x**2 + y**2) - 0.35) ** 2 + z**2) < 0.12  # the hole lies in the plane z = 0
    floater = np.sqrt(x**2 + y**2 + z**2) < 0.06
    disk = (np.sqrt(x**2 + y**2) < 0.3) & (np.abs(z) < 0.04) & ~ring & ~floater  # touches the ring and the floater
    solid = ring | floater
    assert euler_number(solid | disk, connectivity=3) == euler_number(solid, connectivity=3)  # blind to it
    kept = _keep_topology(solid, disk)
    assert np.array_equal(kept, solid)
    assert _handles(np.where(kept, 1.0, -1.0), spacing) == 1
    assert np.array_equal(_keep_topology(ring, disk | floater), ring)  # the whole hole filled: refused as before


def _field_scene(inside, n: int = 64):
    """A NeRF whose density grid is ``inside`` (positive inside, world units) scaled to a steep density."""
    scene = NeRFScene(NeRFConfig(density_levels=(n,), feature_levels=(8,), blob_density=0.0))
    axis = torch.linspace(-0.9, 0.9, n)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")  # grid_sample's (D, H, W) = (z, y, x)
    pts = torch.stack([x, y, z], -1).view(-1, 3)
    with torch.no_grad():
        scene.density_grids[0].copy_((400.0 * inside(pts)).clamp(-12, 12).view(1, 1, n, n, n))
        scene.update_occupancy()
    return scene.eval()


def _sponge_in_a_shell(p: torch.Tensor) -> torch.Tensor:
    """A shell (0.42 < r < 0.5) pierced through along x by a tunnel of radius 0.1, filled with a gyroid sponge of
    period 0.4 whose channels a closing of radius 0.08 does not fill: the renders show a ball with a well on
    either side; the surface has a great many handles, all inside."""
    r = p.norm(dim=-1)
    shell = torch.minimum(torch.minimum(0.5 - r, r - 0.42), p[:, 1:].norm(dim=-1) - 0.1)
    k = 2 * torch.pi / 0.4
    x, y, z = (k * p).unbind(-1)
    gyroid = (x.sin() * y.cos() + y.sin() * z.cos() + z.sin() * x.cos()) / k
    return torch.maximum(shell, torch.minimum(gyroid, 0.42 - r))


def test_hidden_space_fills_a_sponge_in_a_shell_and_keeps_every_real_handle():
    """Space that no view sees into becomes solid: the sponge inside the pierced shell comes out as one piece with
    no handle, and the ground-truth mug and torus keep their one handle."""
    from uni3d.evaluate import genus
    from uni3d.world.shapes import sdf

    def handles(scene, **kw):
        mesh = extract_mesh(scene, ExportConfig(**kw))
        return genus(mesh), len(mesh.split(only_watertight=False))

    sponge = _field_scene(_sponge_in_a_shell, 96)
    assert handles(sponge, hidden_views=0)[0] > 10
    assert handles(sponge) == (0, 1)
    for shape in ("mug", "torus"):
        assert handles(_field_scene(lambda p, s=shape: -sdf(p, s))) == (1, 1)
