"""Position encodings of the NeRF: multi-resolution dense grids (pure torch) or a tinycudann hash grid."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CPU_SPLIT = 2
"""Batches the points of a CPU grid lookup are split into: torch's CPU 3D grid sampler runs its batches in
parallel and the points of one batch on one thread, so one batch leaves the second core idle (measured on 2
cores: a lookup's forward about 2x faster, forward and backward about 1.5x). Fixed, not the thread count, so a
seeded run gives the same numbers on any machine."""


def trilinear(grid: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup of a grid (1, C, D, H, W) at points (N, 3) in [-1, 1] (x -> W, y -> H, z -> D; corners
    aligned, clamped at the border) -> (N, C)."""
    n, c = coords.shape[0], grid.shape[1]
    k = CPU_SPLIT if grid.device.type == "cpu" and n >= 2 * CPU_SPLIT else 1
    if n % k:
        coords = torch.cat([coords, coords.new_zeros(k - n % k, 3)])
    out = F.grid_sample(grid.expand(k, -1, -1, -1, -1), coords.view(k, -1, 1, 1, 3), mode="bilinear",
                        align_corners=True, padding_mode="border")  # (k, C, N / k, 1, 1)
    return out.view(k, c, -1).transpose(1, 2).reshape(-1, c)[:n]


class DenseGridEncoding(nn.Module):
    """Features trilinearly interpolated from dense grids at several resolutions, concatenated."""

    def __init__(self, levels: tuple[int, ...], bound: float, features: int = 4, generator: torch.Generator | None = None):
        super().__init__()
        self.bound = bound
        self.grids = nn.ParameterList(
            [nn.Parameter(1e-2 * torch.randn(1, features, r, r, r, generator=generator)) for r in levels]
        )
        self.out_dim = features * len(levels)

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        coords = xyz / self.bound
        return torch.cat([trilinear(g, coords) for g in self.grids], dim=1)


class TcnnHashGridEncoding(nn.Module):  # pragma: no cover - needs CUDA and tinycudann
    """instant-NGP hash grid from tinycudann (CUDA only); same interface as DenseGridEncoding."""

    def __init__(self, levels: tuple[int, ...], bound: float):
        super().__init__()
        import tinycudann as tcnn

        n_levels, base, finest = 16, max(8, levels[0]), max(levels) * 8
        self.bound = bound
        self.encoding = tcnn.Encoding(3, {
            "otype": "HashGrid", "n_levels": n_levels, "n_features_per_level": 2, "log2_hashmap_size": 19,
            "base_resolution": base, "per_level_scale": math.exp(math.log(finest / base) / (n_levels - 1)),
        })
        self.out_dim = self.encoding.n_output_dims

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        return self.encoding(((xyz / self.bound + 1) / 2).clamp(0, 1)).float()


def cuda_extension_available(module: str, device: torch.device) -> bool:
    """Whether an optional CUDA accelerator (``tinycudann``, ``gsplat``) can run on ``device``."""
    if device.type != "cuda":
        return False
    import importlib.util

    return importlib.util.find_spec(module) is not None


def make_encoding(levels: tuple[int, ...], bound: float, mode: str, device: torch.device,
                  generator: torch.Generator | None = None) -> nn.Module:
    """The hash grid where it can run (``mode="auto"``, CUDA, tinycudann importable), dense grids otherwise."""
    if mode == "auto" and cuda_extension_available("tinycudann", device):
        return TcnnHashGridEncoding(levels, bound)  # pragma: no cover
    return DenseGridEncoding(levels, bound, generator=generator)
