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
