"""The fake score: the student's own diffusion model, a LoRA on the teacher's UNet (ProlificDreamer).

One set of UNet weights in memory serves as teacher and fake score. The LoRA adapter (peft) is added to the
teacher's UNet and switched off there for good; the fake score runs its own copy of the module tree, which holds
the very same parameters (the teacher's and the LoRA's) with the LoRA on and a camera embedding added. Nothing is
switched from pass to pass, so a teacher pass and fake-score passes may run at once on different threads. The fake
score is trained online by noise-prediction MSE on detached renders with camera dropout, and carries the
density-ratio head of Uni-Instruct on its mid-block features. Its checkpoint holds the LoRA, the camera embedding
and the ratio head, never the teacher.
"""

from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

from uni3d.cameras import CAMERA_FEATURES, Cameras, camera_features
from uni3d.teachers.base import Conditioning, Teacher


@dataclass
class FakeScoreConfig:
    """The fake score's adapter and its training."""

    rank: int = 4
    """LoRA rank."""
    targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    """UNet modules that get a LoRA (peft target names): the attention projections, as in ProlificDreamer;
    add conv1 conv2 conv_in conv_out for a fake score that can move further from the teacher."""
    lr: float = 1e-3
    """Learning rate of the LoRA, camera embedding and ratio head (AdamW)."""
    camera_dropout: float = 0.1
    """Fraction of its training views whose camera is withheld."""
    t_min: float = 0.02
    """Lowest diffusion time of its training noise, as a fraction of the table."""
    t_max: float = 0.98
    """Highest diffusion time of its training noise."""


ADAPTER = "uni3d_fake"
"""Name of the fake score's LoRA adapter on the teacher's UNet."""


