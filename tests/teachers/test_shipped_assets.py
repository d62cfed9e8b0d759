"""The committed teacher and classifier load by name and work."""

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
