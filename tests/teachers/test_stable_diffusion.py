"""The Stable Diffusion path on tiny random components (no download)."""

import pytest
import torch

from uni3d.cameras import Cameras
from uni3d.errors import UserError
from uni3d.teachers import load_teacher
from uni3d.teachers.sampling import sample
from uni3d.teachers.stable_diffusion import StableDiffusionTeacher, view_suffix


def test_view_suffixes():
    assert view_suffix(0, 0) == "front view"
    assert view_suffix(350, 10) == "front view"
    assert view_suffix(90, 10) == "side view"
    assert view_suffix(180, 10) == "back view"
    assert view_suffix(180, 70) == "overhead view"


def test_latent_encode_keeps_gradient(tiny_sd_teacher):
    t = tiny_sd_teacher
    assert t.resolution == 16
    rgb = torch.rand(2, 3, 16, 16, requires_grad=True)
    x0 = t.encode(rgb)
    assert x0.shape == (2, 4, 8, 8)
    x0.square().sum().backward()
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0
    assert t.decode(x0.detach()).shape == (2, 3, 16, 16)


def test_view_dependent_conditioning(tiny_sd_teacher):
    t = tiny_sd_teacher
    cams = Cameras.from_angles([0.0, 180.0], [10.0, 10.0])
    cond = t.condition("a red mug", cams)
    assert cond.camera is None
    assert cond.text.shape[0] == 2
    assert not torch.allclose(cond.text[0], cond.text[1])  # "front view" vs "back view"
    assert torch.allclose(cond.text[0:1], t.embed("a red mug, front view"))


def test_eps_and_sampling(tiny_sd_teacher):
    t = tiny_sd_teacher
    cond = t.condition("a red mug", None, batch=2)
    eps = t.eps(torch.randn(2, 4, 8, 8), torch.tensor([10, 900]), cond, 7.5)
    assert eps.shape == (2, 4, 8, 8)
    imgs = sample(t, "a red mug", 2, None, steps=2, generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (2, 3, 16, 16)


def test_load_teacher_dispatches_to_sd(tiny_sd_dir):
    assert isinstance(load_teacher(str(tiny_sd_dir)), StableDiffusionTeacher)


def test_missing_weights_offline_is_one_line(tmp_path):
    with pytest.raises(UserError) as err:
        StableDiffusionTeacher.from_pretrained(tmp_path / "no-such-model")
    msg = str(err.value)
    assert "\n" not in msg and "--teacher" in msg
