"""A fast stand-in for ``uni3d generate``: it writes the ground-truth object of the prompt as the run."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from functools import cache

import pytest

TINY = ["train.steps=3", "train.views=1", "train.resolution=16", "export.resolution=40", "nerf.samples_per_ray=24",
        "guidance.ratio_samples=2"]
"""--override items of a real tiny run (as tests/test_generate.py's FAST)."""


@cache
def _object(shape: str, colour: str):
    import numpy as np

    from uni3d.cameras import CameraSampler
    from uni3d.teachers.sampling import image_grid
    from uni3d.world.mesh import ground_truth_mesh
    from uni3d.world.render import render

    views = render([shape] * 8, [colour] * 8, CameraSampler().turntable(8, elevation=15.0), resolution=32)
    to8 = lambda x: (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    return ground_truth_mesh(shape, colour, 40), to8(image_grid(views, cols=8)), [to8(v) for v in views[:4]]


@dataclass
class FakeRuns:
    calls: list = field(default_factory=list)
    """(prompt, method, seed, overwrite) of every generate call."""
    fail: dict = field(default_factory=dict)
    """prompt -> exception raised after config.yaml is written (a run dying half way)."""
    kill: set = field(default_factory=set)
    """(prompt, method): KeyboardInterrupt once the run's files are written, before its evaluation (a killed batch)."""
    recolour: dict = field(default_factory=dict)
    """(prompt, method) -> the colour its object gets instead of the prompt's (a run that misses the bar)."""

    def generate(self, cfg):
        import imageio.v3 as iio

        from uni3d.config import save_run_config
        from uni3d.generate import resolve_run_dir
        from uni3d.world.captions import parse_prompt
        from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES

        out = resolve_run_dir(cfg)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        save_run_config(cfg, out / "config.yaml")
        self.calls.append((cfg.prompt, cfg.guidance.method, cfg.train.seed, cfg.overwrite))
        if cfg.prompt in self.fail:
            raise self.fail[cfg.prompt]
        p = parse_prompt(cfg.prompt)
        seed = cfg.train.seed
        colour = self.recolour.get((cfg.prompt, cfg.guidance.method), p.colour or COLOUR_NAMES[seed % 6])
        mesh, multiview, frames = _object(p.shape or SHAPE_NAMES[seed % 6], colour)
        mesh.export(out / "mesh.glb")
        iio.imwrite(out / "multiview.png", multiview)
        iio.imwrite(out / "turntable.gif", frames, duration=80, loop=0)
        (out / "metrics.json").write_text(json.dumps({
            "prompt": cfg.prompt, "method": cfg.guidance.method, "divergence": cfg.guidance.divergence,
            "steps": cfg.train.steps, "train_seconds_this_session": 0.5, "peak_memory_mb": 100.0 + seed}))
        if (cfg.prompt, cfg.guidance.method) in self.kill:
            raise KeyboardInterrupt
        return out


@pytest.fixture()
def fake_runs(monkeypatch) -> FakeRuns:
    """``uni3d.generate.generate`` replaced in this process (inline executor: ``workers=0``)."""
    fake = FakeRuns()
    monkeypatch.setattr("uni3d.generate.generate", fake.generate)
    return fake


@pytest.fixture()
def tiny() -> list[str]:
    """``TINY``, for a test that runs real generations in the batch."""
    return list(TINY)
