"""Teacher samples for a prompt, drawn once and cached on disk: the "real" data of the ratio head."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from uni3d.cameras import Cameras, CameraSampler
from uni3d.teachers.base import Teacher
from uni3d.teachers.sampling import sample


def cache_dir() -> Path:
    """``$UNI3D_CACHE`` or ``~/.cache/uni3d``."""
    return Path(os.environ.get("UNI3D_CACHE", Path.home() / ".cache" / "uni3d"))


def cached_teacher_samples(
    teacher: Teacher, prompt: str, n: int, cfg_scale: float, steps: int = 50, seed: int = 0,
    directory: Path | None = None, sampler: str = "ddpm",
) -> tuple[torch.Tensor, Cameras]:
    """``n`` teacher samples of ``prompt`` in the teacher's space (x0), with their random training views.

    Keyed by the teacher's fingerprint, the prompt and the sampler settings; written atomically, so
    concurrent runs never read a half-written file.
    """
    key = {"teacher": teacher.fingerprint, "prompt": prompt, "n": n, "cfg": cfg_scale, "steps": steps,
           "seed": seed, "sampler": sampler}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    directory = (directory or cache_dir()) / "teacher_samples"
    path = directory / f"{digest}.pt"
    if path.exists():
        data = torch.load(path, weights_only=True)
        return data["x0"], Cameras(data["azimuth"], data["elevation"])
    g = torch.Generator().manual_seed(seed)
    cams = CameraSampler().sample(n, generator=g)
    images = sample(teacher, prompt, n, cams, cfg_scale=cfg_scale, steps=steps, generator=g, sampler=sampler)
    with torch.no_grad():
        x0 = teacher.encode(images)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    torch.save({"x0": x0, "azimuth": cams.azimuth, "elevation": cams.elevation, "key": json.dumps(key)}, tmp)
    os.replace(tmp, path)
    return x0, cams
