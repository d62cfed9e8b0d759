"""The 2D scene: images optimised directly, one per particle (the camera only conditions the teacher)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from uni3d.cameras import Cameras
from uni3d.scenes.base import RenderOutput, Scene


class ImageScene(Scene):
    """``n`` images of ``resolution`` pixels, stored as logits (rgb = sigmoid(logits)).

    With ``background="white"`` each image is a colour layer and an opacity layer composited over
    white, as the 3D scenes composite over Shapes World's white background: a pixel the guidance
    does not need stays (nearly) transparent, hence white. ``opacity_init`` is the opacity of every
    pixel at the start (an almost empty canvas, like an empty NeRF).

    ``render`` returns the images whose indices are in ``self.active`` (all by default); the
    cameras are passed through to the teacher by the trainer, not used here.
    """

    def __init__(self, n: int = 1, resolution: int = 32, lr: float = 0.03, seed: int = 0,
                 background: Literal["none", "white"] = "none", opacity_init: float = 0.05):
        super().__init__()
        if background not in ("none", "white"):
            raise ValueError(f"background must be 'none' or 'white', not {background!r}")
        if not 0 < opacity_init < 1:
            raise ValueError(f"opacity_init must lie in (0, 1), not {opacity_init}")
        g = torch.Generator().manual_seed(seed)
        self.logits = nn.Parameter(0.1 * torch.randn(n, 3, resolution, resolution, generator=g))
        self.background = background
        init = torch.logit(torch.tensor(opacity_init)).item()
        self.opacity_logits = nn.Parameter(torch.full((n, 1, resolution, resolution), init)) if background == "white" else None
        self.lr = lr

    def images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(rgb, alpha) of every image, at the scene's own resolution."""
        colour = torch.sigmoid(self.logits)
        if self.opacity_logits is None:
            return colour, torch.ones_like(colour[:, :1])
        alpha = torch.sigmoid(self.opacity_logits)
        return alpha * colour + (1 - alpha), alpha

    def render(self, cams: Cameras, resolution: int | None = None) -> RenderOutput:
        b = len(cams)
        if b != self.logits.shape[0]:
            raise ValueError(f"the image scene holds {self.logits.shape[0]} images; got {b} cameras")
        rgb, alpha = self.images()
        if resolution is not None and resolution != rgb.shape[-1]:
            size = (resolution, resolution)
            rgb = nn.functional.interpolate(rgb, size=size, mode="bilinear", align_corners=False)
            alpha = nn.functional.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
        return RenderOutput(rgb=rgb, alpha=alpha, depth=torch.ones_like(alpha))

    def param_groups(self) -> list[dict]:
        params = [self.logits] + ([self.opacity_logits] if self.opacity_logits is not None else [])
        return [{"params": params, "lr": self.lr, "name": "image"}]
