"""The LoRA fake score shares the teacher's UNet weights, and owns nothing of them."""

import pytest
import torch

from uni3d.cameras import Cameras
from uni3d.guidance.config import GuidanceConfig
from uni3d.guidance.distill import guidance_loss
from uni3d.teachers.fake_score import FakeScore, FakeScoreConfig, camera_conditioning


@pytest.fixture(params=["shapes", "sd"])
def teacher(request, tiny_shapes_teacher, tiny_sd_teacher):
    return tiny_shapes_teacher if request.param == "shapes" else tiny_sd_teacher


def _inputs(teacher, b=2):
    cams = Cameras.from_angles([0.0, 120.0][:b], [10.0, 30.0][:b])
    x0 = teacher.encode(torch.rand(b, 3, teacher.resolution, teacher.resolution))
    return x0, camera_conditioning(teacher, "a red mug", cams)


def test_teacher_unchanged_by_adapter(teacher):
    x0, cond = _inputs(teacher)
    t = torch.tensor([100, 600])
    before = teacher.eps(x0, t, cond, 3.0)
    fake = FakeScore(teacher)
    with torch.no_grad():
        for p in fake.trainable_parameters():
            p.add_(0.1 * torch.randn_like(p))
    after = teacher.eps(x0, t, cond, 3.0)
    assert torch.allclose(before, after, atol=1e-6)
    eps_F, logit = fake.eps(x0, t, cond)
    assert not torch.allclose(eps_F, teacher.unet_eps(x0, t, cond.text, cond.camera), atol=1e-4)
    assert logit.shape == (2,)


def test_encoder_features_are_the_full_pass_features_without_the_decoder(teacher):
    """The ratio head's real half stops at the mid block: same features as a full pass, the decoder never run."""
    fake = FakeScore(teacher)
    with torch.no_grad():
        for p in fake.trainable_parameters():
            p.add_(0.1 * torch.randn_like(p))
    x0, cond = _inputs(teacher)
    t = torch.tensor([100, 600])
    _, mid = fake._forward(x0, t, cond)
    ran = []
    hook = fake.unet.up_blocks[0].register_forward_hook(lambda *a: ran.append(1))
    try:
        features = fake.encoder_features(x0, t, cond)
    finally:
        hook.remove()
    assert not ran and not features.requires_grad
    torch.testing.assert_close(features, mid.detach(), atol=1e-5, rtol=1e-5)
    eps_F, logit = fake.eps(x0, t, cond)  # the hook lets a full pass through afterwards
    assert eps_F.shape == x0.shape and logit.shape == (2,)


def test_passes_switch_nothing_and_keep_their_features_to_their_thread(teacher):
    """The fake score runs its own module tree over the teacher's very weights: a teacher pass and a fake-score
    pass may run at once on two threads, and the mid-block features a pass captures stay with its thread."""
    from concurrent.futures import ThreadPoolExecutor

    fake = FakeScore(teacher)
    assert fake.unet is not teacher.unet
    own = {id(p) for p in fake.camera_embedding.parameters()}
    assert {id(p) for p in fake.unet.parameters()} == {id(p) for p in teacher.unet.parameters()} | own  # no copy
    assert all(p.requires_grad for p in fake.lora_parameters())
    x0, cond = _inputs(teacher)
    t = torch.tensor([100, 600])
    with ThreadPoolExecutor(1) as pool:  # a pass on another thread captures its features there, and leaves them
        pool.submit(teacher.unet_eps, x0, t, cond.text, cond.camera, fake.unet).result()
    assert fake._take_mid() is None
    teacher.unet_eps(x0, t, cond.text, cond.camera, fake.unet)  # the same pass here: its features are here
    assert fake._take_mid() is not None


def test_checkpoint_holds_only_the_adapter(teacher):
    fake = FakeScore(teacher)
    state = fake.adapter_state()
    assert set(state) == {"lora", "camera_embedding", "ratio_head"}
    assert all("lora_" in k for k in state["lora"])
    assert not any(k.startswith("teacher") for k in fake.state_dict())
    n_teacher = sum(p.numel() for n, p in teacher.named_parameters() if "lora_" not in n)
    n_saved = sum(v.numel() for part in state.values() for v in part.values())
    assert n_saved < n_teacher / 4


def test_adapter_state_roundtrip(tiny_shapes_teacher):
    fake = FakeScore(tiny_shapes_teacher)
    with torch.no_grad():
        for p in fake.trainable_parameters():
            p.add_(torch.randn_like(p))
    state = fake.adapter_state()
    x0, cond = _inputs(tiny_shapes_teacher)
    t = torch.tensor([50, 500])
    want, _ = fake.eps(x0, t, cond)
    with torch.no_grad():
        for p in fake.trainable_parameters():
            p.zero_()
    fake.load_adapter_state(state)
    got, _ = fake.eps(x0, t, cond)
    assert torch.allclose(want, got)


def test_self_normalised_ratio_keeps_the_order_and_restores_the_scale(tiny_shapes_teacher):
    """Ratios that sink far below 1 come back to mean ~1 with their order kept; the running mean lives in the
    checkpoint, and an adapter saved before it existed still loads."""
    head = FakeScore(tiny_shapes_teacher).ratio_head
    g = torch.Generator().manual_seed(0)
    weights = []
    for _ in range(400):
        rho = torch.exp(-5 + torch.randn(2, generator=g))  # a discriminator that calls every render fake
        w = head.self_normalise(rho, 0.95)
        assert torch.equal(w.argsort(), rho.argsort())
        assert (w <= 2 / (1 - 0.95) + 1e-4).all()
        weights.append(w)
    assert 0.7 < torch.cat(weights[100:]).mean() < 1.3
    assert 0 < float(head.mean_ratio) < 0.05
    fresh = FakeScore(tiny_shapes_teacher)
    state = {**fresh.adapter_state(), "ratio_head": head.state_dict()}
    fresh.load_adapter_state(state)
    assert fresh.ratio_head.mean_ratio == head.mean_ratio
    state["ratio_head"] = {k: v for k, v in state["ratio_head"].items() if k != "mean_ratio"}
    fresh.load_adapter_state(state)
    assert fresh.ratio_head.mean_ratio == 0  # none yet: the next step starts it


