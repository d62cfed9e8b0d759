"""``uni3d generate``: prompt -> trained scene -> mesh, renders, turntable and the numbers of the run."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import resource
import shutil
import time
from pathlib import Path

import torch

from uni3d.cameras import Cameras, CameraSampler
from uni3d.config import RUN_KEYS, GenerateConfig, load_run_config, save_run_config
from uni3d.errors import UserError

FIXED_VIEW = (20.0, 15.0)
"""Azimuth and elevation of the 2D (image) scene's single view."""


def default_name(cfg: GenerateConfig) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", cfg.prompt.lower()).strip("-") or "run"
    method = cfg.guidance.method if cfg.guidance.method != "uni-instruct" else f"ui-{cfg.guidance.divergence}"
    return f"{slug}-{method}-s{cfg.train.seed}"


def resolve_run_dir(cfg: GenerateConfig) -> Path:
    """Validate --name / --out / --resume / --overwrite before anything is written."""
    if cfg.name is not None and (not cfg.name or "/" in cfg.name or "\\" in cfg.name or cfg.name in (".", "..")):
        raise UserError(f"run name {cfg.name!r} must be a plain name without path separators")
    out = cfg.out if cfg.out is not None else Path("runs") / (cfg.name or default_name(cfg))
    if cfg.resume and cfg.overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory")
        if cfg.resume:
            if not (out / "config.yaml").exists():
                raise UserError(f"--resume: {out} holds no config.yaml of a uni3d run")
        elif not cfg.overwrite:
            raise UserError(f"--out {out} already exists: pass --resume to continue it or --overwrite to replace it")
    elif cfg.resume:
        raise UserError(f"--resume: {out} does not exist")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out} is not writable (no write permission on {parent})")
    return out


def validate(cfg: GenerateConfig) -> None:
    if not cfg.prompt.strip():
        raise UserError("empty prompt: say what to make, e.g. uni3d generate \"a red mug\"")
    cfg.guidance.validate()
    for name, value in (("steps", cfg.train.steps), ("views", cfg.train.views), ("resolution", cfg.train.resolution),
                        ("fake-steps", cfg.train.fake_steps), ("checkpoint-every", cfg.train.checkpoint_every),
                        ("export.resolution", cfg.export.resolution), ("nerf.samples-per-ray", cfg.nerf.samples_per_ray)):
        if not value > 0:
            raise UserError(f"--{name} must be positive, got {value}")
    if cfg.train.lr_scale <= 0 or cfg.fake.lr <= 0:
        raise UserError("learning rates must be positive")
    bad = [f for f in cfg.formats if f not in ("glb", "obj", "ply")]
    if bad:
        raise UserError(f"unknown mesh format(s) {', '.join(bad)}: use glb, obj or ply")


def build_scene(cfg: GenerateConfig):
    if cfg.scene == "nerf":
        from uni3d.scenes.nerf import NeRFScene

        return NeRFScene(cfg.nerf, seed=cfg.train.seed, device=cfg.device)
    if cfg.scene == "gaussians":
        from uni3d.scenes.gaussians import GaussianScene

        return GaussianScene(cfg.gaussians, seed=cfg.train.seed)
    if cfg.scene == "image":
        from uni3d.scenes.image import PYRAMID_DETAIL_LR, ImageScene, pyramid_levels

        return ImageScene(1, cfg.train.resolution, seed=cfg.train.seed, levels=pyramid_levels(cfg.train.resolution),
                          detail_lr=PYRAMID_DETAIL_LR)
    raise UserError(f"unknown scene {cfg.scene!r}")


