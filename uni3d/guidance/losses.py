"""Score-distillation losses as pure functions: tensors in, loss out, no state.

Notation (docs/MATH.md): ``x_t = a_t x0 + s_t eps``; ``eps_T`` the teacher's (CFG-guided) noise
prediction, ``eps_F`` the fake score's, ``d_eps = eps_T - eps_F``; ``rho = p_t / q_t``; ``w`` the
time weighting. Every tensor argument is batched along dim 0; ``a_t``, ``s_t``, ``w`` and
``rho`` broadcast against ``x0`` (shape (B, 1, 1, 1) or (B, ...)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from uni3d.guidance.divergences import f_weights


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product over all but the batch dimension: (B,)."""
    return (a * b).flatten(1).sum(-1)


def _per_sample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar, (B,) or (B, 1, ..., 1) tensor as (B,)."""
    x = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    if x.dim() == 0:
        return x.expand(like.shape[0])
    if x.numel() == 1:
        return x.reshape(1).expand(like.shape[0])
    return x.reshape(x.shape[0], -1)[:, 0].expand(like.shape[0])


def surrogate_loss(x0: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``0.5 * ||x0 - sg(x0 - g)||^2 / B``, whose gradient with respect to ``x0`` is exactly ``g / B``."""
    target = (x0 - grad).detach()
    return 0.5 * (x0 - target).pow(2).flatten(1).sum(-1).mean()


def sds_grad(eps_T: torch.Tensor, eps: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Score Distillation Sampling (DreamFusion, Poole et al. 2022, eq. 3): ``w(t) (eps_T - eps)``.

    The injected noise ``eps`` stands in for the student's score.
    """
    return w * (eps_T - eps)


def vsd_grad(eps_T: torch.Tensor, eps_F: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Variational Score Distillation (ProlificDreamer, Wang et al. 2023, eq. 9): ``w(t) (eps_T - eps_F)``."""
    return w * (eps_T - eps_F)


@dataclass(frozen=True)
class UniInstructTerms:
    """Which terms of the Uni-Instruct loss are on (all by default)."""

    sim: bool = True
    """Score-implicit-matching term, pathwise through both networks."""
    fgm: bool = True
    """Fisher-gradient-matching term, pathwise through both networks."""
    di: bool = True
    """Diff-Instruct (VSD-direction) term, Jacobian-free."""
    cross: bool = True
    """Cross term, Jacobian-free; dropping it biases the gradient when dx0/dtheta varies by sample."""


def uni_instruct_loss(
    x0: torch.Tensor,
    eps: torch.Tensor,
    eps_T: torch.Tensor,
    eps_F: torch.Tensor,
    a_t: torch.Tensor,
    s_t: torch.Tensor,
    rho: torch.Tensor,
    divergence: str = "fkl",
    alpha: float | None = None,
    w: torch.Tensor | float = 1.0,
    terms: UniInstructTerms = UniInstructTerms(),
    x0_mean: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample Uni-Instruct loss (B,) for an f-divergence expanded over diffusion time.

    Its expected gradient in the generator's parameters equals that of
    ``E_{q_t}[ w(t) h(r) ||s_q - s_p||^2 ]`` (Uni-Instruct, Wang et al. NeurIPS 2025, the
    tractable form of the expanded divergence; docs/MATH.md section 3)::

        L = w [ 2 h <d_eps, eps_F - eps> / s^2                          (SIM, pathwise)
              + H' ||d_eps||^2 / s^2                                     (FGM, pathwise)
              + < sg(r H'' ||d_eps||^2 / s^2 * (a/s) d_eps), x0 >        (DI)
              + < sg(2 (H' - h) <d_eps, eps_F - eps> / s^2 * (a/s) d_eps), x0 > ]  (cross)

    Args:
        x0: (B, ...) the student's sample in the teacher's space, carrying the generator's gradient.
        eps: the injected noise of ``x_t = a_t x0 + s_t eps``.
        eps_T, eps_F: teacher and fake-score predictions at ``x_t``, computed *with* the gradient
            flowing through ``x_t`` (network weights frozen for this loss) for the SIM and FGM terms.
        a_t, s_t: the noise table at each sample's ``t``.
        rho: estimated ``p_t / q_t`` per sample (detached here).
        divergence, alpha: see ``f_weights``.
        w: time weighting ``w(t)``.
        terms: which of the four terms to include.
        x0_mean: the generator's mean output over its own randomness, for each sample's conditioning,
            carrying the gradient (``x0`` itself for a generator that is deterministic given what the
            fake score is conditioned on). Given, the cross term is paired with ``x0 - x0_mean``
            instead of ``x0``, i.e. its Jacobian is centred on its mean. Under an exact fake score the
            subtracted part has zero mean (``E[eps | x_t] = eps_F`` makes the coefficient's conditional
            mean vanish), so the expected gradient is unchanged, while the fake score's error, which the
            coefficient sums over every dimension, no longer reaches ``x0`` through the mean Jacobian.
            None: the uncentred term as written above.
    """
    rho = rho.detach()
    h, H1, rH2 = (_per_sample(v, x0) for v in f_weights(divergence, rho, alpha))
    s = _per_sample(s_t, x0)
    a_over_s = _per_sample(a_t, x0) / s
    d_eps = eps_T - eps_F
    sim_inner = _dot(d_eps, eps_F - eps) / s**2  # <d_eps, eps_F - eps> / s^2, pathwise
    sq = _dot(d_eps, d_eps) / s**2  # ||d_eps||^2 / s^2, pathwise
    view = (-1,) + (1,) * (x0.dim() - 1)
    loss = torch.zeros_like(s)
    if terms.sim:
        loss = loss + 2 * h * sim_inner
    if terms.fgm:
        loss = loss + H1 * sq
    if terms.di:
        loss = loss + _dot((rH2 * sq * a_over_s).detach().view(view) * d_eps.detach(), x0)
    if terms.cross:
        coef = (2 * (H1 - h) * sim_inner * a_over_s).detach().view(view)
        loss = loss + _dot(coef * d_eps.detach(), x0 if x0_mean is None else x0 - x0_mean)
    return _per_sample(w, x0) * loss
