"""The 2D scene: images optimised directly, one per particle (the camera only conditions the teacher)."""

from __future__ import annotations

import torch
from torch import nn

from uni3d.cameras import Cameras
from uni3d.scenes.base import RenderOutput, Scene


class ImageScene(Scene):
    """``n`` images of ``resolution`` pixels, stored as logits (rgb = sigmoid(logits)).

    ``render`` returns the images whose indices are in ``self.active`` (all by default); the
    cameras are passed through to the teacher by the trainer, not used here.
    """

    def __init__(self, n: int = 1, resolution: int = 32, lr: float = 0.03, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.logits = nn.Parameter(0.1 * torch.randn(n, 3, resolution, resolution, generator=g))
        self.lr = lr

    def render(self, cams: Cameras, resolution: int | None = None) -> RenderOutput:
        b = len(cams)
        if b != self.logits.shape[0]:
            raise ValueError(f"the image scene holds {self.logits.shape[0]} images; got {b} cameras")
        rgb = torch.sigmoid(self.logits)
        if resolution is not None and resolution != rgb.shape[-1]:
            rgb = nn.functional.interpolate(rgb, size=(resolution, resolution), mode="bilinear", align_corners=False)
        ones = torch.ones_like(rgb[:, :1])
        return RenderOutput(rgb=rgb, alpha=ones, depth=ones)

    def param_groups(self) -> list[dict]:
        return [{"params": [self.logits], "lr": self.lr, "name": "image"}]
