"""Shared fixtures: tiny random-weight teachers built on the spot, never downloaded, and the threads of the
fake-score overlap."""

from __future__ import annotations

import json
import os
import string
from concurrent.futures import Future
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _private_sample_cache(tmp_path_factory, monkeypatch):
    """Teacher samples cached by any test go under pytest's temporary directory, never the user's ~/.cache/uni3d
    (a test that sets UNI3D_CACHE itself still wins)."""
    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path_factory.getbasetemp() / "uni3d-cache"))


@pytest.fixture(scope="session")
def tiny_shapes_dir(tmp_path_factory) -> Path:
    """A shapes teacher directory with a tiny random UNet, text encoder and camera encoder."""
    from uni3d.teachers.shapes_layout import (
        TeacherMeta,
        build_camera_encoder,
        build_scheduler,
        build_text_encoder,
        build_unet,
        save_teacher,
    )

    torch.manual_seed(0)
    meta = TeacherMeta(resolution=16, camera_tokens=2)
    unet = build_unet(meta, channels=(32, 32), layers_per_block=1)
    tok, te = build_text_encoder()
    out = tmp_path_factory.mktemp("tiny_shapes")
    save_teacher(out, unet, te, tok, build_scheduler(), meta, build_camera_encoder(meta))
    return out


@pytest.fixture()
def tiny_shapes_teacher(tiny_shapes_dir):
    from uni3d.teachers.shapes import ShapesTeacher

    return ShapesTeacher.from_pretrained(tiny_shapes_dir)


def _tiny_clip_tokenizer_files(directory: Path) -> None:
    chars = list(string.ascii_lowercase) + [",", "."]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    """A Stable Diffusion checkpoint of tiny random components, saved in diffusers layout."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_sd")
    tok_dir = out / "tok_src"
    tok_dir.mkdir()
    _tiny_clip_tokenizer_files(tok_dir)
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=16)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(32, 64), latent_channels=4, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(out / "sd", safe_serialization=True)
    return out / "sd"


@pytest.fixture()
def tiny_sd_teacher(tiny_sd_dir):
    from uni3d.teachers.stable_diffusion import StableDiffusionTeacher

    return StableDiffusionTeacher.from_pretrained(tiny_sd_dir)


class _InOrder:
    """Stands in for the overlap's second thread: runs the work at once, on the calling thread."""

    def submit(self, fn, *args):
        done = Future()
        done.set_result(fn(*args))
        return done


@pytest.fixture()
def in_order_thread():
    """A stand-in for the overlap's second thread (``Trainer.second_thread``) that runs the work in order."""
    return _InOrder()


@pytest.fixture()
def two_threads():
    """Two torch threads (the overlap's condition), whatever this machine has; put back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
