"""f_weights against h = r f'', H = r^2 f'' computed from f itself by autograd."""

import pytest
import torch

from uni3d.guidance import DIVERGENCES, f_generator, f_weights

CASES = [(d, None) for d in DIVERGENCES if d != "alpha"] + [("alpha", 0.5), ("alpha", 2.0), ("alpha", -1.0)]


def _numeric_weights(divergence, alpha, rho):
    r = (1 / rho).double().requires_grad_(True)
    f = f_generator(divergence, alpha)
    (f1,) = torch.autograd.grad(f(r).sum(), r, create_graph=True)
    (f2,) = torch.autograd.grad(f1.sum(), r, create_graph=True)
    H = r**2 * f2
    (H1,) = torch.autograd.grad(H.sum(), r, create_graph=True)
    (H2,) = torch.autograd.grad(H1.sum(), r)
    return (r * f2).detach(), H1.detach(), (r * H2).detach()


@pytest.mark.parametrize("divergence,alpha", CASES)
def test_weights_match_f(divergence, alpha):
    rho = torch.tensor([0.2, 0.7, 1.0, 1.5, 4.0], dtype=torch.float64)
    got = f_weights(divergence, rho, alpha)
    want = _numeric_weights(divergence, alpha, rho)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("divergence,alpha", CASES)
def test_f_is_zero_at_one(divergence, alpha):
    assert f_generator(divergence, alpha)(torch.tensor(1.0, dtype=torch.float64)).abs() < 1e-12


def test_names_and_errors():
    assert DIVERGENCES == ("rkl", "fkl", "jeffreys", "js", "neyman", "pearson", "hellinger", "alpha")
    with pytest.raises(ValueError, match="fkl"):
        f_weights("kl", torch.ones(1))
    with pytest.raises(ValueError, match="alpha"):
        f_weights("alpha", torch.ones(1))
    with pytest.raises(ValueError, match="alpha"):
        f_weights("fkl", torch.ones(1), alpha=0.5)


def test_public_api_names_match_the_cli():
    """``uni3d.guidance.f_weights(divergence, rho, alpha=None)`` is public, with the CLI's divergence names."""
    import inspect
    import typing

    import uni3d.guidance as guidance
    from uni3d.guidance.config import GuidanceConfig

    assert list(inspect.signature(guidance.f_weights).parameters) == ["divergence", "rho", "alpha"]
    cli_names = typing.get_args(typing.get_type_hints(GuidanceConfig)["divergence"])
    assert tuple(cli_names) == guidance.DIVERGENCES == ("rkl", "fkl", "jeffreys", "js", "neyman", "pearson", "hellinger", "alpha")
    h, H1, rH2 = guidance.f_weights("alpha", torch.full((3,), 2.0), alpha=0.5)
    assert h.shape == H1.shape == rH2.shape == (3,)
