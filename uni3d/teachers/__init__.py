"""Teachers: frozen text-to-image diffusion models behind one contract (see base.Teacher)."""

from __future__ import annotations

from pathlib import Path

from uni3d.teachers.base import Conditioning, Teacher

__all__ = ["Conditioning", "Teacher", "load_teacher"]


def load_teacher(name: str = "shapes", device: str = "cpu") -> Teacher:
    """``shapes`` (the embedded teacher), a shapes teacher directory, or a Stable Diffusion
    checkpoint (local directory or hub id)."""
    from uni3d.teachers.shapes import ShapesTeacher

    if name == "shapes":
        return ShapesTeacher.from_pretrained().to(device)
    path = Path(name)
    if _is_shapes(path):
        return ShapesTeacher.from_pretrained(path).to(device)
    from uni3d.teachers.stable_diffusion import StableDiffusionTeacher

    return StableDiffusionTeacher.from_pretrained(name, device=device)


def _is_shapes(path: Path) -> bool:
    """A shapes teacher directory: it has teacher.json, or a model_index.json naming ShapesTeacher."""
    import json

    if (path / "teacher.json").is_file():
        return True
    try:
        return json.loads((path / "model_index.json").read_text()).get("_class_name") == "ShapesTeacher"
    except (OSError, ValueError):
        return False
