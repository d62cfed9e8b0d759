"""The committed teacher and classifier load by name and work."""

import pytest
import torch

from uni3d.cameras import Cameras
from uni3d.teachers import load_teacher
from uni3d.teachers.sampling import sample
from uni3d.teachers.shapes import default_teacher_dir
from uni3d.world.classifier import ShapesClassifier
from uni3d.world.render import render


def test_teacher_is_small_and_loads_by_name():
    assert (default_teacher_dir() / "teacher.json").exists(), "the shipped teacher is missing from assets/"
    size = sum(p.stat().st_size for p in default_teacher_dir().rglob("*") if p.is_file())
    assert size < 30e6
    teacher = load_teacher("shapes")
    assert teacher.resolution == 32
    imgs = sample(teacher, "a red mug", 2, Cameras.from_angles([0.0, 90.0], [15.0, 15.0]), steps=4,
                  generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (2, 3, 32, 32)


def test_classifier_reads_ground_truth_renders():
    clf = ShapesClassifier.from_pretrained()
    cams = Cameras.from_angles([30.0, 200.0, 75.0], [10.0, 30.0, 0.0])
    pred = clf.predict(render(["mug", "cube", "cone"], ["red", "blue", "yellow"], cams))
    assert pred["shape"].tolist() == [5, 1, 3]
    assert pred["colour"].tolist() == [0, 2, 3]


def test_default_sampler_gives_white_backgrounds():
    """Shapes World's background is pure white; the default (ancestral, clipped) sampler keeps it so,
    where DDIM leaves a tinted, textured border (docs/TEACHER.md, 'Choice of the sampler')."""
    teacher = load_teacher("shapes")
    cams = Cameras.from_angles([30.0, 120.0, 250.0, 330.0], [10.0, 20.0, 30.0, 0.0])

    def border(sampler: str) -> torch.Tensor:
        imgs = sample(teacher, "a blue cube", 4, cams, generator=torch.Generator().manual_seed(0), sampler=sampler)
        ring = torch.ones(32, 32, dtype=torch.bool)
        ring[2:-2, 2:-2] = False
        return imgs[..., ring].mean((1, 2))  # per sample

    ddpm, ddim = border("ddpm"), border("ddim")
    assert ddpm.min() > 0.93, ddpm
    assert ddim.mean() < ddpm.mean() - 0.03, (ddim, ddpm)


def test_unknown_sampler_is_an_error():
    with pytest.raises(ValueError, match="ddpm, ddim"):
        sample(load_teacher("shapes"), "a red mug", 1, None, steps=2, sampler="euler")
