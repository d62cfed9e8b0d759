"""The uni3d NeRF scene as a nerfstudio Model, trained by uni3d's own guidance.

Nothing here computes guidance: a training step renders the datamanager's orbit views with the uni3d scene
(``get_outputs``) and hands them to ``uni3d.guidance.distill.guidance_loss``, with the conditioning, the
fake-score loss and the Uni-Instruct real samples of a ``uni3d.training.Trainer`` (``get_loss_dict``);
nerfstudio's trainer owns the clock, the optimizers and the checkpoints. With two or more torch threads the fake
score's gradient is computed on a second thread while nerfstudio back-propagates the scene's loss (for VSD from
before the guidance passes), as in ``uni3d generate``; ``uni3d.nerfstudio.trainer`` waits for it before the
optimizers step.

The teacher and the uni3d Trainer that holds it live in a plain attribute, outside the module tree, so they
appear in neither ``state_dict()`` nor ``parameters()``; they load on first use, so the viewer of a finished
run never loads the teacher. The fake score (LoRA, camera embedding, ratio head) is its own parameter group,
``fake_score``, and its adapter state is saved under ``fake_score.*`` in the model's state dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from nerfstudio.cameras.cameras import Cameras as NSCameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import Model, ModelConfig
from torch.nn import Parameter

from uni3d.guidance.config import GuidanceConfig
from uni3d.guidance.distill import draw_noise, guidance_loss
from uni3d.nerfstudio.cameras import from_nerfstudio, rays_to_uni3d
from uni3d.scenes.nerf import NeRFConfig, NeRFScene
from uni3d.teachers.fake_score import FakeScoreConfig
from uni3d.training import FakeBeside, TrainConfig, Trainer

FAKE_PREFIX = "fake_score."
"""State-dict prefix of the fake score's adapter state (never the teacher's weights)."""


@dataclass
class Uni3DModelConfig(ModelConfig):
    """A uni3d NeRF distilled from a text-to-image teacher (see uni3d generate --help for every field)."""

    _target: type = field(default_factory=lambda: Uni3DModel)
    enable_collider: bool = False
    """uni3d marches rays inside its own bounding sphere."""
    prompt: str | None = "a red mug"
    """What to make (also --prompt)."""
    teacher: str = "shapes"
    """"shapes" (embedded), a shapes teacher directory, or a Stable Diffusion directory or hub id."""
    seed: int = 0
    """Seed of the scene's initialisation."""
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    """How a rendered view becomes a gradient (method, divergence, CFG scale, time range, ...)."""
    fake: FakeScoreConfig = field(default_factory=FakeScoreConfig)
    """The fake score's adapter (its learning rate is --optimizers.fake-score.optimizer.lr)."""
    nerf: NeRFConfig = field(default_factory=NeRFConfig)
    """The NeRF scene (its learning rates are --optimizers.grids/mlp.optimizer.lr)."""
    regularizer_weights: dict[str, float] = field(default_factory=dict)
    """Weight of each scene regulariser by name (loss_opacity, loss_orient, ...); missing names weigh 1."""
    eval_num_rays_per_chunk: int = 1 << 14
    """Rays per chunk when rendering for the viewer."""
    overlap_fake: bool = True
    """With two or more torch threads, compute the fake score's training gradient on a second thread while
    nerfstudio back-propagates the scene's loss (for VSD, while the guidance passes run too), each on half the
    threads (as uni3d generate --overlap-fake). Off: the fake score's loss joins the scene's in one backward."""


class _Outside:
    """A plain holder: what it holds is not part of the module tree (no state_dict, no parameters, no .to)."""

    def __init__(self):
        self.trainer = None  # uni3d.training.Trainer, built on first use
        self.pending_fake: dict | None = None  # fake-score state loaded before the fake score existed
        self.beside: FakeBeside | None = None  # this step's fake-score gradient, being computed on the second thread


