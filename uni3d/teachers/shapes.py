"""The shipped shapes teacher: a camera-aware pixel-space UNet trained on Shapes World."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel

from uni3d.cameras import Cameras, camera_features
from uni3d.errors import AssetError
from uni3d.teachers.base import Conditioning, Teacher
from uni3d.teachers.camera_encoder import CameraEncoder
from uni3d.teachers.shapes_layout import CAMERA_ENCODER_FILES, REQUIRED_FILES, TeacherMeta
from uni3d.teachers.text_encoder import ShapesTextEncoder, WordTokenizer

RESTORE_HINT = (
    "restore it with `git checkout -- assets/teachers/shapes-v1` (or `git lfs pull`), "
    "or retrain it with `uni3d teacher train`"
)


def assets_dir() -> Path:
    """The repository's ``assets/`` folder (``UNI3D_ASSETS`` overrides it)."""
    import os

    env = os.environ.get("UNI3D_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "assets"


def default_teacher_dir() -> Path:
    return assets_dir() / "teachers" / "shapes-v1"


class ShapesTeacher(Teacher):
    """Pixel teacher: ``x0`` is the image in [-1, 1], pixel-unshuffled (lossless) for the UNet.

    The camera of each view enters as sinusoidal features added to the time embedding and, when the
    teacher has a camera encoder, as tokens appended to the text for cross-attention; it was
    withheld for 15% of training, so ``camera=None`` also works.
    """

    x0_range = 1.0

    def __init__(self, unet: UNet2DConditionModel, text_encoder: ShapesTextEncoder, tokenizer: WordTokenizer,
                 scheduler: DDPMScheduler, meta: TeacherMeta, name: str = "shapes",
                 camera_encoder: CameraEncoder | None = None):
        super().__init__(scheduler.alphas_cumprod)
        self.unet = unet.eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.camera_encoder = camera_encoder.eval().requires_grad_(False) if camera_encoder is not None else None
        self.tokenizer = tokenizer
        self.scheduler_config = dict(scheduler.config)
        self.meta = meta
        self.resolution = meta.resolution
        self.name = name

    @property
    def vocabulary(self) -> list[str]:
        return self.tokenizer.vocabulary

    @staticmethod
    def from_pretrained(directory: str | Path | None = None) -> ShapesTeacher:
        """Load a shapes teacher directory; a missing or corrupt file raises AssetError naming it."""
        directory = Path(directory) if directory is not None else default_teacher_dir()
        current = directory / "teacher.json"
        try:
            meta = TeacherMeta(**json.loads(current.read_text())) if current.is_file() else None
        except Exception as exc:
            raise AssetError(f"shapes teacher file unreadable: {current} ({type(exc).__name__}); {RESTORE_HINT}") from exc
        required = REQUIRED_FILES + (CAMERA_ENCODER_FILES if meta is not None and meta.camera_tokens > 0 else [])
        for rel in required:
            if not (directory / rel).is_file():
                raise AssetError(f"shapes teacher file missing: {directory / rel}; {RESTORE_HINT}")
        camera_encoder = None
        try:
            current = directory / "unet"
            unet = UNet2DConditionModel.from_pretrained(current, dtype=torch.float32)
            current = directory / "text_encoder"
            text_encoder = ShapesTextEncoder.from_pretrained(current)
            current = directory / "tokenizer" / "vocab.json"
            tokenizer = WordTokenizer.load(directory / "tokenizer")
            current = directory / "scheduler"
            scheduler = DDPMScheduler.from_pretrained(current)
            if meta.camera_tokens > 0:
                current = directory / "camera_encoder"
                camera_encoder = CameraEncoder.from_pretrained(current)
        except Exception as exc:  # corrupt JSON or safetensors
            raise AssetError(f"shapes teacher file unreadable: {current} ({type(exc).__name__}); {RESTORE_HINT}") from exc
        teacher = ShapesTeacher(unet, text_encoder, tokenizer, scheduler, meta, name=f"shapes:{directory.name}",
                                camera_encoder=camera_encoder)
        weights = directory / "unet" / "diffusion_pytorch_model.safetensors"
        teacher._fingerprint = f"{teacher.name}:{hashlib.sha1(weights.read_bytes()).hexdigest()[:12]}"
        return teacher

    @property
    def fingerprint(self) -> str:
        return getattr(self, "_fingerprint", self.name)

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        if rgb.shape[-1] != self.resolution:
            rgb = F.interpolate(rgb, size=(self.resolution, self.resolution), mode="bilinear", antialias=True, align_corners=False)
        return F.pixel_unshuffle(rgb * 2 - 1, self.meta.unshuffle)

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        return ((F.pixel_shuffle(x0, self.meta.unshuffle) + 1) / 2).clamp(0, 1)

    def _embed_uncached(self, prompts: list[str]) -> torch.Tensor:
        return self.text_encoder(self.tokenizer(prompts).to(self.alphas_cumprod.device))

    def condition(self, prompt: str, cams: Cameras | None, batch: int | None = None) -> Conditioning:
        b = len(cams) if cams is not None else int(batch or 1)
        text = self.embed(prompt).expand(b, -1, -1)
        uncond = self.embed("").expand(b, -1, -1)
        return Conditioning(text, uncond, camera_features(cams, b).to(text))

    def unet_eps(self, x_t, t, text, camera, unet=None):
        if camera is None:
            camera = torch.zeros(x_t.shape[0], self.meta.camera_features, dtype=x_t.dtype, device=x_t.device)
        camera = camera.to(x_t.dtype)
        tokens = text.to(x_t.dtype)
        if self.camera_encoder is not None:
            tokens = torch.cat([tokens, self.camera_encoder(camera).to(x_t.dtype)], dim=1)
        return (self.unet if unet is None else unet)(x_t, t, encoder_hidden_states=tokens, class_labels=camera).sample
