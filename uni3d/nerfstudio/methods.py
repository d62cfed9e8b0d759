"""The ``ns-train`` methods: ``uni3d-sds``, ``uni3d-vsd``, ``uni3d-uni-instruct`` (forward KL) and
``uni3d-uni-instruct-rkl``, ``-jeffreys`` and ``-js``.

Registered through the ``nerfstudio.method_configs`` entry points of ``pyproject.toml``. Each trains the uni3d
NeRF with one guidance method, with the settings of its preset in ``configs/`` (read from the YAML, as
``uni3d generate`` reads it: guidance, and any scene, training or fake-score setting it tunes) and the optimizers of
``uni3d.training.Trainer`` (Adam, betas 0.9/0.99, eps 1e-15 on the scene; AdamW on the fake score), one
nerfstudio parameter group each: ``grids``, ``mlp`` and, for VSD and Uni-Instruct, ``fake_score``, stepped by
``uni3d.nerfstudio.trainer.Uni3DTrainer`` (nerfstudio's, waiting for the fake score's gradient of the second thread).

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

from uni3d.config import GenerateConfig, load_preset, preset_path
from uni3d.errors import UserError
from uni3d.nerfstudio.datamanager import Uni3DDataManagerConfig
from uni3d.nerfstudio.model import Uni3DModelConfig
from uni3d.nerfstudio.trainer import Uni3DTrainer
from uni3d.scenes.nerf import NeRFConfig
from uni3d.teachers.fake_score import FakeScoreConfig


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


PRESET_FILES = {
    "sds": "sds", "vsd": "vsd", "uni-instruct": "uni-instruct-fkl",
    "uni-instruct-rkl": "uni-instruct-rkl", "uni-instruct-jeffreys": "uni-instruct-jeffreys",
    "uni-instruct-js": "uni-instruct-js",
}
"""Each ns-train method (``uni3d-NAME``) and its preset, ``configs/PRESET.yaml``."""


def _preset(preset: str) -> GenerateConfig:
    try:
        return load_preset(preset_path(preset), GenerateConfig())
    except UserError as exc:
        raise UserError(f"uni3d's ns-train methods read their presets from configs/: {exc}; install uni3d from its "
                        "source checkout (pip install -e '.[nerfstudio]')") from None


PRESETS = {name: _preset(preset) for name, preset in PRESET_FILES.items()}
"""The settings of each method: ``uni3d generate``'s defaults with its preset YAML applied."""

DESCRIPTIONS = {
    "sds": "uni3d: text to 3D by SDS (DreamFusion) on the uni3d NeRF",
    "vsd": "uni3d: text to 3D by VSD (ProlificDreamer), LoRA fake score as its own parameter group",
    "uni-instruct": "uni3d: text to 3D by Uni-Instruct, forward KL (configs/uni-instruct-fkl.yaml)",
    "uni-instruct-rkl": "uni3d: text to 3D by Uni-Instruct, reverse KL (configs/uni-instruct-rkl.yaml)",
    "uni-instruct-jeffreys": "uni3d: text to 3D by Uni-Instruct, Jeffreys (configs/uni-instruct-jeffreys.yaml)",
    "uni-instruct-js": "uni3d: text to 3D by Uni-Instruct, Jensen-Shannon without its DI term "
                       "(configs/uni-instruct-js.yaml)",
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
    """A fresh TrainerConfig of ``uni3d-METHOD``: ``uni3d generate``'s defaults with the method's preset applied."""
    preset = copy.deepcopy(PRESETS[method])
    guidance, train, nerf, fake = preset.guidance, preset.train, preset.nerf, preset.fake
    return TrainerConfig(
        _target=Uni3DTrainer,
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
            model=Uni3DModelConfig(guidance=guidance, fake=fake, nerf=nerf, seed=train.seed,
                                   regularizer_weights=dict(train.regularizer_weights)),
        ),
        optimizers=optimizers(nerf, fake if guidance.needs_fake_score else None, train.lr_scale),
        viewer=ViewerConfig(num_rays_per_chunk=1 << 14, websocket_host="127.0.0.1"),
        vis="viewer",
        machine=MachineConfig(device_type="cuda" if torch.cuda.is_available() else "cpu"),
    )


uni3d_sds = MethodSpecification(config=trainer_config("sds"), description=DESCRIPTIONS["sds"])
uni3d_vsd = MethodSpecification(config=trainer_config("vsd"), description=DESCRIPTIONS["vsd"])
uni3d_uni_instruct = MethodSpecification(config=trainer_config("uni-instruct"), description=DESCRIPTIONS["uni-instruct"])
uni3d_uni_instruct_rkl = MethodSpecification(config=trainer_config("uni-instruct-rkl"),
                                             description=DESCRIPTIONS["uni-instruct-rkl"])
uni3d_uni_instruct_jeffreys = MethodSpecification(config=trainer_config("uni-instruct-jeffreys"),
                                                  description=DESCRIPTIONS["uni-instruct-jeffreys"])
uni3d_uni_instruct_js = MethodSpecification(config=trainer_config("uni-instruct-js"),
                                            description=DESCRIPTIONS["uni-instruct-js"])