class Uni3DModel(Model):
    """nerfstudio's view of a uni3d NeRF scene and its guidance."""

    config: Uni3DModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        with torch.random.fork_rng(devices=[]):  # the MLP draws from the global RNG: seed it, leave it as it was
            torch.manual_seed(self.config.seed)
            self.scene = NeRFScene(self.config.nerf, seed=self.config.seed)
        self.outside = _Outside()

    # --- the uni3d side: teacher, fake score, conditioning (loaded lazily) -------------------
    def uni3d(self):
        """The uni3d Trainer holding the teacher and the fake score (built on first use); nerfstudio's optimizers
        step the parameters, the Trainer's own stay unused."""
        if self.outside.trainer is None:
            from uni3d.teachers import load_teacher

            teacher = load_teacher(self.config.teacher, str(self.device))
            prompt = self.config.prompt or ""
            teacher.embed(prompt)  # vocabulary errors now, not mid-run
            cfg = TrainConfig(seed=self.config.seed, regularizer_weights=dict(self.config.regularizer_weights),
                              overlap_fake=self.config.overlap_fake)
            self.outside.trainer = Trainer(cfg, self.config.guidance.validate(), self.config.fake, self.scene,
                                           teacher, prompt)
            fake = self.outside.trainer.fake
            if fake is not None:
                fake.to(self.device)
                if self.outside.pending_fake is not None:
                    fake.load_adapter_state(self.outside.pending_fake)
                    self.outside.pending_fake = None
        return self.outside.trainer

    # --- optimisation -------------------------------------------------------------------------
    def get_param_groups(self) -> dict[str, list[Parameter]]:
        """The scene's groups by name (grids, mlp), and the fake score's (fake_score) when the method has one."""
        groups = {g["name"]: list(g["params"]) for g in self.scene.param_groups()}
        if self.config.guidance.needs_fake_score:
            groups["fake_score"] = self.uni3d().fake.trainable_parameters()
        return groups

    def get_training_callbacks(self, attrs: TrainingCallbackAttributes) -> list[TrainingCallback]:
        from uni3d.nerfstudio.view import look_at_scene

        trainer = getattr(attrs, "trainer", None)
        viewer = getattr(trainer, "viewer_state", None)
        if viewer is not None and hasattr(viewer, "viser_server"):
            look_at_scene(viewer.viser_server)
        return [TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], self._post_backward)]

    def _post_backward(self, step: int) -> None:
        self.scene.post_backward(step)  # the occupancy grid, as after each uni3d step

    # --- rendering ----------------------------------------------------------------------------
    def get_outputs(self, ray_bundle: RayBundle | NSCameras) -> dict[str, torch.Tensor | list]:
        """Training views (orbit cameras) render through ``scene.render``, exactly as in uni3d; ray bundles (the
        viewer, any pose) through ``scene.render_rays``."""
        if isinstance(ray_bundle, NSCameras):
            cams = from_nerfstudio(ray_bundle)
            out = self.scene.render(cams, int(ray_bundle.width.reshape(-1)[0]))
            return {"rgb": out.rgb, "accumulation": out.alpha, "depth": out.depth, "render": out, "cameras": cams}
        shape = ray_bundle.origins.shape[:-1]
        o, d = rays_to_uni3d(ray_bundle.origins.reshape(-1, 3), ray_bundle.directions.reshape(-1, 3))
        d = d / d.norm(dim=-1, keepdim=True)
        out = self.scene.render_rays(o, d)
        # the background sits at the far side of the scene's sphere, so the viewer's depth compositing works
        bo = (o * d).sum(-1, keepdim=True)
        far = -bo + (bo * bo - (o * o).sum(-1, keepdim=True) + self.scene.config.bound**2).clamp(min=0).sqrt()
        depth = out["depth"] + (1 - out["alpha"]) * far
        return {"rgb": out["rgb"].view(*shape, 3), "accumulation": out["alpha"].view(*shape, 1),
                "depth": depth.view(*shape, 1)}

    # --- losses -------------------------------------------------------------------------------
    def get_metrics_dict(self, outputs, batch) -> dict[str, torch.Tensor]:
        return {}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, torch.Tensor]:
        """uni3d's step 3-9 (see ``uni3d.training.Trainer.train_step``): teacher space, conditioning, the guidance
        loss, the weighted regularisers and, while training, the fake score's own losses on the detached views."""
        u = self.uni3d()
        cams, g, step, out = batch["cameras"], batch["generator"], batch["step"], outputs["render"]
        x0 = u.teacher.encode(out.rgb)
        cond = u.conditioning(cams)
        self.join_fake()  # a step that failed between here and the optimizers left one behind
        noise = draw_noise(u.guidance, u.teacher, x0, step, g)
        trains_fake = u.fake is not None and self.training
        beside = u.second_thread() if trains_fake else None
        if beside is not None and u.fake_needs_no_guidance():  # as in uni3d's step: beside the guidance passes too
            self.outside.beside = FakeBeside(beside, u.fake_gradients, x0.detach(), cond, None, g)
        guided = guidance_loss(u.guidance, u.teacher, u.fake, x0, cond, step, g, noise)
        weights = u.cfg.regularizer_weights
        losses = {"loss_guidance": guided.loss, **self.scene.regularizers(out, step)}
        losses = {k: weights.get(k, 1.0) * v for k, v in losses.items()}
        if trains_fake:
            real = u.real_samples(g, len(cams))
            if beside is None:
                losses.update(u.fake.loss(x0.detach(), cond, real, g))
            elif self.outside.beside is None:  # its losses come from join_fake, its gradient is in .grad by then
                self.outside.beside = FakeBeside(beside, u.fake_gradients, x0.detach(), cond, real, g)
        if metrics_dict is not None:
            metrics_dict.update({"t": float(guided.t.float().mean()), **guided.stats})
        return losses

    def join_fake(self) -> dict[str, torch.Tensor]:
        """Wait for the fake-score gradient that ``get_loss_dict`` left computing on the second thread; its losses
        (none when there was none: one thread, overlap off, SDS, or already joined)."""
        beside, self.outside.beside = self.outside.beside, None
        return beside.result() if beside is not None else {}

    def get_image_metrics_and_images(self, outputs, batch) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        return {}, {"rgb": outputs["rgb"]}

    # --- the fake score in the state dict -------------------------------------------------------
    def _fake_state(self) -> dict | None:
        trainer = self.outside.trainer
        if trainer is not None and trainer.fake is not None:
            return trainer.fake.adapter_state()
        return self.outside.pending_fake

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for part, tensors in (self._fake_state() or {}).items():
            for name, value in tensors.items():
                destination[f"{prefix}{FAKE_PREFIX}{part}.{name}"] = value

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        fake: dict = {}
        for key in [k for k in state_dict if k.startswith(prefix + FAKE_PREFIX)]:
            part, name = key[len(prefix + FAKE_PREFIX):].split(".", 1)
            fake.setdefault(part, {})[name] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        if fake:
            trainer = self.outside.trainer
            if trainer is not None and trainer.fake is not None:
                trainer.fake.load_adapter_state(fake)
            else:
                self.outside.pending_fake = fake