def test_online_training_fits_the_renders(tiny_shapes_teacher):
    torch.manual_seed(0)
    fake = FakeScore(tiny_shapes_teacher, FakeScoreConfig(lr=3e-3, t_max=0.5))
    opt = torch.optim.Adam(fake.trainable_parameters(), lr=3e-3)
    x0, cond = _inputs(tiny_shapes_teacher)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        out = fake.loss(x0, cond, real_x0=torch.zeros_like(x0), generator=g)
        opt.zero_grad()
        (out["loss_fake"] + out["loss_ratio"]).backward()
        opt.step()
        losses.append(out["loss_ratio"].item())
    assert sum(losses[-10:]) / 10 < 0.85 * sum(losses[:10]) / 10  # the head separates renders from "real" zeros


def test_online_training_moves_the_lora_and_fits_a_render(teacher):
    """The LoRA itself learns (peft's adapter switching must not leave it frozen): on one fixed render the
    noise-prediction error falls, and every LoRA weight gets a gradient."""
    torch.manual_seed(0)
    fake = FakeScore(teacher, FakeScoreConfig(lr=3e-3, t_min=0.1, t_max=0.3))
    opt = torch.optim.Adam(fake.lora_parameters(), lr=3e-3)  # the LoRA alone, not the camera embedding
    x0, cond = _inputs(teacher, b=1)
    before = [p.detach().clone() for p in fake.lora_parameters()]
    losses = []
    for i in range(80):
        out = fake.loss(x0, cond, generator=torch.Generator().manual_seed(i % 4))
        opt.zero_grad()
        out["loss_fake"].backward()
        if i == 0:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fake.lora_parameters()[1::2])  # lora_B
        opt.step()
        losses.append(out["loss_fake"].item())
    assert all(not torch.equal(b, p) for b, p in zip(before, fake.lora_parameters()))
    assert sum(losses[-8:]) / 8 < 0.95 * sum(losses[:8]) / 8  # the same four noise draws in both windows


def test_generator_losses_leave_the_lora_frozen(tiny_shapes_teacher):
    fake = FakeScore(tiny_shapes_teacher)
    x0, cond = _inputs(tiny_shapes_teacher)
    x0.requires_grad_(True)
    with fake.frozen():
        eps_F, _ = fake.eps(x0, torch.tensor([100, 200]), cond)
    eps_F.sum().backward()  # after the block, as the trainer does
    assert x0.grad is not None and all(p.grad is None for p in fake.trainable_parameters())
    assert all(p.requires_grad for p in fake.lora_parameters())  # the fake's own training is unaffected


def test_pathwise_terms_reach_the_render_through_both_networks(tiny_shapes_teacher):
    teacher = tiny_shapes_teacher
    fake = FakeScore(teacher)
    with torch.no_grad():
        for p in fake.lora_parameters():
            p.add_(0.05 * torch.randn_like(p))
    calls = []
    for unet in (teacher.unet, fake.unet):  # the teacher's passes, the fake score's
        unet.conv_in.register_full_backward_hook(lambda m, gi, go: calls.append(gi[0].shape[0]))
    rgb = torch.rand(2, 3, 16, 16, requires_grad=True)
    _, cond = _inputs(teacher)
    cfg = GuidanceConfig(method="uni-instruct", divergence="rkl", di=False, cross=False, normalise=False, cfg_scale=2.0)
    res = guidance_loss(cfg, teacher, fake, teacher.encode(rgb), cond, step=0, generator=torch.Generator().manual_seed(0))
    res.loss.backward()
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0
    assert sorted(calls) == [2, 4]  # the fake pass (B) and the teacher's CFG pass (2B)
    assert all(p.grad is None for p in teacher.parameters())  # frozen teacher and frozen LoRA
    assert all(p.grad is None for p in fake.parameters())


def test_sds_and_vsd_never_differentiate_the_networks(tiny_shapes_teacher):
    teacher = tiny_shapes_teacher
    fake = FakeScore(teacher)
    calls = []
    for unet in (teacher.unet, fake.unet):
        unet.conv_in.register_full_backward_hook(lambda m, gi, go: calls.append(1))
    _, cond = _inputs(teacher)
    for method in ("sds", "vsd"):
        rgb = torch.rand(2, 3, 16, 16, requires_grad=True)
        res = guidance_loss(GuidanceConfig(method=method), teacher, fake, teacher.encode(rgb), cond, 0)
        res.loss.backward()
        assert rgb.grad.abs().sum() > 0
    assert calls == []


def test_lora_targets_are_configurable(tiny_shapes_teacher):
    attention = FakeScore(tiny_shapes_teacher)
    n_attention = len(attention.lora_parameters())
    assert all("conv" not in n for n, p in tiny_shapes_teacher.unet.named_parameters() if "lora_" in n)
    wider = FakeScore(tiny_shapes_teacher, FakeScoreConfig(targets=("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2")))
    names = [n for n, _ in tiny_shapes_teacher.unet.named_parameters() if "lora_" in n]
    assert len(wider.lora_parameters()) > n_attention and any("conv1" in n for n in names)
