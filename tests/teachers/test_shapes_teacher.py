"""The Teacher contract on a tiny random shapes teacher."""

from pathlib import Path

import pytest
import torch

from uni3d.cameras import Cameras
from uni3d.errors import AssetError
from uni3d.teachers import load_teacher
from uni3d.teachers.sampling import sample
from uni3d.teachers.shapes import ShapesTeacher
from uni3d.teachers.text_encoder import VocabularyError


def test_encode_decode_roundtrip_and_gradient(tiny_shapes_teacher):
    t = tiny_shapes_teacher
    rgb = torch.rand(2, 3, 16, 16, requires_grad=True)
    x0 = t.encode(rgb)
    assert x0.shape == (2, 12, 8, 8)
    assert torch.allclose(t.decode(x0), rgb, atol=1e-6)
    x0.sum().backward()
    assert torch.allclose(rgb.grad, torch.full_like(rgb, 2.0))


def test_encode_resizes_other_resolutions(tiny_shapes_teacher):
    assert tiny_shapes_teacher.encode(torch.rand(1, 3, 32, 32)).shape == (1, 12, 8, 8)


def test_add_noise_is_the_forward_process(tiny_shapes_teacher):
    t = tiny_shapes_teacher
    x0, eps = torch.randn(3, 12, 8, 8), torch.randn(3, 12, 8, 8)
    ts = torch.tensor([0, 500, 999])
    abar = t.alphas_cumprod[ts].view(-1, 1, 1, 1)
    assert torch.allclose(t.add_noise(x0, ts, eps), abar.sqrt() * x0 + (1 - abar).sqrt() * eps)
    a, s = t.a_s(ts)
    assert torch.allclose(a**2 + s**2, torch.ones_like(a))


def test_cfg_is_batched_and_matches_two_passes(tiny_shapes_teacher):
    t = tiny_shapes_teacher
    cams = Cameras.from_angles([0.0, 90.0], [10.0, 20.0])
    cond = t.condition("a red mug", cams)
    x, ts = torch.randn(2, 12, 8, 8), torch.tensor([100, 700])
    calls = []
    hook = t.unet.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    guided = t.eps(x, ts, cond, 5.0)
    hook.remove()
    assert calls == [4]  # cond + uncond in one pass
    eps_c = t.unet_eps(x, ts, cond.text, cond.camera)
    eps_u = t.unet_eps(x, ts, cond.uncond, cond.camera)
    assert torch.allclose(guided, eps_u + 5.0 * (eps_c - eps_u), atol=1e-5)


def test_camera_changes_the_prediction(tiny_shapes_teacher):
    t = tiny_shapes_teacher
    x, ts = torch.randn(1, 12, 8, 8), torch.tensor([300])
    text = t.embed("a red cube")
    a = t.unet_eps(x, ts, text, t.condition("a red cube", Cameras.from_angles(0.0, 0.0)).camera)
    b = t.unet_eps(x, ts, text, t.condition("a red cube", Cameras.from_angles(45.0, 0.0)).camera)
    assert not torch.allclose(a, b)


def test_camera_reaches_the_prediction_through_its_tokens(tiny_shapes_teacher):
    t = tiny_shapes_teacher
    x, ts = torch.randn(2, 12, 8, 8), torch.tensor([300, 300])
    text = t.embed("a red cube").expand(2, -1, -1)
    cams = t.condition("a red cube", Cameras.from_angles([0.0, 45.0], [0.0, 0.0])).camera
    with_tokens = t.unet_eps(x, ts, text, cams)
    encoder, t.camera_encoder = t.camera_encoder, None
    try:
        without = t.unet_eps(x, ts, text, cams)
    finally:
        t.camera_encoder = encoder
    assert not torch.allclose(with_tokens, without)
    # the tokens are what the cross-attention sees: one view's tokens differ from another's
    tokens = encoder(cams)
    assert tokens.shape == (2, 2, 128) and not torch.allclose(tokens[0], tokens[1])


def test_embedding_cache(tiny_shapes_teacher):
    t = tiny_shapes_teacher
    assert t.embed("a red mug") is t.embed("a red mug")
    assert t.embed("a red mug").shape == (1, 6, 128)


def test_unknown_word_lists_vocabulary(tiny_shapes_teacher):
    with pytest.raises(VocabularyError) as err:
        tiny_shapes_teacher.embed("a shiny mug")
    assert "'shiny'" in str(err.value) and "cylinder" in str(err.value) and "purple" in str(err.value)


def test_weights_are_frozen(tiny_shapes_teacher):
    assert not any(p.requires_grad for p in tiny_shapes_teacher.parameters())
    tiny_shapes_teacher.train()
    assert not tiny_shapes_teacher.training


def test_sample_shapes_and_range(tiny_shapes_teacher):
    imgs = sample(tiny_shapes_teacher, "a blue torus", 3, Cameras.from_angles([0.0] * 3, [0.0] * 3), steps=3,
                  generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (3, 3, 16, 16)
    assert imgs.min() >= 0 and imgs.max() <= 1


def test_load_by_directory(tiny_shapes_dir):
    assert isinstance(load_teacher(str(tiny_shapes_dir)), ShapesTeacher)


def _copy(directory, tmp_path):
    """A copy of a teacher directory, to break."""
    import shutil

    return Path(shutil.copytree(directory, tmp_path / "teacher"))


def test_missing_file_names_it(tiny_shapes_dir, tmp_path):
    broken = _copy(tiny_shapes_dir, tmp_path)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(AssetError, match="diffusion_pytorch_model.safetensors.*git checkout"):
        ShapesTeacher.from_pretrained(broken)


def test_corrupt_file_names_it(tiny_shapes_dir, tmp_path):
    broken = _copy(tiny_shapes_dir, tmp_path)
    (broken / "text_encoder" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AssetError, match="unreadable.*text_encoder"):
        ShapesTeacher.from_pretrained(broken)


def test_missing_camera_encoder_names_it(tiny_shapes_dir, tmp_path):
    broken = _copy(tiny_shapes_dir, tmp_path)
    (broken / "camera_encoder" / "model.safetensors").unlink()
    with pytest.raises(AssetError, match="camera_encoder/model.safetensors.*git checkout"):
        ShapesTeacher.from_pretrained(broken)


def test_first_teacher_layout_without_camera_encoder_loads(tiny_shapes_dir, tmp_path):
    import json
    import shutil

    old = _copy(tiny_shapes_dir, tmp_path)
    shutil.rmtree(old / "camera_encoder")
    meta = json.loads((old / "teacher.json").read_text())
    del meta["camera_tokens"]
    (old / "teacher.json").write_text(json.dumps(meta))
    assert ShapesTeacher.from_pretrained(old).camera_encoder is None
