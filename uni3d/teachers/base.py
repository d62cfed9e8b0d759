"""The Teacher contract: a frozen text-to-image diffusion model seen through one small interface.

Everything downstream (guidance, fake score, trainer) talks to a teacher only through this class,
so the shipped shapes teacher and any Stable Diffusion checkpoint are interchangeable.

Notation (see docs/MATH.md): ``x_t = a_t x0 + s_t eps`` with ``a_t = sqrt(abar_t)``,
``s_t = sqrt(1 - abar_t)``; ``x0`` lives in the teacher's space (pixels in [-1, 1] for a pixel
teacher, VAE latents for a latent teacher).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from uni3d.cameras import Cameras


@dataclass
class Conditioning:
    """Per-view conditioning of a batch.

    Attributes:
        text: (B, L, D) prompt embeddings (for Stable Diffusion, already view-dependent).
        uncond: (B, L, D) embeddings of the empty prompt, for classifier-free guidance.
        camera: (B, F) camera features, or None where the teacher takes no camera input.
    """

    text: torch.Tensor
    uncond: torch.Tensor
    camera: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.text.shape[0])

    @staticmethod
    def cat(parts: list[Conditioning]) -> Conditioning:
        """Concatenate along the batch (all parts with or all without a camera)."""
        cams = [p.camera for p in parts]
        camera = None if any(c is None for c in cams) else torch.cat(cams)
        return Conditioning(torch.cat([p.text for p in parts]), torch.cat([p.uncond for p in parts]), camera)

    def drop_camera(self, mask: torch.Tensor) -> Conditioning:
        """A copy with the camera zeroed where ``mask`` (B,) is True (camera dropout)."""
        if self.camera is None:
            return self
        return Conditioning(self.text, self.uncond, self.camera * (~mask).to(self.camera).unsqueeze(-1))


class Teacher(nn.Module, ABC):
    """A frozen diffusion model predicting the noise ``eps`` of ``x_t``.

    Subclasses set ``unet`` (a diffusers UNet2DConditionModel, the module a fake-score LoRA wraps),
    ``alphas_cumprod`` (the noise table, (T,)) and ``resolution`` (the image side it expects).
    """

    unet: nn.Module
    resolution: int
    name: str
    x0_range: float | None = None
    """Bound of ``|x0|`` in the teacher's space (1.0 for pixels in [-1, 1]); None where unbounded
    (VAE latents). Samplers clip their ``x0`` estimate to it."""

    @property
    def fingerprint(self) -> str:
        """Identifies the weights (cache keys of teacher samples); the name unless overridden."""
        return self.name

    def __init__(self, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.register_buffer("alphas_cumprod", alphas_cumprod.float().clone(), persistent=False)
        self._embed_cache: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        """Where the teacher's weights are."""
        return self.alphas_cumprod.device

    # --- the noise table -------------------------------------------------------------------
    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def a_s(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a_t, s_t)`` for integer timesteps (B,), shaped (B, 1, 1, 1)."""
        abar = self.alphas_cumprod.to(t.device)[t.long()].view(-1, 1, 1, 1)
        return abar.sqrt(), (1 - abar).sqrt()

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``x_t = a_t x0 + s_t eps`` (differentiable in ``x0``)."""
        a, s = self.a_s(t)
        return a.to(x0) * x0 + s.to(x0) * eps

    # --- images <-> teacher space ----------------------------------------------------------
    @abstractmethod
    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] -> ``x0`` in the teacher's space, keeping the gradient."""

    @abstractmethod
    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """``x0`` -> (B, 3, H, W) images in [0, 1]."""

    # --- conditioning ----------------------------------------------------------------------
    @abstractmethod
    def _embed_uncached(self, prompts: list[str]) -> torch.Tensor:
        """(N, L, D) embeddings of prompts (validated)."""

    def embed(self, prompt: str) -> torch.Tensor:
        """(1, L, D) embedding of one prompt, cached."""
        if prompt not in self._embed_cache:
            with torch.no_grad():
                self._embed_cache[prompt] = self._embed_uncached([prompt]).detach()
        return self._embed_cache[prompt]

    @abstractmethod
    def condition(self, prompt: str, cams: Cameras | None, batch: int | None = None) -> Conditioning:
        """Conditioning for ``prompt`` seen from each camera (or ``batch`` views without one)."""

    # --- noise prediction ------------------------------------------------------------------
    @abstractmethod
    def unet_eps(self, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor, camera: torch.Tensor | None,
                 unet: nn.Module | None = None) -> torch.Tensor:
        """One raw pass of the UNet (no guidance); the fake score passes ``unet``, its own copy of the module tree
        with the LoRA on."""

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning, cfg_scale: float) -> torch.Tensor:
        """Classifier-free guided noise prediction, cond and uncond batched in one pass:
        ``eps_u + cfg_scale * (eps_c - eps_u)``. Differentiable in ``x_t`` (weights are frozen)."""
        if cfg_scale == 1.0:
            return self.unet_eps(x_t, t, cond.text, cond.camera)
        cam = None if cond.camera is None else torch.cat([cond.camera, cond.camera])
        both = self.unet_eps(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond.text, cond.uncond]), cam)
        eps_c, eps_u = both.chunk(2)
        return eps_u + cfg_scale * (eps_c - eps_u)

    def train(self, mode: bool = True) -> Teacher:
        """A teacher stays in eval mode; its weights are frozen."""
        return super().train(False)
