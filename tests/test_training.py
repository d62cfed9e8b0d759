"""The Trainer: NaN guard, gradient clipping, determinism."""

import math

import pytest
import torch

from uni3d.cameras import Cameras
from uni3d.errors import UserError
from uni3d.guidance.config import GuidanceConfig
from uni3d.guidance.distill import guidance_loss
from uni3d.scenes.image import ImageScene
from uni3d.teachers.fake_score import FakeScoreConfig, camera_conditioning
from uni3d.training import TrainConfig, Trainer, outside_unet_share


def _trainer(teacher, method="sds", **guidance):
    scene = ImageScene(1, 16, seed=0)
    cfg = TrainConfig(steps=3, resolution=16, views=1)
    return Trainer(cfg, GuidanceConfig(method=method, **guidance), FakeScoreConfig(), scene, teacher, "a red mug",
                   fixed_cameras=Cameras.from_angles(20.0, 15.0))


def _one_inf(g):
    g = g.clone()
    g.view(-1)[7] = float("inf")
    return g


@pytest.mark.parametrize("poison", [lambda g: g * float("nan"), _one_inf], ids=["nan-everywhere", "one-inf"])
def test_non_finite_gradient_skips_the_step_and_is_counted(tiny_shapes_teacher, poison):
    trainer = _trainer(tiny_shapes_teacher)
    before = trainer.scene.logits.detach().clone()
    trainer.scene.logits.register_hook(poison)
    trainer.train_step(0)
    assert trainer.skipped == 1
    assert torch.equal(trainer.scene.logits.detach(), before)


def test_seeded_steps_are_deterministic(tiny_shapes_dir):
    from uni3d.teachers.shapes import ShapesTeacher

    torch.manual_seed(0)
    a = _trainer(ShapesTeacher.from_pretrained(tiny_shapes_dir), "vsd")
    torch.manual_seed(0)
    b = _trainer(ShapesTeacher.from_pretrained(tiny_shapes_dir), "vsd")
    for s in range(2):
        la, lb = a.train_step(s), b.train_step(s)
        assert la == lb
    assert torch.equal(a.scene.logits, b.scene.logits)


def test_gradient_clipping_bounds_the_per_sample_norm(tiny_shapes_teacher):
    t = tiny_shapes_teacher
    cams = Cameras.from_angles([0.0, 90.0], [10.0, 10.0])
    cond = camera_conditioning(t, "a red mug", cams)
    rgb = torch.rand(2, 3, 16, 16)
    norms = {}
    for clip in (0.0, 1e-3):
        x0 = t.encode(rgb).requires_grad_(True)
        cfg = GuidanceConfig(method="sds", grad_clip=clip)
        guidance_loss(cfg, t, None, x0, cond, 0, torch.Generator().manual_seed(0)).loss.backward()
        norms[clip] = x0.grad.flatten(1).norm(dim=-1)
    assert torch.all(norms[1e-3] <= 1e-3 * 1.0001)
    assert torch.all(norms[0.0] > 1e-3)


def test_t_range_anneals():
    cfg = GuidanceConfig(t_min=0.02, t_max=0.98, t_max_end=0.5, anneal_start=100, anneal_steps=100)
    assert cfg.t_range(0) == (0.02, 0.98)
    assert abs(cfg.t_range(150)[1] - 0.74) < 1e-9
    assert cfg.t_range(1000) == (0.02, 0.5)
    t = cfg.sample_t(1000, 1000, 1000, torch.Generator().manual_seed(0))
    assert t.min() >= 20 and t.max() <= 500


def test_t_min_anneals_from_large_noise():
    cfg = GuidanceConfig(t_min=0.02, t_min_start=0.8, anneal_start=10, anneal_steps=100).validate()
    assert cfg.t_range(0) == (0.8, 0.98) and cfg.t_range(10) == (0.8, 0.98)
    assert cfg.t_range(60)[0] == pytest.approx(0.41) and cfg.t_range(500)[0] == pytest.approx(0.02)
    assert cfg.sample_t(1000, 0, 1000, torch.Generator().manual_seed(0)).min() >= 800
    assert GuidanceConfig().t_range(0) == (0.02, 0.98)  # off by default
    for bad in (0.01, 0.98, 1.5):
        with pytest.raises(UserError, match="t_min_start"):
            GuidanceConfig(t_min=0.02, t_min_start=bad).validate()


