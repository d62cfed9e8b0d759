"""The f-divergence weights of Uni-Instruct (Wang et al., NeurIPS 2025, arXiv 2505.20755).

For a convex ``f`` with ``f(1) = 0`` and ``r = q_t / p_t`` (student over teacher), the expanded
divergence weighs the score difference with ``h(r) = r f''(r)``; its gradient also involves
``H(r) = r^2 f''(r)`` through ``H'(r)`` and ``r H''(r)``. Everything is written in
``rho = 1 / r = p_t / q_t``, the quantity the discriminator estimates.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

DIVERGENCES = ("rkl", "fkl", "jeffreys", "js", "neyman", "pearson", "hellinger", "alpha")
"""Names accepted by ``f_weights`` and by the CLI's ``--divergence``."""

DIVERGENCE_TITLES = {
    "rkl": "reverse KL, KL(q||p)",
    "fkl": "forward KL, KL(p||q)",
    "jeffreys": "Jeffreys (KL(q||p) + KL(p||q))",
    "js": "Jensen-Shannon (x2)",
    "neyman": "Neyman chi-square",
    "pearson": "Pearson chi-square",
    "hellinger": "squared Hellinger",
    "alpha": "alpha divergence",
}


def f_generator(divergence: str, alpha: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The convex function ``f(r)`` of a divergence, with ``D_f(q||p) = E_p[f(q/p)]``."""
    _check(divergence, alpha)
    fns: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "rkl": lambda r: r * torch.log(r),
        "fkl": lambda r: -torch.log(r),
        "jeffreys": lambda r: (r - 1) * torch.log(r),
        "js": lambda r: r * torch.log(r) - (1 + r) * torch.log((1 + r) / 2),
        "neyman": lambda r: (1 - r) ** 2 / r,
        "pearson": lambda r: (r - 1) ** 2,
        "hellinger": lambda r: (torch.sqrt(r) - 1) ** 2,
    }
    if divergence == "alpha":
        a = float(alpha)  # type: ignore[arg-type]
        return lambda r: (r**a - 1 - a * (r - 1)) / (a * (a - 1))
    return fns[divergence]


def f_weights(
    divergence: str, rho: torch.Tensor, alpha: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three weight columns ``(h, H', r H'')`` of a divergence at density ratio ``rho = p/q``.

    Args:
        divergence: one of ``DIVERGENCES``.
        rho: teacher-over-student density ratio ``p_t / q_t`` (any shape, positive).
        alpha: the exponent of the ``alpha`` family (required there, not allowed elsewhere; not 0 or 1).

    Returns:
        ``(h, H_prime, r_H_second)``, tensors shaped like ``rho``: the SIM weight ``h(r) = r f''(r)``,
        the FGM weight ``H'(r)`` and the DI weight ``r H''(r)`` of ``H(r) = r^2 f''(r)``.
    """
    _check(divergence, alpha)
    one, zero = torch.ones_like(rho), torch.zeros_like(rho)
    if divergence == "rkl":
        return one, one, zero
    if divergence == "fkl":
        return rho, zero, zero
    if divergence == "jeffreys":
        return 1 + rho, one, zero
    if divergence == "js":
        return rho / (1 + rho), rho**2 / (1 + rho) ** 2, -2 * rho**2 / (1 + rho) ** 3
    if divergence == "neyman":
        return 2 * rho**2, -2 * rho**2, 4 * rho**2
    if divergence == "pearson":
        return 2 / rho, 4 / rho, 4 / rho
    if divergence == "hellinger":
        s = torch.sqrt(rho)
        return s / 2, s / 4, -s / 8
    a = float(alpha)  # type: ignore[arg-type]
    p = rho ** (1 - a)
    return p, a * p, a * (a - 1) * p


def _check(divergence: str, alpha: float | None) -> None:
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; choose one of {', '.join(DIVERGENCES)}")
    if divergence == "alpha":
        if alpha is None or not math.isfinite(alpha) or alpha in (0.0, 1.0):
            raise ValueError("the alpha divergence needs --alpha, a finite number other than 0 and 1")
    elif alpha is not None:
        raise ValueError(f"--alpha applies to the alpha divergence only, not {divergence!r}")
