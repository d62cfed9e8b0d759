"""The on-disk layout of the shapes teacher, and how to build its networks from scratch.

A shapes teacher directory (diffusers layout)::

    model_index.json          what the folder is and its parts
    teacher.json              resolution, pixel-unshuffle factor, camera features, default CFG
    unet/                     diffusers UNet2DConditionModel (config.json + safetensors)
    scheduler/                diffusers DDPMScheduler config (the noise table)
    text_encoder/             ShapesTextEncoder (config.json + model.safetensors)
    camera_encoder/           CameraEncoder, when teacher.json has camera_tokens > 0
    tokenizer/vocab.json      the closed vocabulary
    README.md                 model card
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from uni3d.cameras import CAMERA_FEATURES
from uni3d.teachers.camera_encoder import CameraEncoder, CameraEncoderConfig
from uni3d.teachers.text_encoder import ShapesTextEncoder, TextEncoderConfig, WordTokenizer
from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES

VOCABULARY = ["a", "object"] + COLOUR_NAMES + SHAPE_NAMES
"""The words of the shapes teacher. It learns them from captions; it is not told what they mean."""

REQUIRED_FILES = [
    "model_index.json",
    "teacher.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/vocab.json",
]


@dataclass
class TeacherMeta:
    """What a caller needs to know to use a shapes teacher (``teacher.json``)."""

    resolution: int = 32
    """Image side in pixels."""
    unshuffle: int = 2
    """Pixel-unshuffle factor: the UNet sees (3 u^2, res/u, res/u), a lossless reshape of the image."""
    camera_features: int = CAMERA_FEATURES
    """Width of the camera input (see uni3d.cameras.camera_features)."""
    default_cfg: float = 4.0
    """Classifier-free guidance scale for sampling."""
    camera_tokens: int = 0
    """Camera tokens appended to the text tokens for cross-attention (0: the camera enters through the
    time embedding only, as in the first teacher)."""


CAMERA_ENCODER_FILES = ["camera_encoder/config.json", "camera_encoder/model.safetensors"]
"""Required as well when ``camera_tokens > 0``."""


def build_unet(meta: TeacherMeta, channels=(64, 128, 128), layers_per_block: int = 1,
               time_scale_shift: str = "default") -> UNet2DConditionModel:
    """A fresh pixel-space UNet with cross-attention on text (and camera tokens) and the camera added to
    the time embedding, which is added to each ResNet block's features (``default``) or scales and shifts
    them (``scale_shift``)."""
    u = meta.unshuffle
    return UNet2DConditionModel(
        sample_size=meta.resolution // u,
        in_channels=3 * u * u,
        out_channels=3 * u * u,
        block_out_channels=tuple(channels),
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(channels) - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (len(channels) - 1) + ("UpBlock2D",),
        layers_per_block=layers_per_block,
        cross_attention_dim=TextEncoderConfig.width,
        attention_head_dim=32,
        norm_num_groups=32,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=meta.camera_features,
        resnet_time_scale_shift=time_scale_shift,
    )


def build_camera_encoder(meta: TeacherMeta) -> CameraEncoder | None:
    if meta.camera_tokens <= 0:
        return None
    return CameraEncoder(CameraEncoderConfig(tokens=meta.camera_tokens, width=TextEncoderConfig.width,
                                             features=meta.camera_features))


def build_text_encoder() -> tuple[WordTokenizer, ShapesTextEncoder]:
    tok = WordTokenizer(VOCABULARY, max_length=TextEncoderConfig.max_length)
    return tok, ShapesTextEncoder(TextEncoderConfig(vocab_size=len(tok.words)))


def build_scheduler() -> DDPMScheduler:
    """Cosine noise table, 1000 steps, noise (epsilon) prediction."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon", clip_sample=False)


def save_teacher(directory: str | Path, unet, text_encoder, tokenizer, scheduler, meta: TeacherMeta,
                 camera_encoder: CameraEncoder | None = None) -> None:
    """Write a shapes teacher directory; UNet weights in float16 to keep the asset small."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    unet.to(dtype=torch.float16).save_pretrained(directory / "unet", safe_serialization=True)
    unet.float()
    text_encoder.save_pretrained(directory / "text_encoder")
    if camera_encoder is not None:
        camera_encoder.save_pretrained(directory / "camera_encoder")
    tokenizer.save(directory / "tokenizer")
    scheduler.save_pretrained(directory / "scheduler")
    (directory / "teacher.json").write_text(json.dumps(asdict(meta), indent=2) + "\n")
    index = {
        "_class_name": "ShapesTeacher",
        "_library": "uni3d",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["uni3d", "ShapesTextEncoder"],
        "tokenizer": ["uni3d", "WordTokenizer"],
    }
    if camera_encoder is not None:
        index["camera_encoder"] = ["uni3d", "CameraEncoder"]
    (directory / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
