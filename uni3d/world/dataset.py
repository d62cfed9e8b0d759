"""Generate labelled Shapes World renders for training the teacher and the classifier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from uni3d.cameras import CameraSampler
from uni3d.world.render import render
from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES


@dataclass
class ShapesDataset:
    """Renders with their labels. ``images`` are uint8 (N, 3, H, W); angles in degrees."""

    images: torch.Tensor
    shape_idx: torch.Tensor
    colour_idx: torch.Tensor
    azimuth: torch.Tensor
    elevation: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def float_images(self, idx: torch.Tensor) -> torch.Tensor:
        """Images ``idx`` as floats in [-1, 1]."""
        return self.images[idx].float() / 127.5 - 1.0

    def save(self, path: str | Path) -> None:
        torch.save(self.__dict__, path)

    @staticmethod
    def load(path: str | Path) -> ShapesDataset:
        return ShapesDataset(**torch.load(path, weights_only=True))


def generate(
    n: int,
    resolution: int = 32,
    seed: int = 0,
    chunk: int = 512,
    supersample: int = 2,
    progress: bool = False,
) -> ShapesDataset:
    """``n`` renders of uniformly drawn shapes, colours and training views (deterministic in ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    shape_idx = torch.randint(len(SHAPE_NAMES), (n,), generator=g)
    colour_idx = torch.randint(len(COLOUR_NAMES), (n,), generator=g)
    cams = CameraSampler().sample(n, generator=g)
    images = torch.empty(n, 3, resolution, resolution, dtype=torch.uint8)
    starts = range(0, n, chunk)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="rendering Shapes World", unit="chunk")
    for s in starts:
        sl = slice(s, min(n, s + chunk))
        img = render(shape_idx[sl], colour_idx[sl], cams[sl], resolution, supersample)
        images[sl] = (img * 255).round().to(torch.uint8)
    return ShapesDataset(images, shape_idx, colour_idx, cams.azimuth, cams.elevation)