class CameraEmbedding(nn.Module):
    """Camera features -> a vector added to the UNet's time embedding; starts at zero."""

    def __init__(self, out_dim: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(CAMERA_FEATURES, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class _SumEmbedding(nn.Module):
    """The teacher's own class embedding (if any) plus the fake score's camera embedding."""

    def __init__(self, original: nn.Module | None, camera: CameraEmbedding):
        super().__init__()
        self.original, self.camera = original, camera

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.camera(features.to(self.camera.net[0].weight.dtype))
        return out if self.original is None else out + self.original(features)


class RatioHead(nn.Module):
    """Discriminator on the UNet's mid-block features: a logit map averaged per sample.

    Trained with real = noised teacher samples (label 1), fake = noised renders (label 0), its
    logit estimates ``log(p_t / q_t)``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, 64, 1), nn.SiLU(), nn.Conv2d(64, 1, 1))
        self.register_buffer("mean_ratio", torch.tensor(0.0))  # running mean of exp(logit) on renders; 0 = none yet

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features.float()).flatten(1).mean(-1)

    @torch.no_grad()
    def self_normalise(self, rho: torch.Tensor, decay: float) -> torch.Tensor:
        """``rho`` over a running mean of the estimated ratio on the student's own renders.

        The true ``p_t / q_t`` has mean 1 under the student ``q_t``; the discriminator's estimate drifts
        far from it (its logit on renders sinks as it learns the cached real samples), which shrinks
        every step at once. Dividing by the running mean (self-normalised importance weights) keeps
        which views weigh more and restores the scale. The mean includes this batch, so a weight is
        at most ``1 / (1 - decay)`` times the batch size.
        """
        m = rho.mean()
        self.mean_ratio.copy_(m if self.mean_ratio <= 0 else decay * self.mean_ratio + (1 - decay) * m)
        return rho / self.mean_ratio.to(rho)


class _StopAtMid(Exception):
    """Raised by the mid-block hook to end a forward that needs the encoder's features alone."""


class FakeScore(nn.Module):
    """LoRA + camera embedding + ratio head on a teacher's UNet.

    ``state_dict()`` of this module holds only the camera embedding and the ratio head; use
    :meth:`adapter_state` for the full checkpoint (the LoRA included).
    """

    def __init__(self, teacher: Teacher, config: FakeScoreConfig = FakeScoreConfig()):
        super().__init__()
        object.__setattr__(self, "teacher", teacher)  # not a submodule: kept out of state_dict
        self.config = config
        unet = teacher.unet
        if ADAPTER in getattr(unet, "peft_config", {}):  # a new fake score replaces an earlier one
            unet.delete_adapters(ADAPTER)
        unet.add_adapter(LoraConfig(
            r=config.rank, lora_alpha=config.rank, init_lora_weights="gaussian",
            target_modules=list(config.targets),
        ), adapter_name=ADAPTER)
        unet.disable_adapters()  # the teacher's passes: for good
        time_dim = unet.time_embedding.linear_2.out_features
        self.camera_embedding = CameraEmbedding(time_dim)
        self.ratio_head = RatioHead(unet.config.block_out_channels[-1])
        self.to(teacher.device)
        fake_unet = shared_copy(unet)
        fake_unet.enable_adapters()
        fake_unet.class_embedding = _SumEmbedding(unet.class_embedding, self.camera_embedding)
        fake_unet.mid_block.register_forward_hook(self._capture_mid)
        object.__setattr__(self, "unet", fake_unet)  # not a submodule: its weights are the teacher's
        self._here = threading.local()  # per thread: the mid-block features of its last pass, and stop_at_mid
        for p in self.lora_parameters():
            p.requires_grad_(True)  # peft's disable_adapters cleared it; nothing switches it again but frozen()

    # --- the mid-block features ------------------------------------------------------------------
    def _capture_mid(self, module, inputs, output) -> None:
        self._here.mid = output
        if getattr(self._here, "stop_at_mid", False):
            raise _StopAtMid

    def _take_mid(self) -> torch.Tensor | None:
        mid, self._here.mid = getattr(self._here, "mid", None), None
        return mid

    def lora_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.teacher.unet.named_parameters() if "lora_" in n]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return self.lora_parameters() + list(self.camera_embedding.parameters()) + list(self.ratio_head.parameters())

    @contextmanager
    def frozen(self):
        """Inside: no gradient reaches the fake score's own weights (the generator's losses)."""
        params = self.trainable_parameters()
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)

    # --- predictions -------------------------------------------------------------------------
    def _forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> tuple[torch.Tensor, torch.Tensor]:
        """The fake score's noise prediction and its mid-block features."""
        camera = cond.camera if cond.camera is not None else torch.zeros(len(cond), CAMERA_FEATURES)
        out = self.teacher.unet_eps(x_t, t, cond.text, camera.to(x_t), unet=self.unet)
        return out, self._take_mid()

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> tuple[torch.Tensor, torch.Tensor]:
        """``eps_F(x_t, t, camera)`` and the ratio head's logit ``log(p/q)`` per sample."""
        out, mid = self._forward(x_t, t, cond)
        return out, self.ratio_head(mid)

    def encoder_features(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """The fake score's mid-block features of ``x_t``, without gradient; the decoder is not run."""
        self._here.stop_at_mid = True
        try:
            with torch.no_grad():
                self._forward(x_t, t, cond)
        except _StopAtMid:
            pass
        finally:
            self._here.stop_at_mid = False
        return self._take_mid()

    def sample_t(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        T = self.teacher.num_train_timesteps
        lo, hi = int(self.config.t_min * T), int(self.config.t_max * T)
        return torch.randint(lo, hi + 1, (n,), generator=generator)

    def loss(
        self,
        x0: torch.Tensor,
        cond: Conditioning,
        real_x0: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Noise-prediction MSE on detached renders ``x0`` (camera dropped for a fraction) and, given
        ``real_x0`` (teacher samples, one per render), the ratio head's BCE at the same t and noise.

        The head reads the UNet's features without back-propagating into them: the LoRA learns the
        score alone. The teacher's samples need only those features, so their pass stops at the mid
        block, without gradient (``encoder_features``).
        """
        x0 = x0.detach()
        b = x0.shape[0]
        t = self.sample_t(b, generator).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator).to(x0)
        cond = cond.drop_camera(torch.rand(b, generator=generator) < self.config.camera_dropout)
        x_t = self.teacher.add_noise(x0, t, eps)
        if real_x0 is None:
            pred, _ = self._forward(x_t, t, cond)
            return {"loss_fake": F.mse_loss(pred.float(), eps.float())}
        x_real = self.teacher.add_noise(real_x0.to(x0), t, eps)
        pred, mid = self._forward(x_t, t, cond)
        mid = torch.cat([mid.detach(), self.encoder_features(x_real, t, cond)])
        logit = self.ratio_head(mid)  # renders first (label 0), then the teacher's samples (label 1)
        labels = torch.cat([torch.zeros(b), torch.ones(b)]).to(logit)
        return {"loss_fake": F.mse_loss(pred.float(), eps.float()),
                "loss_ratio": F.binary_cross_entropy_with_logits(logit, labels)}

    # --- checkpoint ---------------------------------------------------------------------------
    def adapter_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """Everything the fake score owns, nothing of the teacher."""
        parts = {
            "lora": get_peft_model_state_dict(self.teacher.unet, adapter_name=ADAPTER),
            "camera_embedding": self.camera_embedding.state_dict(),
            "ratio_head": self.ratio_head.state_dict(),
        }
        return {name: {k: v.detach().clone() for k, v in part.items()} for name, part in parts.items()}

    def load_adapter_state(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        set_peft_model_state_dict(self.teacher.unet, state["lora"], adapter_name=ADAPTER)
        self.camera_embedding.load_state_dict(state["camera_embedding"])
        self.ratio_head.load_state_dict({"mean_ratio": torch.tensor(0.0), **state["ratio_head"]})  # older runs


def shared_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s tree of modules that holds the same parameters and buffers, not copies of them."""
    memo = {id(t): t for t in [*module.parameters(), *module.buffers()]}
    return copy.deepcopy(module, memo)


def camera_conditioning(teacher: Teacher, prompt: str, cams: Cameras) -> Conditioning:
    """The teacher's conditioning with camera features always attached (the fake score is camera-aware
    even when the teacher, like Stable Diffusion, is not)."""
    cond = teacher.condition(prompt, cams)
    if cond.camera is None:
        cond = Conditioning(cond.text, cond.uncond, camera_features(cams, len(cams)).to(cond.text))
    return cond
