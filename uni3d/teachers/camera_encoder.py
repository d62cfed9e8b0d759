"""The shapes teacher's camera tokens: the view, as extra keys for the UNet's cross-attention."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from uni3d.cameras import CAMERA_FEATURES


@dataclass
class CameraEncoderConfig:
    """Shape of the camera token encoder."""

    tokens: int = 2
    """Tokens appended to the text tokens."""
    width: int = 128
    """Token width (the UNet's cross-attention width)."""
    hidden: int = 128
    """Hidden width of the MLP."""
    features: int = CAMERA_FEATURES
    """Width of the camera features it reads (uni3d.cameras.camera_features)."""


class CameraEncoder(nn.Module):
    """(B, features) camera features -> (B, tokens, width) tokens.

    The time embedding adds the camera to every pixel alike; through cross-attention each pixel
    can read the view differently, which is what a cube's faces and edges need. Zero features (a
    withheld camera) give one learned "no camera" token set.
    """

    def __init__(self, config: CameraEncoderConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(config.features, config.hidden), nn.SiLU(), nn.Linear(config.hidden, config.tokens * config.width)
        )
        self.norm = nn.LayerNorm(config.width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        c = self.config
        return self.norm(self.net(features).view(features.shape[0], c.tokens, c.width))

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(directory / "model.safetensors"))

    @staticmethod
    def from_pretrained(directory: str | Path) -> CameraEncoder:
        directory = Path(directory)
        model = CameraEncoder(CameraEncoderConfig(**json.loads((directory / "config.json").read_text())))
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
        return model.eval()
