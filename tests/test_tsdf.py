"""TSDF fusion of rendered depth against scenes whose depth is known exactly (ray-sphere hits)."""

import math

import pytest
import torch

from uni3d.cameras import Cameras
from uni3d.errors import UserError
from uni3d.export import ExportConfig, ExportError, extract_mesh
from uni3d.scenes.base import RenderOutput
from uni3d.tsdf import fuse, fusion_cameras, open3d_available, project


class _Cfg:
    bound = 1.0


class Spheres:
    """Opaque spheres (centres (K, 3), radii (K,)); depth is the exact first hit along each ray."""

    config = _Cfg()

    def __init__(self, centres, radii):
        self.centres, self.radii = torch.tensor(centres, dtype=torch.float32), torch.tensor(radii, dtype=torch.float32)

    def render(self, cams: Cameras, resolution: int, jitter: bool = False) -> RenderOutput:
        o, d = cams.rays(resolution)
        oc = o[..., None, :] - self.centres  # (B, H, W, K, 3)
        b = (oc * d[..., None, :]).sum(-1)
        disc = b * b - (oc * oc).sum(-1) + self.radii**2
        t = torch.where(disc > 0, -b - disc.clamp(min=0).sqrt(), torch.full_like(b, math.inf)).min(-1).values
        alpha = torch.isfinite(t).float()
        depth = torch.where(alpha > 0, t, torch.zeros_like(t))
        rgb = torch.ones(*alpha.shape, 3)
        return RenderOutput(rgb=rgb.permute(0, 3, 1, 2), alpha=alpha[:, None], depth=depth[:, None])

    def colour_at(self, xyz, shaded=False):
        return torch.tensor([0.8, 0.1, 0.1]).expand(len(xyz), 3)


def test_projection_puts_the_origin_at_the_centre_and_plus_x_right():
    cams = Cameras.from_angles([0.0, 90.0], [0.0, 30.0])
    uv, dist, front = project(torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0]]), cams, 32)
    assert torch.allclose(uv[:, 0], torch.zeros(2, 2), atol=1e-6)
    assert torch.allclose(dist[:, 0], torch.full((2,), 2.5))
    assert uv[0, 1, 0] > 0 and front.all()


def test_fusion_cameras_cover_three_rings():
    cams = fusion_cameras(6)
    assert len(cams) == 18 and sorted(set(cams.elevation.tolist())) == [-20.0, 15.0, 50.0]


def test_fused_tsdf_changes_sign_at_the_surface():
    scene = Spheres([[0.0, 0.0, 0.0]], [0.5])
    tsdf, weight = fuse(scene, fusion_cameras(8), 96, 33, 1.0, truncation=0.3)
    axis = torch.linspace(-1, 1, 33)
    r = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).norm(dim=-1)
    assert weight[(r - 0.5).abs() < 0.1].min() > 0
    assert (tsdf[r < 0.45] < 0).all() and (tsdf[r > 0.55] > 0).all()
    assert (tsdf[r > 0.85] == 1).all()


BACKENDS = ["torch", pytest.param("open3d", marks=pytest.mark.skipif(not open3d_available(), reason="open3d does not import"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_tsdf_export_recovers_a_sphere(backend):
    mesh = extract_mesh(Spheres([[0.0, 0.0, 0.0]], [0.5]),
                        ExportConfig(method="tsdf", resolution=48, tsdf_views=8, tsdf_render=96, tsdf_backend=backend))
    radii = torch.tensor(mesh.vertices).norm(dim=-1)
    assert (radii - 0.5).abs().mean() < 0.015
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.5**3, rel=0.06)
    assert (mesh.visual.vertex_colors[:, 0] > 150).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_tsdf_keeps_two_objects_apart(backend):
    scene = Spheres([[-0.45, 0.0, 0.0], [0.45, 0.0, 0.0]], [0.3, 0.3])
    mesh = extract_mesh(scene, ExportConfig(method="tsdf", resolution=48, tsdf_views=8, tsdf_render=96, min_component=0.0,
                                            tsdf_backend=backend))
    parts = mesh.split(only_watertight=False)
    assert len(parts) == 2
    xs = sorted(p.centroid[0] for p in parts)
    assert xs == pytest.approx([-0.45, 0.45], abs=0.02)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tsdf_export_of_an_empty_scene_is_an_error(backend):
    with pytest.raises(ExportError, match="empty"):
        extract_mesh(Spheres([[5.0, 5.0, 5.0]], [0.1]),
                     ExportConfig(method="tsdf", resolution=24, tsdf_views=4, tsdf_render=32, tsdf_backend=backend))


def test_asking_for_open3d_where_it_does_not_import_says_what_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_open3d(name, *args, **kwargs):
        if name == "open3d":
            raise ImportError("libusb-1.0.so.0: cannot open shared object file")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_open3d)
    assert not open3d_available()
    with pytest.raises(UserError, match="apt-get install libusb-1.0-0"):
        extract_mesh(Spheres([[0.0, 0.0, 0.0]], [0.5]),
                     ExportConfig(method="tsdf", resolution=24, tsdf_views=4, tsdf_render=32, tsdf_backend="open3d"))
    # auto falls back to the torch route
    mesh = extract_mesh(Spheres([[0.0, 0.0, 0.0]], [0.5]), ExportConfig(method="tsdf", resolution=24, tsdf_views=4, tsdf_render=32))
    assert len(mesh.faces) > 0
