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


def tractable_gradient(divergence: str, cross: bool, jac: float = 0.5, centred: bool = False,
                       fake_theta: float = THETA, rho_one: bool = False) -> float:
    z, eps, weights = _nodes()
    theta = torch.tensor(THETA, dtype=torch.float64, requires_grad=True)
    x0 = (theta + (0.7 + jac * theta) * z).unsqueeze(1)
    # E_z[x0] = theta, with its gradient: the generator's mean over its own randomness z
    x0_mean = (theta + (0.7 + jac * theta) * torch.zeros_like(z)).unsqueeze(1) if centred else None
    eps = eps.unsqueeze(1)
    x_t = A * x0 + S * eps
    teacher, fake = GaussianTeacher(), GaussianFakeScore(fake_theta, jac)
    rho = torch.exp(teacher.log_density(x_t) - fake.log_density(x_t)).squeeze(1)
    if rho_one:
        rho = torch.ones_like(rho)
    a_t = torch.full((len(z),), A, dtype=torch.float64)
    s_t = torch.full((len(z),), S, dtype=torch.float64)
    per_sample = uni_instruct_loss(x0, eps, teacher(x_t), fake(x_t), a_t, s_t, rho, divergence,
                                   terms=UniInstructTerms(cross=cross), x0_mean=x0_mean)
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


@pytest.mark.parametrize("divergence", list(TABLE))
def test_centred_cross_term_keeps_the_gradient(divergence):
    """The cross term with its Jacobian centred on E_z[dx0/dtheta] has the same expectation as the
    uncentred one (the table's middle column), under the exact fake score."""
    assert tractable_gradient(divergence, cross=True, centred=True) == pytest.approx(TABLE[divergence][1], rel=1e-5)


def test_centred_cross_term_of_a_deterministic_generator_is_zero():
    """x0_mean = x0 (nothing random beyond the fake score's conditioning): the cross term adds nothing."""
    torch.manual_seed(0)
    x0 = torch.randn(3, 3, 4, 4, requires_grad=True)
    eps, eps_T, eps_F = torch.randn_like(x0), torch.randn_like(x0), torch.randn_like(x0)
    a, s = torch.full((3, 1, 1, 1), 0.8), torch.full((3, 1, 1, 1), 0.6)
    only_cross = UniInstructTerms(sim=False, fgm=False, di=False, cross=True)
    uncentred = uni_instruct_loss(x0, eps, eps_T, eps_F, a, s, torch.ones(3), "fkl", terms=only_cross)
    centred = uni_instruct_loss(x0, eps, eps_T, eps_F, a, s, torch.ones(3), "fkl", terms=only_cross, x0_mean=x0)
    assert uncentred.abs().sum() > 0
    (g,) = torch.autograd.grad(centred.sum(), x0)
    assert torch.count_nonzero(g) == 0


def test_centring_removes_the_mean_jacobian_part_of_a_lagging_fake_score():
    """A fake score that lags behind the generator (exact for theta = 0) makes E[c d] non-zero; centring
    removes exactly E[c d] dE[x0]/dtheta (= E[c d] here), the part that drives a mean shift."""
    z, eps, weights = _nodes()
    x0 = THETA + 0.7 * z + 0.5 * THETA * z
    x_t = A * x0 + S * eps
    teacher, fake = GaussianTeacher(), GaussianFakeScore(0.0)
    d_eps = teacher(x_t) - fake(x_t)
    c = 2 * (0.0 - 1.0) * d_eps * (fake(x_t) - eps) / S**2 * (A / S)  # fkl at rho = 1: 2 (H' - h) = -2
    mean_part = float((weights * c * d_eps).sum())
    assert abs(mean_part) > 1e-2
    gap = tractable_gradient("fkl", True, fake_theta=0.0, rho_one=True) - tractable_gradient(
        "fkl", True, centred=True, fake_theta=0.0, rho_one=True)
    assert gap == pytest.approx(mean_part, rel=1e-6)
