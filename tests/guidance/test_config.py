"""Guidance settings: the time weighting, and why Uni-Instruct defaults to SiD's."""

import pytest
import torch

from uni3d.guidance.config import GuidanceConfig
from uni3d.guidance.losses import UniInstructTerms, uni_instruct_loss


def test_weightings():
    a, s = torch.tensor([0.8]), torch.tensor([0.6])
    assert GuidanceConfig(weighting="s2").weight(a, s).item() == pytest.approx(0.36)
    assert GuidanceConfig(weighting="one").weight(a, s).item() == 1.0
    assert GuidanceConfig(weighting="sid").weight(a, s).item() == pytest.approx(0.6**4 / 0.8**2)
    assert GuidanceConfig(method="uni-instruct").weight(a, s).item() == pytest.approx(0.6**4 / 0.8**2)
    assert GuidanceConfig(method="vsd").weight(a, s).item() == pytest.approx(0.36)


def _normalised_sim_gradient(weighting: str, abar: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-KL SIM gradient on x0 with an exact fake score for a point mass at x0 (eps_F = eps), normalised
    per sample as the trainer does; returns it with the teacher's direction d = eps_T - eps."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 3, 4, 4, generator=g).requires_grad_(True)
    eps = torch.randn(x0.shape, generator=g)
    a, s = torch.tensor(abar).sqrt().view(1, 1, 1, 1), torch.tensor(1 - abar).sqrt().view(1, 1, 1, 1)
    x_t = a * x0 + s * eps
    eps_T = 0.3 * x_t + 0.1  # any teacher; its Jacobian meets e = eps_F - eps = 0 only
    eps_F = (x_t - a * x0.detach()) / s
    w = GuidanceConfig(method="uni-instruct", weighting=weighting).weight(a, s)
    loss = uni_instruct_loss(x0, eps, eps_T, eps_F, a, s, torch.ones(1), "fkl", w=w, terms=UniInstructTerms(cross=False))
    x0_hat = (x_t.detach() - s * eps_T.detach()) / a
    (loss / (x0.detach() - x0_hat).abs().mean()).sum().backward()
    return x0.grad, (eps_T - eps).detach()


def test_sid_weighting_weighs_every_noise_level_alike():
    """With an exact fake score the forward-KL SIM gradient is the teacher direction d; normalised, SiD's weighting
    gives it the same scale at every t (2 d / mean|d|), while s2 scales it by the SNR a^2 / s^2."""
    for abar in (0.9, 0.5, 0.05):
        grad, d = _normalised_sim_gradient("sid", abar)
        assert torch.allclose(grad, 2 * d / d.abs().mean(), rtol=1e-4, atol=1e-5)
        grad, d = _normalised_sim_gradient("s2", abar)
        assert torch.allclose(grad, 2 * abar / (1 - abar) * d / d.abs().mean(), rtol=1e-4, atol=1e-5)