def generate(cfg: GenerateConfig) -> Path:
    """Run a whole generation; returns the run directory."""
    from uni3d.teachers import load_teacher
    from uni3d.training import Trainer, outside_unet_share

    out = resolve_run_dir(cfg)
    if cfg.resume:
        saved = load_run_config(out / "config.yaml")
        cfg = dataclasses.replace(cfg, out=out, **{k: getattr(saved, k) for k in RUN_KEYS})
    validate(cfg)
    torch.manual_seed(cfg.train.seed)
    teacher = load_teacher(cfg.teacher, cfg.device)
    teacher.embed(cfg.prompt)  # vocabulary errors before anything is written
    scene = build_scene(cfg).to(cfg.device)
    fixed = Cameras.from_angles(*FIXED_VIEW) if cfg.scene == "image" else None
    trainer = Trainer(cfg.train, cfg.guidance, cfg.fake, scene, teacher, cfg.prompt, out, fixed_cameras=fixed)
    if out.exists() and cfg.overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.resume and (out / "checkpoint.pt").exists():
        trainer.load_checkpoint()
    else:
        save_run_config(cfg, out / "config.yaml")
    start = time.perf_counter()
    last = trainer.fit(progress=cfg.progress)
    train_seconds = time.perf_counter() - start
    scene.eval()
    outputs = write_outputs(cfg, scene, out)
    metrics = {
        "prompt": cfg.prompt, "method": cfg.guidance.method, "divergence": cfg.guidance.divergence,
        "scene": cfg.scene, "teacher": teacher.name, "steps": trainer.step, "skipped_steps": trainer.skipped,
        "train_seconds_this_session": round(train_seconds, 2),
        "seconds_per_step": {k: round(v / max(1, trainer.step), 4) for k, v in trainer.timings.items()},
        "outside_unet_share": round(outside_unet_share(trainer.timings), 4),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "final": last, **outputs,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return out


def load_run(run_dir: Path):
    """The config and the trained scene (on the CPU) of a run directory of ``uni3d generate``."""
    if not (run_dir / "config.yaml").exists() or not (run_dir / "checkpoint.pt").exists():
        raise UserError(f"{run_dir} is not a uni3d run (config.yaml and checkpoint.pt are needed)")
    cfg = load_run_config(run_dir / "config.yaml")
    if cfg.scene == "image":
        raise UserError("an image (2D) run has no 3D scene to export")
    scene = build_scene(dataclasses.replace(cfg, device="cpu"))
    scene.load_state_dict(torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["scene"])
    return cfg, scene.eval()


def reexport(run_dir: Path, export, formats: tuple[str, ...]) -> None:
    """Mesh a finished run again with the export settings ``export`` (an ``ExportConfig``), in ``formats``, and
    record them: metrics.json's mesh fields, then config.yaml's ``export`` (last, so that a re-export cut short
    is still seen to be one that differs)."""
    cfg, scene = load_run(run_dir)
    for old in run_dir.glob("mesh.*"):
        old.unlink()
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    metrics.update(write_mesh(scene, export, formats, run_dir))
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    tmp = run_dir / "config.yaml.tmp"
    save_run_config(dataclasses.replace(cfg, export=export), tmp)
    tmp.replace(run_dir / "config.yaml")


@torch.no_grad()
def write_outputs(cfg: GenerateConfig, scene, out: Path) -> dict:
    """Multi-view PNG, turntable GIF and the mesh (3D scenes)."""
    import imageio.v3 as iio

    from uni3d.teachers.sampling import image_grid

    to8 = lambda x: (x.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")  # noqa: E731
    if cfg.scene == "image":
        rgb = scene.render(Cameras.from_angles(*FIXED_VIEW), None).rgb
        iio.imwrite(out / "image.png", to8(rgb[0]))
        return {"image": "image.png"}
    sampler = CameraSampler()
    views = scene.render(sampler.turntable(8, elevation=15.0), 96).rgb
    iio.imwrite(out / "multiview.png", to8(image_grid(views.cpu(), cols=8)))
    frames = torch.cat([scene.render(sampler.turntable(36, elevation=15.0)[i:i + 12], 96).rgb for i in range(0, 36, 12)])
    iio.imwrite(out / "turntable.gif", [to8(f) for f in frames], duration=80, loop=0)
    return {"multiview": "multiview.png", "turntable": "turntable.gif", **write_mesh(scene, cfg.export, cfg.formats, out)}


def write_mesh(scene, export, formats, out: Path) -> dict:
    """The scene's mesh (``export``: an ``ExportConfig``) as OUT/mesh.FORMAT for each of ``formats``; returns
    metrics.json's mesh fields."""
    from uni3d.export import extract_mesh, mesh_route, save_mesh

    mesh = extract_mesh(scene, export)
    meshes = [save_mesh(mesh, out / f"mesh.{fmt}").name for fmt in formats]
    return {"meshes": meshes, "mesh_route": mesh_route(export), "mesh_vertices": len(mesh.vertices),
            "mesh_faces": len(mesh.faces)}
