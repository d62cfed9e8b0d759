"""Training the shapes teacher: a tiny run writes a loadable teacher, and a killed run resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from uni3d.teachers.shapes import ShapesTeacher
from uni3d.teachers.train_shapes import TeacherTrainConfig, train


def _config(tmp_path, name, **kw) -> TeacherTrainConfig:
    base = dict(out=tmp_path / name / "out", run_dir=tmp_path / name / "run", steps=4, batch_size=4, warmup=1,
                dataset_size=24, resolution=16, checkpoint_every=2, bf16=False, camera_tokens=2)
    return TeacherTrainConfig(**(base | kw))


def _weights(directory):
    t = ShapesTeacher.from_pretrained(directory)
    return {k: v.clone() for k, v in t.state_dict().items()}


def test_tiny_run_writes_a_teacher_with_its_record(tmp_path):
    out = train(_config(tmp_path, "a"))
    teacher = ShapesTeacher.from_pretrained(out)
    assert teacher.camera_encoder is not None and teacher.meta.camera_tokens == 2
    assert (out / "loss.csv").read_text().count("\n") == 5
    command = json.loads((out / "training.json").read_text())["command"]
    assert command.startswith("uni3d teacher train ") and " --steps 4 " in command and command.endswith("--no-bf16")


def test_killed_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    full = _weights(train(_config(tmp_path, "full")))

    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    def dying_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # killed during step 3, after the checkpoint of step 2
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path, "killed"))
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    resumed = _weights(train(_config(tmp_path, "killed", resume=True)))
    assert full.keys() == resumed.keys()
    for k in full:
        torch.testing.assert_close(resumed[k], full[k], msg=k)


@pytest.mark.parametrize("fields,needle", [({"p_shape_only": 1.5}, "--p-shape-only must be a fraction"),
                                           ({"p_shape_only": 0.5, "p_colour_only": 0.5, "p_empty": 0.1}, "add up to 1.1")])
def test_caption_fractions_that_cannot_train_are_refused_before_any_work(tmp_path, fields, needle):
    from uni3d.errors import UserError

    with pytest.raises(UserError, match=needle):
        train(TeacherTrainConfig(out=tmp_path / "t", run_dir=tmp_path / "run", **fields))
    assert not (tmp_path / "run").exists()
