"""Stable Diffusion (any diffusers checkpoint) behind the Teacher contract.

The only module that loads diffusers pipelines. A latent teacher: ``x0`` is the VAE latent of the
render (encoded with the gradient kept); the camera becomes a view-dependent prompt suffix, as in
DreamFusion.
"""

from __future__ import annotations

from pathlib import Path

import torch

from uni3d.cameras import Cameras
from uni3d.errors import UserError
from uni3d.teachers.base import Conditioning, Teacher


def view_suffix(azimuth: float, elevation: float) -> str:
    """DreamFusion's view-dependent prompt: overhead above 60 degrees, else front/side/back by azimuth."""
    if elevation > 60:
        return "overhead view"
    az = azimuth % 360
    if az < 45 or az >= 315:
        return "front view"
    if 135 <= az < 225:
        return "back view"
    return "side view"


class StableDiffusionTeacher(Teacher):
    """A diffusers text-to-image checkpoint (local directory or hub id)."""

    def __init__(self, pipe, name: str = "stable-diffusion", view_dependent: bool = True):
        super().__init__(pipe.scheduler.alphas_cumprod)
        self.unet = pipe.unet.eval().requires_grad_(False)
        self.vae = pipe.vae.eval().requires_grad_(False)
        self.text_encoder = pipe.text_encoder.eval().requires_grad_(False)
        self.tokenizer = pipe.tokenizer
        self.scheduler_config = dict(pipe.scheduler.config)
        self.scaling = float(getattr(pipe.vae.config, "scaling_factor", 0.18215))
        vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        self.resolution = int(pipe.unet.config.sample_size) * vae_scale
        self.view_dependent = view_dependent
        self.name = name

    @staticmethod
    def from_pretrained(name_or_path: str | Path, device: str | torch.device = "cpu") -> StableDiffusionTeacher:
        """Load a checkpoint; offline and not cached, a one-line UserError says what to pass."""
        from diffusers import StableDiffusionPipeline

        device = torch.device(device)
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        try:
            pipe = StableDiffusionPipeline.from_pretrained(
                str(name_or_path), dtype=dtype, safety_checker=None, requires_safety_checker=False
            )
        except (OSError, ValueError) as exc:
            raise UserError(
                f"cannot load Stable Diffusion weights {str(name_or_path)!r} ({type(exc).__name__}): pass "
                "--teacher DIR with a local diffusers checkpoint (unet/, vae/, text_encoder/, tokenizer/, "
                "scheduler/), or download the hub id first where a network is available; use --teacher shapes "
                "for the embedded teacher"
            ) from exc
        if pipe.tokenizer is None or pipe.text_encoder is None:
            raise UserError(f"{name_or_path!s} has no tokenizer/text_encoder: a text-to-image checkpoint is needed")
        return StableDiffusionTeacher(pipe.to(device), name=str(name_or_path))

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        if rgb.shape[-1] != self.resolution:
            rgb = torch.nn.functional.interpolate(rgb, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        dist = self.vae.encode((rgb * 2 - 1).to(self.vae.dtype)).latent_dist
        return dist.mean * self.scaling

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        img = self.vae.decode((x0 / self.scaling).to(self.vae.dtype)).sample
        return ((img.float() + 1) / 2).clamp(0, 1)

    def _embed_uncached(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(
            prompts, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(self.alphas_cumprod.device)
        return self.text_encoder(ids)[0]

    def condition(self, prompt: str, cams: Cameras | None, batch: int | None = None) -> Conditioning:
        b = len(cams) if cams is not None else int(batch or 1)
        if cams is not None and self.view_dependent:
            texts = [
                self.embed(f"{prompt}, {view_suffix(a, e)}" if prompt else "")
                for a, e in zip(cams.azimuth.tolist(), cams.elevation.tolist())
            ]
            text = torch.cat(texts)
        else:
            text = self.embed(prompt).expand(b, -1, -1)
        return Conditioning(text, self.embed("").expand(b, -1, -1), None)

    def unet_eps(self, x_t, t, text, camera, unet=None):
        unet = self.unet if unet is None else unet
        kwargs = {}
        if getattr(unet, "class_embedding", None) is not None:
            # The fake score's UNet has a camera embedding here; the frozen teacher never sees one.
            kwargs["class_labels"] = camera
        out = unet(x_t.to(unet.dtype), t, encoder_hidden_states=text.to(unet.dtype), **kwargs).sample
        return out.to(x_t.dtype)