def test_step_timings_split_the_scene_side_from_the_unet_side(tiny_shapes_teacher):
    trainer = _trainer(tiny_shapes_teacher, "uni-instruct", ratio_warmup=0, ratio_samples=2)
    unet_backward = []
    x0_reached = []
    # the UNet's backward must be over before the gradient reaches the scene
    trainer.scene.logits.register_hook(lambda g: x0_reached.append(len(unet_backward)))
    tiny_shapes_teacher.unet.conv_in.register_full_backward_hook(lambda *a: unet_backward.append(1))
    for s in range(2):
        trainer.train_step(s)
    assert set(trainer.timings) == {"render", "guidance", "scene_backward", "scene_update", "fake"}
    assert all(v >= 0 for v in trainer.timings.values())
    assert trainer.timings["guidance"] > 0 and trainer.timings["fake"] > 0
    assert x0_reached and all(n > 0 for n in x0_reached)  # the pathwise terms went through the UNet first
    share = outside_unet_share(trainer.timings)
    scene = sum(trainer.timings[k] for k in ("render", "scene_backward", "scene_update"))
    assert 0 < share < 1 and abs(share - scene / sum(trainer.timings.values())) < 1e-12


@pytest.mark.parametrize("method", ["sds", "vsd", "uni-instruct"])
def test_every_method_steps_with_several_noise_draws(tiny_shapes_teacher, method):
    """Three draws per view: the teacher sees each view three times, and the scene still moves."""
    trainer = _trainer(tiny_shapes_teacher, method, noise_draws=3, ratio_warmup=0, ratio_samples=2)
    batches = []
    tiny_shapes_teacher.unet.conv_in.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    before = trainer.scene.logits.detach().clone()
    metrics = trainer.train_step(0)
    assert batches[0] == 3 * 2  # one view, three draws, CFG's two halves
    assert all(math.isfinite(v) for v in metrics.values())
    assert not torch.equal(before, trainer.scene.logits)


def _state(trainer):
    return [p.detach().clone() for p in trainer.scene.parameters()] + \
        [p.detach().clone() for p in trainer.fake.trainable_parameters()]


@pytest.mark.parametrize("method", ["vsd", "uni-instruct"])
def test_overlapped_fake_score_step_is_the_step_in_order(tiny_shapes_dir, method, two_threads, in_order_thread):
    """With two threads the fake score's gradient is computed beside the scene's backward (VSD's beside its guidance
    passes too); the result is the same step computed one part after the other (no race on the shared weights,
    the same random draws)."""
    from uni3d.teachers.shapes import ShapesTeacher

    runs = {}
    for mode in ("thread", "in-order"):
        torch.manual_seed(0)
        trainer = _trainer(ShapesTeacher.from_pretrained(tiny_shapes_dir), method, ratio_warmup=0)
        assert trainer.cfg.overlap_fake
        if mode == "in-order":
            trainer.second_thread = lambda: in_order_thread
        logs = [trainer.train_step(s) for s in range(3)]
        if mode == "thread":
            assert trainer._beside is not None  # the second thread did the work
        runs[mode] = logs, _state(trainer)
    (la, sa), (lb, sb) = runs["thread"], runs["in-order"]
    assert la == lb
    assert all(torch.equal(a, b) for a, b in zip(sa, sb))


@pytest.mark.parametrize("method,first", [("vsd", "fake score's training"), ("uni-instruct", "teacher's pass")])
def test_vsd_starts_the_fake_score_before_the_guidance_passes(tiny_shapes_teacher, method, first, two_threads,
                                                              in_order_thread):
    """VSD's fake-score gradient needs nothing of the guidance and goes to the second thread before the teacher's
    pass; Uni-Instruct's waits for the guidance, whose pass through the fake score holds the LoRA frozen."""
    trainer = _trainer(tiny_shapes_teacher, method, ratio_warmup=0)
    trainer.second_thread = lambda: in_order_thread  # runs the work when it is handed over
    order = []

    def noting(what, fn):
        def noted(*args):
            order.append(what)
            return fn(*args)
        return noted

    tiny_shapes_teacher.eps = noting("teacher's pass", tiny_shapes_teacher.eps)
    trainer.fake.loss = noting("fake score's training", trainer.fake.loss)
    trainer.train_step(0)
    assert order[0] == first and set(order) == {"teacher's pass", "fake score's training"}


def test_one_thread_or_overlap_off_runs_one_stream(tiny_shapes_teacher, two_threads):
    trainer = _trainer(tiny_shapes_teacher, "vsd")
    torch.set_num_threads(1)
    trainer.train_step(0)
    assert trainer._beside is None
    torch.set_num_threads(2)
    trainer.cfg.overlap_fake = False
    trainer.train_step(1)
    assert trainer._beside is None


def test_an_error_on_the_second_thread_reaches_the_caller(tiny_shapes_teacher, monkeypatch, two_threads):
    trainer = _trainer(tiny_shapes_teacher, "vsd")

    def broken(*args, **kwargs):
        raise RuntimeError("fake score broke")

    monkeypatch.setattr(trainer.fake, "loss", broken)
    with pytest.raises(RuntimeError, match="fake score broke"):
        trainer.train_step(0)
