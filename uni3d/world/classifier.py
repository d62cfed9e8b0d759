"""A small Shapes World classifier: shape, colour and view of a 32 px image.

It scores the teacher's samples and, later, renders of generated 3D scenes. The view head
predicts ``(cos az, sin az)`` for mugs (the handle breaks the symmetry) and ``(cos 4az, sin 4az)``
for cubes (a face at 0 degrees, an edge at 45), where ``az`` is the camera azimuth.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from uni3d.errors import AssetError
from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES

MUG, CUBE = SHAPE_NAMES.index("mug"), SHAPE_NAMES.index("cube")


@dataclass
class ClassifierConfig:
    resolution: int = 32
    width: int = 32


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
    )


class ShapesClassifier(nn.Module):
    """(B, 3, H, W) images in [0, 1] -> logits of shape (6), colour (6), and 4 view numbers."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        w = config.width
        self.features = nn.Sequential(
            _block(3, w), nn.MaxPool2d(2), _block(w, 2 * w), nn.MaxPool2d(2), _block(2 * w, 4 * w), nn.MaxPool2d(2)
        )
        side = config.resolution // 8
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * side * side, 256), nn.SiLU())
        self.shape_head = nn.Linear(256, len(SHAPE_NAMES))
        self.colour_head = nn.Linear(256, len(COLOUR_NAMES))
        self.view_head = nn.Linear(256, 4)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        r = self.config.resolution
        if images.shape[-1] != r:
            images = F.interpolate(images, size=(r, r), mode="bilinear", antialias=True, align_corners=False)
        h = self.trunk(self.features(images * 2 - 1))
        return {"shape": self.shape_head(h), "colour": self.colour_head(h), "view": self.view_head(h)}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predicted shape and colour indices, and the azimuth (degrees) implied by the view head:
        ``mug_azimuth`` in [0, 360) and ``cube_azimuth`` modulo 90, in [0, 90)."""
        out = self(images)
        v = out["view"]
        return {
            "shape": out["shape"].argmax(-1),
            "colour": out["colour"].argmax(-1),
            "shape_prob": out["shape"].softmax(-1),
            "colour_prob": out["colour"].softmax(-1),
            "mug_azimuth": torch.rad2deg(torch.atan2(v[:, 1], v[:, 0])) % 360,
            "cube_azimuth": (torch.rad2deg(torch.atan2(v[:, 3], v[:, 2])) % 360) / 4,
        }

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / "model.safetensors"))

    @staticmethod
    def from_pretrained(directory: str | Path | None = None) -> ShapesClassifier:
        from uni3d.teachers.shapes import assets_dir

        directory = Path(directory) if directory is not None else assets_dir() / "classifier" / "shapes-v1"
        hint = "restore it with `git checkout -- assets/classifier` or retrain it with `python scripts/train_classifier.py`"
        try:
            config = ClassifierConfig(**json.loads((directory / "config.json").read_text()))
            model = ShapesClassifier(config)
            model.load_state_dict(load_file(str(directory / "model.safetensors")))
        except FileNotFoundError as exc:
            raise AssetError(f"classifier file missing: {exc.filename}; {hint}") from exc
        except Exception as exc:
            raise AssetError(f"classifier in {directory} unreadable ({type(exc).__name__}); {hint}") from exc
        return model.eval()


def view_targets(shape_idx: torch.Tensor, azimuth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets (B, 4) and mask (B, 4) of the view head for labelled renders."""
    az = torch.deg2rad(azimuth)
    target = torch.stack([torch.cos(az), torch.sin(az), torch.cos(4 * az), torch.sin(4 * az)], dim=-1)
    mask = torch.zeros_like(target)
    mask[shape_idx == MUG, :2] = 1
    mask[shape_idx == CUBE, 2:] = 1
    return target, mask


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noise, brightness and blur, so that the classifier also reads imperfect samples and renders."""
    b = images.shape[0]
    sigma = torch.rand(b, 1, 1, 1, generator=generator) * 0.08
    gain = 0.9 + 0.2 * torch.rand(b, 1, 1, 1, generator=generator)
    x = images * gain + sigma * torch.randn(images.shape, generator=generator)
    blur = torch.rand(b, generator=generator) < 0.3
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0]) / 4
        kernel = (k[:, None] * k[None, :]).expand(3, 1, 3, 3)
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    return x.clamp(0, 1)
