"""How the discriminator's logits become Uni-Instruct's density-ratio weights."""

import math
from types import SimpleNamespace

import pytest
import torch

from uni3d.guidance.config import GuidanceConfig
from uni3d.guidance.distill import ratio_weights
from uni3d.teachers.fake_score import RatioHead


def test_raw_ratio_is_the_exponentiated_clamped_logit():
    cfg = GuidanceConfig(ratio_clamp=2.0)
    logit = torch.tensor([-5.0, -1.0, 0.5, 3.0])
    rho = ratio_weights(cfg, SimpleNamespace(ratio_head=RatioHead(4)), logit)
    assert torch.allclose(rho, torch.exp(torch.tensor([-2.0, -1.0, 0.5, 2.0])))


def test_self_normalised_weights_stay_within_the_clamp_of_their_running_mean():
    """Logits that sink to about -5 and swing by +-3 (a discriminator sure that one view is real and the next
    fake): each weight stays within exp(+-c) of the running mean, and both bounds are reached."""
    cfg = GuidanceConfig(ratio_clamp=1.0, ratio_normalise=0.9)
    fake = SimpleNamespace(ratio_head=RatioHead(4))
    g = torch.Generator().manual_seed(0)
    weights = torch.cat([ratio_weights(cfg, fake, -5 + 3 * torch.randn(4, generator=g)) for _ in range(200)])
    assert weights.min() >= math.exp(-1) - 1e-6 and weights.max() <= math.exp(1) + 1e-6
    assert weights.min() == pytest.approx(math.exp(-1)) and weights.max() == pytest.approx(math.exp(1))


def test_noise_draws_average_the_gradient_of_independent_draws(tiny_shapes_teacher):
    """With k draws per view, each view's gradient is the mean of the SDS gradients w(t)(eps_T - eps) of k
    independent (t, eps) pairs: here rebuilt by hand from the same generator's draws."""
    from uni3d.cameras import Cameras
    from uni3d.guidance.distill import guidance_loss
    from uni3d.teachers.base import Conditioning
    from uni3d.teachers.fake_score import camera_conditioning

    t_ = tiny_shapes_teacher
    cams = Cameras.from_angles([0.0, 90.0], [10.0, 10.0])
    cond = camera_conditioning(t_, "a red mug", cams)
    x0 = t_.encode(torch.rand(2, 3, 16, 16)).requires_grad_(True)
    cfg = GuidanceConfig(method="sds", noise_draws=3).validate()
    out = guidance_loss(cfg, t_, None, x0, cond, 0, torch.Generator().manual_seed(5))
    out.loss.backward()

    g = torch.Generator().manual_seed(5)
    t = cfg.sample_t(6, 0, t_.num_train_timesteps, g)
    eps = torch.randn((6, *x0.shape[1:]), generator=g)
    assert torch.equal(out.t, t) and len(set(t.tolist())) > 2  # six draws, not one repeated
    a_t, s_t = t_.a_s(t)
    with torch.no_grad():
        x_t = t_.add_noise(x0.detach().repeat(3, 1, 1, 1), t, eps)
        eps_T = t_.eps(x_t, t, Conditioning.cat([cond] * 3), cfg.cfg_scale)
    per_draw = (cfg.weight(a_t, s_t) * (eps_T - eps)).view(3, 2, *x0.shape[1:])
    assert torch.allclose(x0.grad, per_draw.mean(0) / 2, atol=1e-6)  # the surrogate's gradient is g / B


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_noise_draws_must_be_a_positive_whole_number(bad):
    from uni3d.errors import UserError

    with pytest.raises(UserError, match="noise-draws"):
        GuidanceConfig(noise_draws=bad).validate()
