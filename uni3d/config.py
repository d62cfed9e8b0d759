"""The configuration of a run, presets (sparse YAML overrides) and the run's plain-YAML record."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro
import yaml

from uni3d.errors import UserError
from uni3d.export import ExportConfig
from uni3d.guidance.config import METHODS, GuidanceConfig
from uni3d.scenes.gaussians import GaussiansConfig
from uni3d.scenes.nerf import NeRFConfig
from uni3d.teachers.fake_score import FakeScoreConfig
from uni3d.training import TrainConfig

Flat = tyro.conf.OmitArgPrefixes


@dataclass
class GenerateConfig:
    """Prompt to mesh: distil the teacher's guidance into a 3D scene (or images), then export a mesh."""

    prompt: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="PROMPT")] = ""
    """What to make, e.g. "a red mug"."""
    scene: Literal["nerf", "gaussians", "image"] = "nerf"
    """The representation: nerf (default), gaussians, or image (2D: one image, no mesh)."""
    teacher: str = "shapes"
    """"shapes" (embedded), a shapes teacher directory, or a Stable Diffusion directory or hub id."""
    out: Path | None = None
    """Run directory (default: runs/NAME)."""
    name: str | None = None
    """Run name under runs/ (default: from the prompt, method and seed); no path separators."""
    config: Path | None = None
    """A preset YAML (configs/*.yaml) applied before the flags."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint (its config.yaml is used)."""
    overwrite: bool = False
    """Replace an existing run directory."""
    device: str = "cpu"
    """torch device."""
    formats: tuple[str, ...] = ("glb",)
    """Mesh formats to write (glb, obj, ply)."""
    progress: bool = True
    """Show a progress bar."""
    guidance: Annotated[GuidanceConfig, Flat] = field(default_factory=GuidanceConfig)
    train: Annotated[TrainConfig, Flat] = field(default_factory=TrainConfig)
    fake: FakeScoreConfig = field(default_factory=FakeScoreConfig)
    nerf: NeRFConfig = field(default_factory=NeRFConfig)
    gaussians: GaussiansConfig = field(default_factory=GaussiansConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


RUN_KEYS = ("prompt", "scene", "teacher", "guidance", "train", "fake", "nerf", "gaussians", "export")
"""What config.yaml records: everything that defines the result."""


def to_plain(obj):
    """Dataclasses, tuples and paths as plain YAML-able values."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def apply_overrides(obj, overrides: dict, where: str = ""):
    """A copy of dataclass ``obj`` with the nested ``overrides`` applied; unknown keys are errors."""
    if not isinstance(overrides, dict):
        raise UserError(f"expected a mapping at {where or 'the top level'}, got {type(overrides).__name__}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise UserError(f"unknown setting {where + key!r}; known: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = apply_overrides(current, value, f"{where}{key}.")
        else:
            changes[key] = _coerce(value, hints[key], where + key)
    return dataclasses.replace(obj, **changes)


def _coerce(value, hint, key: str = ""):
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _coerce(value, typing.get_args(hint)[0], key)
    if hint is Path or (value is not None and Path in typing.get_args(hint)):
        return Path(value)
    if value is not None and (hint is float or (origin in (typing.Union, types.UnionType) and float in typing.get_args(hint))):
        # YAML 1.1 reads 3e-3 (no dot) as a string
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"setting {key!r} must be a number, got {value!r}") from None
    if origin is dict and isinstance(value, dict):
        value_hint = typing.get_args(hint)[1]
        return {k: _coerce(v, value_hint, f"{key}.{k}") for k, v in value.items()}
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    return value


def load_preset(path: Path, base: GenerateConfig) -> GenerateConfig:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"preset {path} not found; presets live in configs/") from None
    except yaml.YAMLError as exc:
        raise UserError(f"preset {path} is not valid YAML: {exc}".splitlines()[0]) from None
    return apply_overrides(base, data)


def preset_path(method: str) -> Path:
    """The preset of a method name (``configs/<name>.yaml`` here or in the source tree) or a YAML path."""
    if method.endswith((".yaml", ".yml")) or "/" in method:
        if not Path(method).is_file():
            raise UserError(f"preset {method} not found")
        return Path(method)
    dirs = [Path("configs"), Path(__file__).resolve().parents[1] / "configs"]
    for d in dirs:
        if (d / f"{method}.yaml").is_file():
            return d / f"{method}.yaml"
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise UserError(f"unknown method {method!r}: a preset name ({', '.join(known)}) or a preset YAML path")


def method_preset(method: str, divergence: str) -> Path | None:
    """The preset that ``--method`` (and ``--divergence``) stand for: ``configs/sds.yaml``, ``configs/vsd.yaml`` or
    ``configs/uni-instruct-DIVERGENCE.yaml``; None for a divergence without a preset of its own, or for an unknown
    method (the flag parser then names the choices). A missing ``configs/`` directory is an error."""
    if method not in METHODS:
        return None  # the flag parser then names the choices
    name = f"uni-instruct-{divergence}" if method == "uni-instruct" else method
    dirs = [d for d in (Path("configs"), Path(__file__).resolve().parents[1] / "configs") if d.is_dir()]
    if not dirs:  # an install without the source tree: every method would silently run the bare defaults
        raise UserError("the presets directory configs/ was not found: run uni3d from its source checkout "
                        "(pip install -e .) or pass --config PRESET.yaml")
    try:
        return preset_path(name)
    except UserError:
        if method != "uni-instruct":
            raise
        return None


def save_run_config(cfg: GenerateConfig, path: Path) -> None:
    plain = to_plain(cfg)
    path.write_text(yaml.safe_dump({k: plain[k] for k in RUN_KEYS}, sort_keys=False))


RETIRED = {"gaussians": ("tile",)}
"""Settings that earlier runs' config.yaml may hold and that no longer exist (the rasteriser's tile side, before
it evaluated pixel-Gaussian pairs): dropped when a run is loaded, so that it still exports and resumes."""


def without_retired(data):
    """A run's config.yaml contents (as loaded) without the RETIRED settings; anything else is returned as is."""
    if not isinstance(data, dict):
        return data
    return {section: {k: v for k, v in value.items() if k not in RETIRED.get(section, ())}
            if isinstance(value, dict) else value for section, value in data.items()}


def load_run_config(path: Path, base: GenerateConfig | None = None) -> GenerateConfig:
    return apply_overrides(base or GenerateConfig(), without_retired(yaml.safe_load(path.read_text())))
