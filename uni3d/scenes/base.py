"""The Scene contract: something that renders cameras differentiably."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from uni3d.cameras import Cameras


@dataclass
class RenderOutput:
    """A batch of renders; every tensor is (B, C, H, W).

    Attributes:
        rgb: colour in [0, 1], composited over the background.
        alpha: opacity in [0, 1].
        depth: expected ray distance where opaque (0 elsewhere).
        normals: unit normals in world space (zeros where empty), or None.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor | None = None
    aux: dict | None = None


class Scene(nn.Module, ABC):
    """A differentiable 3D (or 2D) representation."""

    @property
    def device(self) -> torch.device:
        """Where the scene's parameters are; inputs given on another device are moved here."""
        return next(self.parameters()).device

    @abstractmethod
    def render(self, cams: Cameras, resolution: int) -> RenderOutput:
        """Render each camera at ``resolution`` x ``resolution`` pixels."""

    @abstractmethod
    def param_groups(self) -> list[dict]:
        """Optimizer parameter groups with their learning rates."""

    def regularizers(self, out: RenderOutput, step: int) -> dict[str, torch.Tensor]:
        """Named regularisation losses (``loss_*``), weighted by the trainer's config."""
        return {}

    def bind_optimizer(self, optimizer) -> None:
        """Scenes that add or remove parameters (densification) keep the optimizer in step."""

    def post_backward(self, step: int) -> None:
        """Called after the backward pass (densify / prune / grid updates)."""
