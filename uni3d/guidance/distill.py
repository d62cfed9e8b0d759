"""From a rendered view in the teacher's space to its guidance loss: the two scores, then a formula.

Shared by the 2D mode and the 3D trainer, so every method sees the same teacher passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from uni3d.guidance.config import GuidanceConfig
from uni3d.guidance.losses import UniInstructTerms, sds_grad, surrogate_loss, uni_instruct_loss, vsd_grad
from uni3d.teachers.base import Conditioning, Teacher
from uni3d.teachers.fake_score import FakeScore


@dataclass
class GuidanceResult:
    """The guidance loss of a batch and what to log about it."""

    loss: torch.Tensor
    t: torch.Tensor
    stats: dict[str, float] = field(default_factory=dict)


def _clip_per_sample(max_norm: float):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        norm = grad.flatten(1).norm(dim=-1).clamp(min=1e-12)
        scale = (max_norm / norm).clamp(max=1.0).view(-1, *([1] * (grad.dim() - 1)))
        return grad * scale
    return hook


def ratio_weights(cfg: GuidanceConfig, fake: FakeScore, logit: torch.Tensor) -> torch.Tensor:
    """``rho`` from the discriminator's logits: ``exp(logit)``, or over its running mean with ``--ratio-normalise``;
    either way ``log rho`` is clamped to ``[-ratio_clamp, ratio_clamp]``."""
    if cfg.ratio_normalise > 0:
        rho = fake.ratio_head.self_normalise(torch.exp(logit.clamp(-60, 60)), cfg.ratio_normalise)  # float32-safe
        return rho.clamp(math.exp(-cfg.ratio_clamp), math.exp(cfg.ratio_clamp))
    return torch.exp(logit.clamp(-cfg.ratio_clamp, cfg.ratio_clamp))


def repeat_for_draws(x0: torch.Tensor, cond: Conditioning, k: int) -> tuple[torch.Tensor, Conditioning]:
    """Every view (and its conditioning) ``k`` times, draw after draw: the batch the guidance passes with
    ``noise_draws = k``; the copies keep ``x0``'s gradient."""
    return x0.repeat(k, *[1] * (x0.dim() - 1)), Conditioning.cat([cond] * k)


def draw_noise(cfg: GuidanceConfig, teacher: Teacher, x0: torch.Tensor, step: int,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The diffusion times ``t`` and noises ``eps`` of a guidance step on ``x0`` (B, ...): ``cfg.noise_draws``
    per view, the draws of one view ``B`` apart (``repeat_for_draws``' order)."""
    b = x0.shape[0] * cfg.noise_draws
    t = cfg.sample_t(b, step, teacher.num_train_timesteps, generator).to(x0.device)
    eps = torch.randn((b, *x0.shape[1:]), generator=generator).to(x0)
    return t, eps


def guidance_loss(
    cfg: GuidanceConfig,
    teacher: Teacher,
    fake: FakeScore | None,
    x0: torch.Tensor,
    cond: Conditioning,
    step: int,
    generator: torch.Generator | None = None,
    noise: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> GuidanceResult:
    """The guidance loss of ``x0`` (B, ...) in the teacher's space; its gradient reaches ``x0`` only.

    SDS and VSD run both networks without gradient and apply their gradient through the surrogate
    loss; Uni-Instruct's SIM and FGM terms differentiate through both networks (weights frozen).
    ``noise``: ``draw_noise``'s ``(t, eps)``, drawn beforehand; by default drawn here from ``generator``.
    """
    t, eps = noise if noise is not None else draw_noise(cfg, teacher, x0, step, generator)
    if cfg.noise_draws > 1:  # the mean loss over the copies averages the draws' gradients
        x0, cond = repeat_for_draws(x0, cond, cfg.noise_draws)
    b = x0.shape[0]
    a_t, s_t = (v.to(x0) for v in teacher.a_s(t))
    w = cfg.weight(a_t, s_t)
    if cfg.grad_clip > 0 and x0.requires_grad:
        x0.register_hook(_clip_per_sample(cfg.grad_clip))
    stats: dict[str, float] = {}
    if cfg.method in ("sds", "vsd"):
        with torch.no_grad():
            x_t = teacher.add_noise(x0.detach(), t, eps)
            eps_T = teacher.eps(x_t, t, cond, cfg.cfg_scale)
            if cfg.method == "sds":
                g = sds_grad(eps_T, eps, w)
            else:
                assert fake is not None, "VSD needs a fake score"
                eps_F, _ = fake.eps(x_t, t, cond)
                g = vsd_grad(eps_T, eps_F, w)
        loss = surrogate_loss(x0, g)
        stats["grad_norm"] = g.flatten(1).norm(dim=-1).mean().item()
        return GuidanceResult(cfg.loss_scale * loss, t, stats)

    assert fake is not None, "Uni-Instruct needs a fake score"
    terms = UniInstructTerms(cfg.sim, cfg.fgm, cfg.di, cfg.cross)
    pathwise = cfg.sim or cfg.fgm or cfg.gan_weight > 0
    x_t = teacher.add_noise(x0 if pathwise else x0.detach(), t, eps)
    with fake.frozen(), torch.set_grad_enabled(pathwise and torch.is_grad_enabled()):
        eps_T = teacher.eps(x_t, t, cond, cfg.cfg_scale)
        eps_F, logit = fake.eps(x_t, t, cond)
    if step < cfg.ratio_warmup:
        rho = torch.ones(b, device=x0.device, dtype=x0.dtype)
    else:
        rho = ratio_weights(cfg, fake, logit.detach()).to(x0)
    # Every scene renders one image per camera, and the fake score sees the camera: the generator's mean over
    # its own randomness is the render itself, so the centred cross term vanishes (losses.uni_instruct_loss).
    x0_mean = x0 if cfg.cross_centred else None
    per_sample = uni_instruct_loss(x0, eps, eps_T, eps_F, a_t, s_t, rho, cfg.divergence, cfg.alpha, w, terms, x0_mean)
    if cfg.normalise:
        x0_hat = (x_t.detach() - s_t * eps_T.detach()) / a_t
        per_sample = per_sample / (x0.detach() - x0_hat).abs().flatten(1).mean(-1).clamp(min=1e-4)
    loss = per_sample.mean()
    if cfg.gan_weight > 0:
        loss = loss + cfg.gan_weight * F.softplus(-logit).mean()
    stats["rho_mean"] = rho.mean().item()
    stats["logit_mean"] = logit.detach().mean().item()
    return GuidanceResult(cfg.loss_scale * loss, t, stats)
