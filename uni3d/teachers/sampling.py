"""Draw images from any Teacher with classifier-free guidance: ancestral DDPM (default) or DDIM.

The default is the stochastic DDPM sampler with the predicted ``x0`` clipped to the teacher's range
(``Teacher.x0_range``; pixel teachers only). Measured on the shapes teacher (``docs/TEACHER.md``):
the deterministic DDIM sampler carries the small errors of the noise prediction at low noise into
the image as a 2x2 texture and tinted backgrounds, and more DDIM steps make it worse; the
ancestral sampler's fresh noise and the clipping of ``x0`` wash them out.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from uni3d.cameras import Cameras
from uni3d.teachers.base import Teacher

SAMPLERS = ("ddpm", "ddim")
"""Sampler names: ``ddpm`` (ancestral, x0 clipped where the teacher has a range), ``ddim`` (eta 0, no clipping)."""


def make_scheduler(teacher: Teacher, sampler: str, steps: int):
    """The diffusers scheduler of ``sampler`` on the teacher's own noise table, set to ``steps`` steps."""
    if sampler == "ddpm":
        clip = teacher.x0_range is not None
        sched = DDPMScheduler.from_config(teacher.scheduler_config, clip_sample=clip,
                                          clip_sample_range=teacher.x0_range or 1.0, variance_type="fixed_small")
    elif sampler == "ddim":
        sched = DDIMScheduler.from_config(teacher.scheduler_config, clip_sample=False, set_alpha_to_one=True)
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    sched.set_timesteps(steps)
    return sched


@torch.no_grad()
def sample(
    teacher: Teacher,
    prompt: str,
    n: int,
    cams: Cameras | None = None,
    cfg_scale: float = 4.0,
    steps: int = 50,
    generator: torch.Generator | None = None,
    sampler: str = "ddpm",
) -> torch.Tensor:
    """``n`` images (n, 3, H, W) in [0, 1] for ``prompt`` seen from ``cams`` (None: no camera input).

    ``steps`` steps of ``sampler`` (see ``SAMPLERS``) over the teacher's own noise table; all
    randomness (initial noise, ancestral noise) comes from ``generator``.
    """
    if cams is not None and len(cams) != n:
        raise ValueError(f"need {n} cameras, got {len(cams)}")
    sched = make_scheduler(teacher, sampler, steps)
    cond = teacher.condition(prompt, cams, batch=n)
    shape = teacher.encode(torch.zeros(1, 3, teacher.resolution, teacher.resolution, device=teacher.device)).shape[1:]
    x = torch.randn((n, *shape), generator=generator).to(teacher.device)
    for t in sched.timesteps:
        tt = torch.full((n,), int(t), dtype=torch.long, device=teacher.device)
        eps = teacher.eps(x, tt, cond, cfg_scale)
        x = sched.step(eps, t, x, generator=generator).prev_sample  # DDIM at eta 0 draws no noise
    return teacher.decode(x).cpu()


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
