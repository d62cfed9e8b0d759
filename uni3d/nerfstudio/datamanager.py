"""Random training views for nerfstudio's trainer, drawn exactly as ``uni3d.training`` draws them.

Text-to-3D has no images: each step's "batch" is a few random orbit cameras from uni3d's CameraSampler, the
step's random generator (which the guidance then draws its times and noise from) and the step number. The
seeding is the uni3d Trainer's, so a seeded ``ns-train uni3d-*`` run takes the same views and noise as the
same ``uni3d generate`` run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from nerfstudio.cameras.cameras import Cameras as NSCameras
from nerfstudio.data.datamanagers.base_datamanager import DataManager, DataManagerConfig
from nerfstudio.data.scene_box import SceneBox
from torch.nn import Parameter
from torch.utils.data import Dataset

from uni3d.cameras import ELEVATION_RANGE, Cameras, CameraSampler
from uni3d.nerfstudio.cameras import to_nerfstudio


def step_seed(seed: int, step: int) -> int:
    """The seed of one step, as in ``uni3d.training.Trainer.train_step``."""
    return seed * 1_000_003 + step


class ViewSet(Dataset):
    """A turntable of orbit cameras that the viewer draws as frustums (click one to look from it).

    nerfstudio's viewer and pipeline expect a dataset of posed images; a text-to-3D scene has views but no
    images, so each view shows a blank white card.
    """

    def __init__(self, cams: Cameras, resolution: int):
        self.cameras = to_nerfstudio(cams, resolution)
        self.scene_box = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
        self.metadata: dict = {}
        self.resolution = resolution

    def __len__(self) -> int:
        return int(self.cameras.shape[0])

    def __getitem__(self, index: int) -> dict:
        return {"image": torch.ones(self.resolution, self.resolution, 3), "image_idx": index}


@dataclass
class Uni3DDataManagerConfig(DataManagerConfig):
    """Random orbit views of the scene, as uni3d's trainer samples them."""

    _target: type = field(default_factory=lambda: Uni3DDataManager)
    views: int = 2
    """Rendered views per step."""
    resolution: int = 32
    """Render resolution (pixels); the teacher resizes to its own."""
    seed: int = 0
    """Seed of each step's cameras, jitter and guidance noise (as uni3d generate --seed)."""
    elevation_range: tuple[float, float] = ELEVATION_RANGE
    """Elevation range of the sampled views (degrees)."""
    display_views: int = 12
    """Turntable views drawn as camera frustums in the viewer."""


class Uni3DDataManager(DataManager):
    """Yields (nerfstudio cameras, {"cameras": uni3d cameras, "generator": ..., "step": ...}) per step."""

    config: Uni3DDataManagerConfig

    def __init__(self, config: Uni3DDataManagerConfig, device: torch.device | str = "cpu",
                 test_mode: Literal["test", "val", "inference"] = "val", world_size: int = 1, local_rank: int = 0,
                 **kwargs):
        if config.data is not None:
            raise ValueError("uni3d methods take no --data: their views are random cameras around a prompt")
        self.config, self.device, self.test_mode = config, device, test_mode
        self.sampler = CameraSampler(elevation_range=config.elevation_range)
        turntable = self.sampler.turntable(config.display_views, elevation=15.0)
        self.train_dataset = ViewSet(turntable, config.resolution)
        self.eval_dataset = None  # nothing to score against: no eval iterations
        super().__init__()

    def setup_train(self) -> None:
        """Nothing to load."""

    def setup_eval(self) -> None:
        """Nothing to load."""

    def next_train(self, step: int) -> tuple[NSCameras, dict]:
        seed = step_seed(self.config.seed, step)
        torch.manual_seed(seed)  # scenes draw ray jitter from the global RNG (uni3d.training does the same)
        g = torch.Generator().manual_seed(seed)
        self.train_count += 1
        cams = self.sampler.sample(self.config.views, g)
        return to_nerfstudio(cams, self.config.resolution).to(self.device), {"cameras": cams, "generator": g, "step": step}

    def next_eval(self, step: int) -> tuple[NSCameras, dict]:
        self.eval_count += 1
        g = torch.Generator().manual_seed(step_seed(self.config.seed + 1, step))
        cams = self.sampler.sample(self.config.views, g)
        return to_nerfstudio(cams, self.config.resolution).to(self.device), {"cameras": cams, "generator": g, "step": step}

    def next_eval_image(self, step: int) -> tuple[NSCameras, dict]:
        idx = step % len(self.train_dataset)
        return self.train_dataset.cameras[idx:idx + 1].to(self.device), {"image_idx": idx}

    def get_train_rays_per_batch(self) -> int:
        return self.config.views * self.config.resolution**2

    def get_eval_rays_per_batch(self) -> int:
        return self.get_train_rays_per_batch()

    def get_datapath(self) -> Path:
        return Path(".")

    def get_param_groups(self) -> dict[str, list[Parameter]]:
        return {}
