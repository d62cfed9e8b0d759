"""The pure-torch Gaussian rasteriser against a direct per-pixel reference, and densify/prune."""

import pytest
import torch

from uni3d.cameras import Cameras
from uni3d.scenes.base import RenderOutput
from uni3d.scenes.gaussians import GaussianScene, GaussiansConfig, covariances, project, rasterize, view_matrices


def _reference(means2d, conic, depth, opacity, colours, resolution, background):
    """Every pixel visits every Gaussian in depth order (no tiles, no culling)."""
    order = torch.argsort(depth)
    ys, xs = torch.meshgrid(torch.arange(resolution) + 0.5, torch.arange(resolution) + 0.5, indexing="ij")
    img = torch.zeros(3, resolution, resolution)
    trans = torch.ones(resolution, resolution)
    for i in order.tolist():
        dx, dy = xs - means2d[i, 0], ys - means2d[i, 1]
        a, b, c = conic[i]
        power = (-0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy).clamp(max=0)
        alpha = (opacity[i] * torch.exp(power)).clamp(max=0.99)
        alpha = alpha * (alpha > 1 / 255)
        img += colours[i][:, None, None] * (alpha * trans)
        trans = trans * (1 - alpha)
    return img + trans * background[:, None, None]


def test_rasteriser_matches_reference():
    scene = GaussianScene(GaussiansConfig(num_init=60, init_scale=0.08, init_opacity=0.6), seed=1)
    cams = Cameras.from_angles(30.0, 15.0)
    rots, centres, focal = view_matrices(cams)
    cov = covariances(scene.log_scales, scene.quats)
    op, col = torch.sigmoid(scene.opacity_logits), torch.sigmoid(scene.colour_logits)
    with torch.no_grad():
        m2d, conic, depth, radius = project(scene.means, cov, op, col, rots[0], centres[0], focal, 24)
        rgb, alpha, _ = rasterize(m2d, conic, depth, radius, op, col, 24, torch.ones(3))
        want = _reference(m2d, conic, depth, op, col, 24, torch.ones(3))
    assert torch.allclose(rgb, want, atol=2e-3)  # culling at 3 sigma drops at most a little
    assert 0 < alpha.mean() < 1


def test_rasteriser_gradients_match_the_reference():
    """The per-pixel transmittance (a restarted cumulative sum of logs) differentiates as the reference's products."""
    scene = GaussianScene(GaussiansConfig(num_init=40, init_scale=0.08, init_opacity=0.6), seed=2)
    cams = Cameras.from_angles(-40.0, 25.0)
    rots, centres, focal = view_matrices(cams)
    with torch.no_grad():
        cov = covariances(scene.log_scales, scene.quats)
        op, col = torch.sigmoid(scene.opacity_logits), torch.sigmoid(scene.colour_logits)
        m2d, conic, depth, radius = project(scene.means, cov, op, col, rots[0], centres[0], focal, 16)
    target = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    renders = {"pairs": lambda m, c, o, k: rasterize(m, c, depth, radius, o, k, 16, torch.ones(3))[0],
               "reference": lambda m, c, o, k: _reference(m, c, depth, o, k, 16, torch.ones(3))}
    grads = {}
    for name, render in renders.items():
        leaves = [t.clone().requires_grad_(True) for t in (m2d, conic, op, col)]
        (render(*leaves) - target).square().sum().backward()
        grads[name] = [t.grad for t in leaves]
    for got, want in zip(grads["pairs"], grads["reference"]):
        assert want.abs().max() > 0
        assert torch.allclose(got, want, rtol=1e-2, atol=2e-3 * want.abs().max())


def test_projection_of_the_origin_is_the_image_centre():
    cams = Cameras.from_angles(77.0, 33.0)
    rots, centres, focal = view_matrices(cams)
    m2d, _, depth, _ = project(torch.zeros(1, 3), torch.eye(3)[None] * 1e-4, None, None, rots[0], centres[0], focal, 32)
    assert torch.allclose(m2d[0], torch.tensor([16.0, 16.0]), atol=1e-4)
    assert depth[0] == pytest.approx(2.5, abs=1e-5)


def test_plus_x_lands_right_and_plus_y_up():
    cams = Cameras.from_angles(0.0, 0.0)
    rots, centres, focal = view_matrices(cams)
    pts = torch.tensor([[0.3, 0.0, 0.0], [0.0, 0.3, 0.0]])
    m2d, *_ = project(pts, torch.eye(3).expand(2, 3, 3) * 1e-4, None, None, rots[0], centres[0], focal, 32)
    assert m2d[0, 0] > 16 and m2d[1, 1] < 16


def test_render_gradients_reach_every_parameter():
    scene = GaussianScene(GaussiansConfig(num_init=80, backend="torch"))
    out = scene.render(Cameras.from_angles([0.0, 90.0], [10.0, 20.0]), 16)
    assert out.rgb.shape == (2, 3, 16, 16)
    (out.rgb - 0.3).square().mean().backward()
    for p in (scene.means, scene.log_scales, scene.opacity_logits, scene.colour_logits):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_densify_and_prune_keeps_the_optimizer_in_step():
    scene = GaussianScene(GaussiansConfig(num_init=50, grad_threshold=0.0, densify_from=1, densify_every=1, split_scale=0.05,
                                          backend="torch"))
    opt = torch.optim.Adam([dict(g) for g in scene.param_groups()])
    scene.bind_optimizer(opt)
    scene.train()
    out = scene.render(Cameras.from_angles(0.0, 10.0), 16)
    out.rgb.mean().backward()
    opt.step()
    with torch.no_grad():
        scene.opacity_logits[:5] = -10.0  # these get pruned
    scene.post_backward(1)
    assert scene.num == 2 * 50 - 2 * 5  # every survivor cloned (all below split_scale)
    assert opt.param_groups[0]["params"][0] is scene.means
    assert opt.state[scene.means]["exp_avg"].shape == scene.means.shape
    out = scene.render(Cameras.from_angles(0.0, 10.0), 16)
    out.rgb.mean().backward()
    opt.step()


