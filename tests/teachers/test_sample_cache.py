"""The ratio head's real data: teacher samples drawn once per (teacher, prompt, sampler settings), on disk."""

import pytest
import torch

import uni3d.teachers.sample_cache as sample_cache
from uni3d.teachers.sample_cache import cached_teacher_samples


def test_drawn_once_then_read_back(tiny_shapes_teacher, tmp_path, monkeypatch):
    x0, cams = cached_teacher_samples(tiny_shapes_teacher, "a red mug", 3, cfg_scale=2.0, steps=2, directory=tmp_path)
    files = list((tmp_path / "teacher_samples").iterdir())
    assert [f.suffix for f in files] == [".pt"]  # one file, no temporary left behind
    assert x0.shape == (3, 12, 8, 8) and len(cams) == 3

    def no_sampling(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(sample_cache, "sample", no_sampling)
    again, cams_again = cached_teacher_samples(tiny_shapes_teacher, "a red mug", 3, cfg_scale=2.0, steps=2, directory=tmp_path)
    assert torch.equal(again, x0) and torch.equal(cams_again.azimuth, cams.azimuth)


@pytest.mark.parametrize("change", [{"prompt": "a blue mug"}, {"cfg_scale": 3.0}, {"steps": 3}, {"sampler": "ddim"},
                                    {"seed": 1}, {"n": 2}])
def test_each_setting_is_part_of_the_key(tiny_shapes_teacher, tmp_path, change):
    base = {"prompt": "a red mug", "n": 3, "cfg_scale": 2.0, "steps": 2}
    cached_teacher_samples(tiny_shapes_teacher, **base, directory=tmp_path)
    cached_teacher_samples(tiny_shapes_teacher, **{**base, **change}, directory=tmp_path)
    assert len(list((tmp_path / "teacher_samples").glob("*.pt"))) == 2
