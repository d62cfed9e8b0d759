"""Section 6 of the design's math note, reproduced through uni3d's own loss code.

1-D, one time step (a_t = 0.8, s_t = 0.6), teacher p_0 = N(0, 1), generator
x0 = theta + (0.7 + 0.5 theta) z at theta = 0.5, so dx0/dtheta varies with z. All densities,
scores and ratios are Gaussian and exact. The expected gradient of the tractable Uni-Instruct loss
must equal d/dtheta of L(theta) = E_{q_t}[h(r) (s_q - s_p)^2] (finite differences).
"""

import math

import numpy as np
import pytest
import torch

from uni3d.guidance.divergences import f_generator
from uni3d.guidance.losses import UniInstructTerms, uni_instruct_loss

A, S, THETA = 0.8, 0.6, 0.5
TABLE = {  # divergence: (finite difference, with cross term, without cross term)
    "rkl": (0.556379, 0.556379, 0.556379),
    "fkl": (0.399915, 0.399915, 0.520812),
    "neyman": (0.589674, 0.589674, 1.256429),
    "pearson": (1.741530, 1.741530, 1.521477),
    "js": (0.226088, 0.226088, 0.251712),
    "hellinger": (0.232516, 0.232516, 0.260261),
}


class GaussianTeacher(torch.nn.Module):
    """Exact noise prediction of p_0 = N(0, 1) diffused: eps(x_t) = s_t x_t / (a_t^2 + s_t^2)."""

    def forward(self, x_t):
        return S * x_t / (A**2 + S**2)

    def log_density(self, x_t):
        var = A**2 + S**2
        return -0.5 * x_t**2 / var - 0.5 * math.log(2 * math.pi * var)


class GaussianFakeScore(torch.nn.Module):
    """Exact noise prediction of the generator's own q_t, with its parameters frozen at theta."""

    def __init__(self, theta: float, jac: float = 0.5):
        super().__init__()
        self.mean, self.var = A * theta, A**2 * (0.7 + jac * theta) ** 2 + S**2

    def forward(self, x_t):
        return S * (x_t - self.mean) / self.var

    def log_density(self, x_t):
        return -0.5 * (x_t - self.mean) ** 2 / self.var - 0.5 * math.log(2 * math.pi * self.var)


def _nodes(n=48):
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    z, e = np.meshgrid(x, x, indexing="ij")
    ww = np.outer(w, w)
    return (torch.tensor(z.ravel(), dtype=torch.float64), torch.tensor(e.ravel(), dtype=torch.float64),
            torch.tensor(ww.ravel(), dtype=torch.float64))


def tractable_gradient(divergence: str, cross: bool, jac: float = 0.5) -> float:
    z, eps, weights = _nodes()
    theta = torch.tensor(THETA, dtype=torch.float64, requires_grad=True)
    x0 = (theta + (0.7 + jac * theta) * z).unsqueeze(1)
    eps = eps.unsqueeze(1)
    x_t = A * x0 + S * eps
    teacher, fake = GaussianTeacher(), GaussianFakeScore(THETA, jac)
    rho = torch.exp(teacher.log_density(x_t) - fake.log_density(x_t)).squeeze(1)
    a_t = torch.full((len(z),), A, dtype=torch.float64)
    s_t = torch.full((len(z),), S, dtype=torch.float64)
    per_sample = uni_instruct_loss(x0, eps, teacher(x_t), fake(x_t), a_t, s_t, rho, divergence,
                                   terms=UniInstructTerms(cross=cross))
    (grad,) = torch.autograd.grad((weights * per_sample).sum(), theta)
    return grad.item()


def objective(divergence: str, theta: float, jac: float = 0.5) -> float:
    """L(theta) = E_{q_t}[h(r) (s_q - s_p)^2], with h(r) = r f''(r) from f itself (autograd)."""
    x, w = np.polynomial.hermite_e.hermegauss(200)
    w = torch.tensor(w / w.sum(), dtype=torch.float64)
    fake = GaussianFakeScore(theta, jac)
    x_t = fake.mean + math.sqrt(fake.var) * torch.tensor(x, dtype=torch.float64)
    r = torch.exp(fake.log_density(x_t) - GaussianTeacher().log_density(x_t)).requires_grad_(True)
    f = f_generator(divergence)
    (f1,) = torch.autograd.grad(f(r).sum(), r, create_graph=True)
    (f2,) = torch.autograd.grad(f1.sum(), r)
    score_gap = (GaussianTeacher()(x_t) - fake(x_t)) / S  # s_q - s_p = (eps_T - eps_F) / s_t
    return float((w * r.detach() * f2 * score_gap.detach() ** 2).sum())


@pytest.mark.parametrize("divergence", list(TABLE))
def test_finite_difference_column(divergence):
    d = 1e-4
    fd = (objective(divergence, THETA + d) - objective(divergence, THETA - d)) / (2 * d)
    assert fd == pytest.approx(TABLE[divergence][0], rel=1e-5)


@pytest.mark.parametrize("divergence", list(TABLE))
def test_tractable_loss_with_cross_term(divergence):
    assert tractable_gradient(divergence, cross=True) == pytest.approx(TABLE[divergence][1], rel=1e-5)


@pytest.mark.parametrize("divergence", list(TABLE))
def test_tractable_loss_without_cross_term(divergence):
    assert tractable_gradient(divergence, cross=False) == pytest.approx(TABLE[divergence][2], rel=1e-5)


@pytest.mark.parametrize("divergence", list(TABLE))
def test_constant_jacobian_all_columns_agree(divergence):
    """With x0 = theta + 0.7 z (dx0/dtheta constant) the cross term's contribution vanishes."""
    d = 1e-4
    fd = (objective(divergence, THETA + d, jac=0.0) - objective(divergence, THETA - d, jac=0.0)) / (2 * d)
    with_cross = tractable_gradient(divergence, cross=True, jac=0.0)
    without = tractable_gradient(divergence, cross=False, jac=0.0)
    assert with_cross == pytest.approx(fd, rel=1e-5)
    assert without == pytest.approx(fd, rel=1e-5)
