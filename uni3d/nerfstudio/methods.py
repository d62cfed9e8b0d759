"""The ``ns-train`` methods: ``uni3d-sds``, ``uni3d-vsd`` and ``uni3d-uni-instruct``.

Registered through the ``nerfstudio.method_configs`` entry points of ``pyproject.toml``. Each trains the uni3d
NeRF with one guidance method, with the settings of its preset in ``configs/`` and the optimizers of
``uni3d.training.Trainer`` (Adam, betas 0.9/0.99, eps 1e-15 on the scene; AdamW on the fake score), one
nerfstudio parameter group each: ``grids``, ``mlp`` and, for VSD and Uni-Instruct, ``fake_score``.

    ns-train uni3d-sds --prompt "a red mug"          # the live viewer prints its address
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.optimizers import OptimizerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from uni3d.guidance.config import GuidanceConfig
from uni3d.nerfstudio.datamanager import Uni3DDataManagerConfig
from uni3d.nerfstudio.model import Uni3DModelConfig
from uni3d.scenes.nerf import NeRFConfig
from uni3d.teachers.fake_score import FakeScoreConfig
from uni3d.training import TrainConfig


@dataclass
class AdamConfig(OptimizerConfig):
    """Adam as uni3d's trainer sets it for the scene."""

    _target: type = torch.optim.Adam
    lr: float = 0.05
    """Learning rate."""
    eps: float = 1e-15
    """Adam's epsilon."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam's betas."""


@dataclass
class AdamWConfig(OptimizerConfig):
    """AdamW as uni3d's trainer sets it for the fake score (torch's defaults)."""

    _target: type = torch.optim.AdamW
    lr: float = 1e-3
    """Learning rate."""
    eps: float = 1e-8
    """AdamW's epsilon."""
    weight_decay: float = 0.01
    """Decoupled weight decay."""


PRESETS = {
    "sds": GuidanceConfig(method="sds", cfg_scale=20.0),  # configs/sds.yaml
    "vsd": GuidanceConfig(method="vsd", cfg_scale=7.5),  # configs/vsd.yaml
    "uni-instruct": GuidanceConfig(method="uni-instruct", divergence="fkl", cfg_scale=3.0, t_min_start=0.9,
                                   anneal_steps=350, ratio_normalise=0.95),  # configs/uni-instruct-fkl.yaml
}
"""The guidance of each method: the same settings as its preset YAML (a test keeps them equal)."""

DESCRIPTIONS = {
    "sds": "uni3d: text to 3D by SDS (DreamFusion) on the uni3d NeRF",
    "vsd": "uni3d: text to 3D by VSD (ProlificDreamer), LoRA fake score as its own parameter group",
    "uni-instruct": "uni3d: text to 3D by Uni-Instruct (f-divergence, --pipeline.model.guidance.divergence)",
}


def optimizers(nerf: NeRFConfig, fake: FakeScoreConfig | None, lr_scale: float = 1.0) -> dict:
    """nerfstudio's optimizer table for the uni3d scene's parameter groups (and the fake score's)."""
    table = {
        "grids": {"optimizer": AdamConfig(lr=nerf.lr_grid * lr_scale), "scheduler": None},
        "mlp": {"optimizer": AdamConfig(lr=nerf.lr_mlp * lr_scale), "scheduler": None},
    }
    if fake is not None:
        table["fake_score"] = {"optimizer": AdamWConfig(lr=fake.lr), "scheduler": None}
    return table


def trainer_config(method: str) -> TrainerConfig:
    """A fresh TrainerConfig of ``uni3d-METHOD`` (with uni3d generate's defaults)."""
    guidance = copy.deepcopy(PRESETS[method])
    train, nerf, fake = TrainConfig(), NeRFConfig(), FakeScoreConfig()
    return TrainerConfig(
        method_name=f"uni3d-{method}",
        steps_per_save=train.checkpoint_every,
        steps_per_eval_batch=train.steps,
        steps_per_eval_image=train.steps,
        steps_per_eval_all_images=1_000_000,
        max_num_iterations=train.steps,
        mixed_precision=False,
        pipeline=VanillaPipelineConfig(
            datamanager=Uni3DDataManagerConfig(views=train.views, resolution=train.resolution, seed=train.seed,
                                               elevation_range=train.elevation_range),
            model=Uni3DModelConfig(guidance=guidance, fake=fake, nerf=nerf, seed=train.seed),
        ),
        optimizers=optimizers(nerf, fake if guidance.needs_fake_score else None),
        viewer=ViewerConfig(num_rays_per_chunk=1 << 14, websocket_host="127.0.0.1"),
        vis="viewer",
        machine=MachineConfig(device_type="cuda" if torch.cuda.is_available() else "cpu"),
    )


uni3d_sds = MethodSpecification(config=trainer_config("sds"), description=DESCRIPTIONS["sds"])
uni3d_vsd = MethodSpecification(config=trainer_config("vsd"), description=DESCRIPTIONS["vsd"])
uni3d_uni_instruct = MethodSpecification(config=trainer_config("uni-instruct"), description=DESCRIPTIONS["uni-instruct"])
