"""The teacher's own samplers: ancestral DDPM clips its x0 estimate to the teacher's range; DDIM does not."""

import pytest
import torch

from uni3d.cameras import Cameras
from uni3d.teachers.sampling import make_scheduler, sample


def test_ddpm_clips_to_the_teachers_range(tiny_shapes_teacher):
    sched = make_scheduler(tiny_shapes_teacher, "ddpm", 10)
    assert tiny_shapes_teacher.x0_range == 1.0
    assert sched.config.clip_sample and sched.config.clip_sample_range == 1.0
    assert len(sched.timesteps) == 10
    assert not make_scheduler(tiny_shapes_teacher, "ddim", 10).config.clip_sample


def test_unbounded_teacher_is_not_clipped(tiny_shapes_teacher, monkeypatch):
    monkeypatch.setattr(tiny_shapes_teacher, "x0_range", None)  # as a latent (Stable Diffusion) teacher
    assert not make_scheduler(tiny_shapes_teacher, "ddpm", 10).config.clip_sample


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_seeded_samples_repeat(tiny_shapes_teacher, sampler):
    cams = Cameras.from_angles([0.0, 90.0], [10.0, 10.0])
    a, b = (sample(tiny_shapes_teacher, "a red cube", 2, cams, steps=3, generator=torch.Generator().manual_seed(5),
                   sampler=sampler) for _ in range(2))
    assert torch.equal(a, b)
    c = sample(tiny_shapes_teacher, "a red cube", 2, cams, steps=3, generator=torch.Generator().manual_seed(6), sampler=sampler)
    assert not torch.equal(a, c)
