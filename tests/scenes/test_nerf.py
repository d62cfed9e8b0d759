"""The NeRF scene: rendering contract, gradients, empty-space skipping."""

import torch

from uni3d.cameras import Cameras
from uni3d.scenes.nerf import NeRFConfig, NeRFScene, transmittance


def _scene(**kw):
    return NeRFScene(NeRFConfig(density_levels=(16,), feature_levels=(8, 16), samples_per_ray=32, **kw))


def test_render_contract_and_gradients():
    scene = _scene()
    cams = Cameras.from_angles([0.0, 90.0], [10.0, 30.0])
    out = scene.render(cams, 16)
    assert out.rgb.shape == (2, 3, 16, 16) and out.alpha.shape == (2, 1, 16, 16) and out.depth.shape == (2, 1, 16, 16)
    assert 0 <= out.rgb.min() and out.rgb.max() <= 1
    out.rgb.mean().backward()
    assert scene.density_grids[0].grad.abs().sum() > 0
    assert all(p.grad is not None for p in scene.mlp.parameters())


def test_blob_starts_opaque_at_the_centre_and_white_at_the_border():
    scene = _scene(blob_density=8.0)
    out = scene.render(Cameras.from_angles(0.0, 0.0), 16, jitter=False)
    assert out.alpha[0, 0, 8, 8] > 0.9
    assert out.alpha[0, 0, 0, 0] < 0.05
    assert torch.allclose(out.rgb[0, :, 0, 0], torch.ones(3), atol=0.05)


def test_lambertian_shading_returns_unit_normals():
    scene = _scene(shading="lambertian", blob_density=8.0)
    out = scene.render(Cameras.from_angles(30.0, 20.0), 16, jitter=False)
    n = out.normals[0, :, 8, 8]
    assert abs(n.norm().item() - 1) < 0.05
    # the centre pixel of a ball faces the camera
    cam = Cameras.from_angles(30.0, 20.0).positions()[0]
    assert torch.dot(n, cam / cam.norm()) > 0.9


def test_occupancy_skips_empty_space_without_changing_the_image():
    scene = _scene(blob_density=8.0)
    cams = Cameras.from_angles(45.0, 10.0)
    full = scene.render(cams, 16, jitter=False).rgb
    scene.update_occupancy()
    assert 0.0 < scene.occupancy.float().mean() < 0.5
    skipped = scene.render(cams, 16, jitter=False).rgb
    assert torch.allclose(full, skipped, atol=2e-2)


def test_colour_is_skipped_only_where_a_sample_is_not_seen():
    """Colour evaluated at seen samples only: the image moves by at most samples_per_ray x colour_min_weight."""
    torch.manual_seed(0)
    every, seen = _scene(blob_density=8.0, colour_min_weight=0.0), _scene(blob_density=8.0, colour_min_weight=1e-3)
    seen.load_state_dict(every.state_dict())
    cams = Cameras.from_angles([45.0, 200.0], [10.0, 30.0])
    a, b = every.render(cams, 16, jitter=False).rgb, seen.render(cams, 16, jitter=False).rgb
    assert (a - b).abs().max() <= 32 * 1e-3
    assert (a - b).abs().max() > 0  # the threshold did skip samples (colour 0 there)
    calls = []
    seen.mlp.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    every.mlp.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    seen.render(cams, 16, jitter=False), every.render(cams, 16, jitter=False)
    assert calls[0] < 0.5 * calls[1]


def test_regularizers_are_named_losses():
    scene = _scene(shading="lambertian", regularizers={"loss_opacity": 1.0, "loss_entropy": 1.0, "loss_orient": 1.0})
    out = scene.render(Cameras.from_angles(0.0, 0.0), 8)
    losses = scene.regularizers(out, 0)
    assert set(losses) == {"loss_opacity", "loss_entropy", "loss_orient"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())


def test_transmittance_of_packed_samples_is_each_rays_own_product():
    g = torch.Generator().manual_seed(0)
    counts = [3, 1, 7, 5]  # samples per ray, packed ray after ray
    ray = torch.repeat_interleave(torch.arange(4), torch.tensor(counts))
    tau = torch.rand(len(ray), generator=g) * 3
    tau[4] = 2000.0  # an opaque sample: everything behind it on its ray is hidden, nothing on the next ray
    got = transmittance(tau, ray)
    want = torch.cat([torch.exp(-(torch.cumsum(t.double(), 0) - t.double())).float() for t in tau.split(counts)])
    assert torch.allclose(got, want, rtol=1e-6, atol=0)
    assert got[5:11].max() == 0 and got[11] == 1  # behind the opaque sample; the next ray starts clear


def test_packed_render_equals_compositing_every_sample():
    """Packing the samples of occupied cells changes no pixel: against the textbook dense composite of every
    sample, with zero density in the cells the occupancy grid marks empty."""
    scene = _scene(blob_density=8.0, colour_min_weight=0.0)
    scene.update_occupancy()
    assert scene.occupancy.float().mean() < 0.5  # some samples are skipped
    cams = Cameras.from_angles([30.0, 210.0], [15.0, -5.0])
    out = scene.render(cams, 12, jitter=False)
    o, d = cams.rays(12)
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    bo = (o * d).sum(-1)
    disc = (bo * bo - (o * o).sum(-1) + scene.config.bound**2).clamp(min=0).sqrt()
    near, far = (-bo - disc).clamp(min=0), -bo + disc
    n = scene.config.samples_per_ray
    t = near[:, None] + (far - near)[:, None] * (torch.arange(n) + 0.5) / n
    pts = o[:, None] + t[..., None] * d[:, None]
    with torch.no_grad():
        occupied = scene._occupied(pts.view(-1, 3)).view(-1, n) & (disc > 0)[:, None]
        sigma = scene.density(pts.view(-1, 3)).view(-1, n) * occupied
        alpha = 1 - torch.exp(-sigma * ((far - near) / n)[:, None])
        w = alpha * torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha], 1), 1)[:, :-1]
        rgb = (w[..., None] * scene.albedo(pts.view(-1, 3)).view(-1, n, 3)).sum(1) + 1 - w.sum(1, keepdim=True)
    assert torch.allclose(out.rgb.permute(0, 2, 3, 1).reshape(-1, 3), rgb, atol=1e-5)
    assert torch.allclose(out.alpha.reshape(-1), w.sum(1), atol=1e-5)
    assert torch.allclose(out.depth.reshape(-1), (w * t).sum(1), atol=1e-5)
