"""Draw images from any Teacher with its own DDIM sampler and classifier-free guidance."""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler

from uni3d.cameras import Cameras
from uni3d.teachers.base import Teacher


@torch.no_grad()
def sample(
    teacher: Teacher,
    prompt: str,
    n: int,
    cams: Cameras | None = None,
    cfg_scale: float = 4.0,
    steps: int = 30,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` images (n, 3, H, W) in [0, 1] for ``prompt`` seen from ``cams`` (None: no camera input).

    DDIM (eta 0) over ``steps`` steps of the teacher's own noise table.
    """
    if cams is not None and len(cams) != n:
        raise ValueError(f"need {n} cameras, got {len(cams)}")
    sched = DDIMScheduler.from_config(teacher.scheduler_config, clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(steps)
    cond = teacher.condition(prompt, cams, batch=n)
    shape = teacher.encode(torch.zeros(1, 3, teacher.resolution, teacher.resolution)).shape[1:]
    x = torch.randn((n, *shape), generator=generator)
    for t in sched.timesteps:
        tt = torch.full((n,), int(t), dtype=torch.long)
        eps = teacher.eps(x, tt, cond, cfg_scale)
        x = sched.step(eps, t, x).prev_sample
    return teacher.decode(x)


def image_grid(images: torch.Tensor, cols: int | None = None, pad: int = 1) -> torch.Tensor:
    """Tile (N, 3, H, W) images on white into one (3, H', W') image."""
    n, c, h, w = images.shape
    cols = cols or min(n, 8)
    rows = (n + cols - 1) // cols
    grid = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = images[i]
    return grid
