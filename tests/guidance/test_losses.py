"""Identities between the methods, on random tensors."""

import torch

from uni3d.guidance import UniInstructTerms, sds_grad, surrogate_loss, uni_instruct_loss, vsd_grad


def test_surrogate_gradient_is_g_over_b():
    x0 = torch.randn(4, 3, 5, 5, requires_grad=True)
    g = torch.randn(4, 3, 5, 5)
    surrogate_loss(x0, g).backward()
    assert torch.allclose(x0.grad, g / 4, atol=1e-6)  # exact up to float rounding of x0 - (x0 - g)


def test_sds_equals_vsd_when_fake_returns_the_injected_noise():
    eps, eps_T, w = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8), torch.rand(3, 1, 1, 1)
    assert torch.equal(sds_grad(eps_T, eps, w), vsd_grad(eps_T, eps.clone(), w))


def test_reverse_kl_with_unit_ratio_is_sid_alpha_half():
    """SiD (Zhou et al. 2024) in x0-predictions f = (x_t - s eps_pred) / a, with alpha = 0.5:
    L = (1 - alpha) ||f_T - f_F||^2 + <f_T - f_F, f_F - x0>; Uni-Instruct's reverse KL with rho = 1
    and w = s^4 / (2 a^2) is the same loss, value and gradient."""
    torch.manual_seed(0)
    x0 = torch.randn(3, 4, 6, 6, requires_grad=True)
    eps = torch.randn_like(x0)
    a = torch.tensor([0.9, 0.6, 0.3]).view(-1, 1, 1, 1)
    s = (1 - a**2).sqrt()
    x_t = a * x0 + s * eps
    lin_T, lin_F = torch.randn(4, 4), torch.randn(4, 4)  # stand-in networks, differentiable in x_t
    eps_T = torch.einsum("ij,bjhw->bihw", lin_T, x_t).tanh()
    eps_F = torch.einsum("ij,bjhw->bihw", lin_F, x_t).tanh()
    f_T, f_F = (x_t - s * eps_T) / a, (x_t - s * eps_F) / a
    sid = (0.5 * (f_T - f_F).pow(2) + (f_T - f_F) * (f_F - x0)).flatten(1).sum(-1)
    ui = uni_instruct_loss(x0, eps, eps_T, eps_F, a, s, torch.ones(3), "rkl", w=s**4 / (2 * a**2))
    assert torch.allclose(ui, sid, rtol=1e-5, atol=1e-6)
    (g_ui,) = torch.autograd.grad(ui.sum(), x0, retain_graph=True)
    (g_sid,) = torch.autograd.grad(sid.sum(), x0)
    assert torch.allclose(g_ui, g_sid, rtol=1e-4, atol=1e-6)


def test_di_term_alone_is_the_vsd_direction():
    x0 = torch.randn(2, 3, 4, 4, requires_grad=True)
    eps, eps_T, eps_F = torch.randn_like(x0), torch.randn_like(x0), torch.randn_like(x0)
    a, s = torch.full((2, 1, 1, 1), 0.8), torch.full((2, 1, 1, 1), 0.6)
    loss = uni_instruct_loss(x0, eps, eps_T, eps_F, a, s, torch.ones(2), "alpha", alpha=2.0,
                             terms=UniInstructTerms(sim=False, fgm=False, cross=False))
    (g,) = torch.autograd.grad(loss.sum(), x0)
    d = eps_T - eps_F
    cos = torch.nn.functional.cosine_similarity(g.flatten(1), d.flatten(1))
    assert torch.allclose(cos, torch.ones(2), atol=1e-5)  # alpha = 2: r H'' = 2 > 0


def test_terms_switch_off_independently():
    x0 = torch.randn(2, 3, 4, 4)
    eps, eps_T, eps_F = torch.randn_like(x0), torch.randn_like(x0), torch.randn_like(x0)
    a, s = torch.full((2, 1, 1, 1), 0.8), torch.full((2, 1, 1, 1), 0.6)
    rho = torch.tensor([0.5, 2.0])
    kw = dict(divergence="js")
    parts = [uni_instruct_loss(x0, eps, eps_T, eps_F, a, s, rho, terms=UniInstructTerms(*(i == k for i in range(4))), **kw)
             for k in range(4)]
    total = uni_instruct_loss(x0, eps, eps_T, eps_F, a, s, rho, **kw)
    assert torch.allclose(sum(parts), total, atol=1e-5)
    assert all(p.abs().sum() > 0 for p in parts)
