"""The 2D scene: images optimised directly, one per particle (the camera only conditions the teacher)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from uni3d.cameras import Cameras
from uni3d.scenes.base import RenderOutput, Scene

PYRAMID_LEVELS = 4
"""Pyramid levels of the 2D mode's images (``uni3d generate --scene image``, scripts/compare_2d.py): grids of
R, R/2, R/4 and R/8 pixels."""
PYRAMID_DETAIL_LR = 0.7
"""Learning-rate factor per finer pyramid level of the 2D mode (measured: scripts/probe_2d.py, docs/GUIDANCE_2D.md)."""


def pyramid_levels(resolution: int, wanted: int = PYRAMID_LEVELS) -> int:
    """The most levels, up to ``wanted``, whose coarsest grid still has a whole number of pixels."""
    levels = 1
    while levels < wanted and resolution % 2**levels == 0:
        levels += 1
    return levels


def _upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class ImageScene(Scene):
    """``n`` images of ``resolution`` pixels, stored as logits (rgb = sigmoid(logits)).

    With ``background="white"`` each image is a colour layer and an opacity layer composited over
    white, as the 3D scenes composite over Shapes World's white background: a pixel the guidance
    does not need stays (nearly) transparent, hence white. ``opacity_init`` is the opacity of every
    pixel at the start (an almost empty canvas, like an empty NeRF).

    With ``levels > 1`` each layer's logits are a pyramid: the sum of ``levels`` grids of
    ``resolution / 2**k`` pixels (k = 0 is ``self.logits`` at full resolution), each upsampled
    bilinearly to ``resolution``, as the NeRF's multi-resolution grid parameterises its field. Level
    ``k`` learns at ``lr * detail_lr**(levels - 1 - k)``: with ``detail_lr < 1`` the coarse levels
    move the image's broad shapes and colours faster than the finest level moves single pixels. The
    coarse levels start at zero, so the first render is the same for every ``levels``.

    ``render`` returns the images whose indices are in ``self.active`` (all by default); the
    cameras are passed through to the teacher by the trainer, not used here.
    """

    def __init__(self, n: int = 1, resolution: int = 32, lr: float = 0.03, seed: int = 0,
                 background: Literal["none", "white"] = "none", opacity_init: float = 0.05,
                 levels: int = 1, detail_lr: float = 1.0):
        super().__init__()
        if background not in ("none", "white"):
            raise ValueError(f"background must be 'none' or 'white', not {background!r}")
        if not 0 < opacity_init < 1:
            raise ValueError(f"opacity_init must lie in (0, 1), not {opacity_init}")
        if levels < 1 or resolution % 2 ** (levels - 1):
            raise ValueError(f"levels must be >= 1 with resolution ({resolution}) divisible by 2**(levels - 1); got {levels}")
        if not 0 < detail_lr <= 1:
            raise ValueError(f"detail_lr must lie in (0, 1], not {detail_lr}")
        g = torch.Generator().manual_seed(seed)
        self.logits = nn.Parameter(0.1 * torch.randn(n, 3, resolution, resolution, generator=g))
        self.background = background
        init = torch.logit(torch.tensor(opacity_init)).item()
        self.opacity_logits = nn.Parameter(torch.full((n, 1, resolution, resolution), init)) if background == "white" else None
        channels = 3 + (1 if self.opacity_logits is not None else 0)
        self.coarse = nn.ParameterList(
            nn.Parameter(torch.zeros(n, channels, resolution >> k, resolution >> k)) for k in range(1, levels))
        self.lr = lr
        self.detail_lr = detail_lr

    def _layer_logits(self) -> torch.Tensor:
        """(n, 3 or 4, R, R): colour logits, then opacity logits with the white background."""
        fine = self.logits if self.opacity_logits is None else torch.cat([self.logits, self.opacity_logits], 1)
        size = fine.shape[-1]
        return fine + sum(_upsample(p, size) for p in self.coarse)

    def images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(rgb, alpha) of every image, at the scene's own resolution."""
        logits = self._layer_logits()
        colour = torch.sigmoid(logits[:, :3])
        if self.opacity_logits is None:
            return colour, torch.ones_like(colour[:, :1])
        alpha = torch.sigmoid(logits[:, 3:])
        return alpha * colour + (1 - alpha), alpha

    def render(self, cams: Cameras, resolution: int | None = None) -> RenderOutput:
        b = len(cams)
        if b != self.logits.shape[0]:
            raise ValueError(f"the image scene holds {self.logits.shape[0]} images; got {b} cameras")
        rgb, alpha = self.images()
        if resolution is not None and resolution != rgb.shape[-1]:
            rgb, alpha = _upsample(rgb, resolution), _upsample(alpha, resolution)
        return RenderOutput(rgb=rgb, alpha=alpha, depth=torch.ones_like(alpha))

    def param_groups(self) -> list[dict]:
        fine = [self.logits] + ([self.opacity_logits] if self.opacity_logits is not None else [])
        levels = len(self.coarse) + 1
        groups = [{"params": fine, "lr": self.lr * self.detail_lr ** (levels - 1), "name": "image"}]
        for k, p in enumerate(self.coarse, start=1):
            groups.append({"params": [p], "lr": self.lr * self.detail_lr ** (levels - 1 - k), "name": f"image_level{k}"})
        return groups