def test_a_densified_cloud_loads_into_a_fresh_scene_and_its_optimizer():
    """Resume: the checkpoint's cloud has another size than a fresh scene's; the scene and the optimizer bound to
    it take the checkpoint's size, moments included, and train on."""
    cfg = GaussiansConfig(num_init=50, grad_threshold=0.0, densify_from=1, densify_every=1, split_scale=0.05,
                          backend="torch")
    scene = GaussianScene(cfg)
    opt = torch.optim.Adam([dict(g) for g in scene.param_groups()])
    scene.bind_optimizer(opt)
    scene.render(Cameras.from_angles(0.0, 10.0), 16).rgb.mean().backward()
    opt.step()
    scene.post_backward(1)
    scene.render(Cameras.from_angles(0.0, 10.0), 16).rgb.mean().backward()
    opt.step()
    assert scene.num == 100
    saved_scene, saved_opt = scene.state_dict(), opt.state_dict()

    fresh = GaussianScene(cfg)
    fresh_opt = torch.optim.Adam([dict(g) for g in fresh.param_groups()])
    fresh.bind_optimizer(fresh_opt)
    fresh.load_state_dict(saved_scene)
    fresh_opt.load_state_dict(saved_opt)
    assert fresh.num == 100 and torch.equal(fresh.means, scene.means)
    assert fresh_opt.param_groups[0]["params"][0] is fresh.means
    assert torch.equal(fresh_opt.state[fresh.means]["exp_avg"], opt.state[scene.means]["exp_avg"])
    fresh.render(Cameras.from_angles(0.0, 10.0), 16).rgb.mean().backward()
    fresh_opt.step()


def test_render_depth_is_distance_along_the_ray():
    """The contract's depth is ray distance (the rasteriser composites camera z): an off-axis blob reads
    |camera - blob|, not the camera's z of it."""
    scene = GaussianScene(GaussiansConfig(num_init=1, backend="torch"))
    with torch.no_grad():
        scene.means.copy_(torch.tensor([[0.6, 0.0, 0.0]]))
        scene.log_scales.fill_(torch.log(torch.tensor(0.01)))
        scene.opacity_logits.fill_(6.0)
    cams = Cameras.from_angles(0.0, 0.0)
    out = scene.render(cams, 64)
    a = out.alpha[0, 0]
    row, col = divmod(int(a.argmax()), 64)
    distance = (cams.positions()[0] - scene.means[0].detach()).norm().item()
    out = RenderOutput(out.rgb.detach(), out.alpha.detach(), out.depth.detach())
    a = out.alpha[0, 0]
    assert out.depth[0, 0, row, col] / a[row, col] == pytest.approx(distance, abs=0.01)
    assert distance - 2.5 > 0.05  # the z-depth (2.5) would fail the check above


def test_density_grid_sums_each_gaussian_over_its_support_as_the_dense_sum_does():
    """The export's grid (each Gaussian over the grid points of its 4-sigma box) against the dense mixture at every
    grid point, with a Gaussian wider than the cube, one beyond it, and one thin and rotated."""
    scene = GaussianScene(GaussiansConfig(num_init=300), seed=0)
    with torch.no_grad():
        scene.log_scales[0] = torch.log(torch.tensor([2.0, 2.0, 2.0]))  # covers the whole cube
        scene.means[1] = torch.tensor([3.0, 0.0, 0.0])                   # its box misses the grid
        scene.log_scales[2] = torch.log(torch.tensor([0.3, 0.01, 0.01]))
        scene.quats[2] = torch.nn.functional.normalize(torch.tensor([0.9, 0.3, 0.2, 0.1]), dim=0)
    res = 24
    grid, step = scene.density_grid(res)
    axis = torch.linspace(-scene.config.bound, scene.config.bound, res)
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).view(-1, 3)
    dense = scene.density(pts).view(res, res, res)
    assert step == pytest.approx(float(axis[1] - axis[0]))
    assert (grid - dense).abs().max() < 1e-3 * dense.max()
    small_chunks, _ = scene.density_grid(res, pairs_per_chunk=1000)
    assert torch.allclose(small_chunks, grid, rtol=1e-5, atol=1e-6)


def test_rasteriser_gradients_are_the_same_every_time_on_two_threads():
    """A seeded run is deterministic on the CPU: many pairs share a Gaussian, and their gradients must sum in a
    fixed order whatever the threads."""
    scene = GaussianScene(GaussiansConfig(num_init=4000, init_scale=0.06, init_opacity=0.3), seed=3)
    cams = Cameras.from_angles(30.0, 15.0)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = []
        for _ in range(4):
            scene.zero_grad(set_to_none=True)
            out = scene.render(cams, 32)
            (out.rgb.sum() + out.depth.sum()).backward()
            grads.append(torch.cat([scene.means.grad.flatten(), scene.log_scales.grad.flatten()]))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(grads[0], g) for g in grads[1:])
