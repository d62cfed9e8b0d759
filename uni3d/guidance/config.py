"""Typed configuration of a guidance method; every field docstring is its ``--help``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from uni3d.errors import UserError
from uni3d.guidance.divergences import DIVERGENCES

Method = Literal["sds", "vsd", "uni-instruct"]
METHODS = ("sds", "vsd", "uni-instruct")


@dataclass
class GuidanceConfig:
    """How a rendered view is turned into a gradient."""

    method: Method = "uni-instruct"
    """sds (DreamFusion), vsd (ProlificDreamer) or uni-instruct (an f-divergence, see --divergence)."""
    divergence: Literal["rkl", "fkl", "jeffreys", "js", "neyman", "pearson", "hellinger", "alpha"] = "fkl"
    """Uni-Instruct's divergence: rkl, fkl, jeffreys, js, neyman, pearson, hellinger or alpha."""
    alpha: float | None = None
    """Exponent of the alpha divergence (only with --divergence alpha)."""
    cfg_scale: float = 7.5
    """Classifier-free guidance scale of the teacher."""
    t_min: float = 0.02
    """Lowest diffusion time, as a fraction of the teacher's noise table."""
    t_max: float = 0.98
    """Highest diffusion time at the start of the run."""
    t_max_end: float = 0.98
    """Highest diffusion time after annealing (equal to t_max: no annealing)."""
    t_min_start: float | None = None
    """Lowest diffusion time at the start of the run, moving to t_min as t_max moves to t_max_end (large noise
    first: the object's shape is settled before its details); None: t_min throughout."""
    anneal_start: int = 0
    """Step at which the time range starts moving (t_max to t_max_end, t_min_start to t_min)."""
    anneal_steps: int = 1
    """Steps over which it moves (linearly)."""
    noise_draws: int = 1
    """Diffusion times and noises drawn per rendered view, the view's gradient their mean: each render (the scene's
    side of the step) then serves that many teacher passes, and the gradient's variance falls by as much."""
    weighting: Literal["auto", "s2", "one", "sid"] = "auto"
    """Time weighting w(t): s2 = s_t^2 (= 1 - abar_t); one; sid = s_t^4 / a_t^2, the weighting of SiD's x-space
    loss, under which the normalised Uni-Instruct gradient weighs every t alike (under s2 it grows with the
    SNR, so the noisiest low-t predictions dominate); auto = sid for Uni-Instruct, s2 for SDS and VSD."""
    normalise: bool = True
    """Uni-Instruct: divide each sample's loss by mean|x0 - x0_hat_T| (stop-gradient), as DMD and SiD do."""
    sim: bool = True
    """Uni-Instruct: include the SIM term (pathwise)."""
    fgm: bool = True
    """Uni-Instruct: include the FGM term (pathwise)."""
    di: bool = True
    """Uni-Instruct: include the DI (VSD-direction) term."""
    cross: bool = True
    """Uni-Instruct: include the cross term (unbiased when dx0/dtheta varies by sample)."""
    cross_centred: bool = True
    """Uni-Instruct: pair the cross term with x0 minus the generator's mean over its own randomness (a control
    variate: same expected gradient under an exact fake score). Every uni3d scene is deterministic given the
    camera, which conditions the fake score, so the centred term is exactly zero there; --no-cross-centred
    keeps the paper's form, whose coefficient sums the fake score's error over every pixel of the view."""
    ratio_warmup: int = 150
    """Uni-Instruct: steps with rho = 1 before the discriminator's ratio is used."""
    ratio_clamp: float = 10.0
    """Clamp of log rho: of the discriminator logit, or with --ratio-normalise of the self-normalised weight's log
    (the weights then stay within exp(+-ratio_clamp) of their running mean)."""
    ratio_normalise: float = 0.0
    """Uni-Instruct: divide rho by its running mean over the renders, with this decay per step (0: off). The true
    ratio has mean 1 under the student; self-normalising undoes the estimate's drift below it."""
    ratio_samples: int = 32
    """Uni-Instruct: teacher samples drawn once per prompt (cached on disk) as the ratio's real data."""
    gan_weight: float = 0.0
    """Uni-Instruct: weight of the optional non-saturating GAN term on the renders."""
    loss_scale: float = 1.0
    """Multiplier of the guidance loss."""
    grad_clip: float = 0.0
    """Clip the norm of the per-sample gradient on x0 (0: off)."""

    def validate(self) -> GuidanceConfig:
        """Raise UserError with a one-line message for any invalid value."""
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.divergence not in DIVERGENCES:
            raise UserError(f"unknown divergence {self.divergence!r}; choose one of {', '.join(DIVERGENCES)}")
        if self.divergence == "alpha" and (self.alpha is None or not math.isfinite(self.alpha) or self.alpha in (0, 1)):
            raise UserError("--divergence alpha needs --alpha, a finite number other than 0 and 1")
        if self.divergence != "alpha" and self.alpha is not None:
            raise UserError("--alpha applies to --divergence alpha only")
        if not (0 <= self.t_min < self.t_max <= 1 and self.t_min < self.t_max_end <= 1):
            raise UserError("need 0 <= t_min < t_max <= 1 and t_min < t_max_end <= 1")
        if self.t_min_start is not None and not self.t_min <= self.t_min_start < self.t_max:
            raise UserError(f"need t_min <= t_min_start < t_max, got {self.t_min:g}, {self.t_min_start:g}, {self.t_max:g} "
                            "(a preset may set --t-min-start; --t-min-start None turns the annealing off)")
        if isinstance(self.noise_draws, bool) or not isinstance(self.noise_draws, int) or self.noise_draws < 1:
            raise UserError(f"--noise-draws must be a whole number >= 1, got {self.noise_draws!r}")
        for name in ("cfg_scale", "ratio_clamp", "anneal_steps", "ratio_samples"):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive")
        for name in ("gan_weight", "grad_clip", "ratio_warmup", "loss_scale"):
            if not getattr(self, name) >= 0:
                raise UserError(f"--{name.replace('_', '-')} must be >= 0")
        if not 0 <= self.ratio_normalise < 1:
            raise UserError("--ratio-normalise must be in [0, 1)")
        return self

    @property
    def needs_fake_score(self) -> bool:
        return self.method != "sds"

    def t_range(self, step: int) -> tuple[float, float]:
        """``(t_min(step), t_max(step))`` as fractions of the noise table."""
        frac = min(1.0, max(0.0, (step - self.anneal_start) / self.anneal_steps))
        lo = self.t_min if self.t_min_start is None else self.t_min_start + frac * (self.t_min - self.t_min_start)
        return lo, self.t_max + frac * (self.t_max_end - self.t_max)

    def sample_t(self, n: int, step: int, num_train_timesteps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Integer timesteps uniform in the current range."""
        lo, hi = self.t_range(step)
        lo_i, hi_i = int(lo * num_train_timesteps), min(num_train_timesteps - 1, int(hi * num_train_timesteps))
        return torch.randint(lo_i, max(lo_i, hi_i) + 1, (n,), generator=generator)

    def weight(self, a_t: torch.Tensor, s_t: torch.Tensor) -> torch.Tensor:
        """``w(t)`` from ``a_t`` and ``s_t`` (B, 1, 1, 1)."""
        kind = self.weighting if self.weighting != "auto" else ("sid" if self.method == "uni-instruct" else "s2")
        if kind == "one":
            return torch.ones_like(s_t)
        if kind == "sid":
            return s_t**4 / a_t.clamp(min=1e-3) ** 2
        return s_t**2
