"""A batch of runs: methods x prompts x seeds, from a YAML spec or flags, and where each run goes.

A spec (``configs/benchmark/full.yaml``)::

    methods: [sds, vsd, uni-instruct-fkl]   # presets in configs/, or paths to preset YAMLs
    groups:                                 # prompt sets, each with its own seeds
      - {prompts: full, seeds: [0, 1, 2]}   # full (36), under (12), shape-only (6), colour-only (6), or a list
      - {prompts: under, seeds: [0, 1, 2, 3, 4, 5, 6, 7]}
    overrides: {train: {steps: 800}}        # applied to every run, after the method's preset
    teacher: shapes
    scene: nerf

Run ``method`` x ``prompt`` x ``seed`` goes to ``OUT/runs/<method>/<prompt-slug>/s<seed>``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from uni3d.config import GenerateConfig, apply_overrides, load_preset, preset_path
from uni3d.errors import UserError
from uni3d.world.captions import (
    COLOUR_ONLY_PROMPTS,
    FULL_PROMPTS,
    SHAPE_ONLY_PROMPTS,
    UNDERSPECIFIED_PROMPTS,
    parse_prompt,
)

PROMPT_SETS = {"full": FULL_PROMPTS, "under": UNDERSPECIFIED_PROMPTS, "shape-only": SHAPE_ONLY_PROMPTS,
               "colour-only": COLOUR_ONLY_PROMPTS}
"""Names that stand for a whole Shapes World prompt family in ``prompts``."""
DEFAULT_METHODS = ("sds", "vsd", "uni-instruct-fkl")
SCENES = ("nerf", "gaussians")


@dataclass
class PromptGroup:
    """Prompts run with the same seeds."""

    prompts: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])


@dataclass
class BatchSpec:
    """What a batch runs: every method on every prompt of every group, with that group's seeds."""

    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    groups: list[PromptGroup] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)
    """Settings for every run (nested like config.yaml), applied after the method's preset."""
    teacher: str = "shapes"
    scene: str = "nerf"


@dataclass(frozen=True)
class RunTask:
    """One run of the batch, with the full config that makes it (``config.out`` is its directory)."""

    method: str
    prompt: str
    seed: int
    config: GenerateConfig
    reexport: bool = False
    """The run is finished but was meshed with other export settings: mesh it again from its checkpoint and
    score it, without training."""

    @property
    def run_dir(self) -> Path:
        return self.config.out

    @property
    def key(self) -> str:
        return run_key(self.method, self.prompt, self.seed)


def slug(prompt: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-") or "run"


def run_key(method: str, prompt: str, seed: int) -> str:
    """``<method>/<prompt-slug>/s<seed>``: the run's path under ``OUT/runs``."""
    return f"{method}/{slug(prompt)}/s{seed}"


def expand_prompts(prompts: str | list[str]) -> list[str]:
    """Prompt-set names (``full``, ``under``, ...) replaced by their prompts; every prompt checked."""
    items = [prompts] if isinstance(prompts, str) else list(prompts)
    out: list[str] = []
    for p in items:
        for q in PROMPT_SETS.get(p, [p]):
            try:
                parse_prompt(q)
            except ValueError as exc:
                raise UserError(f"{exc} (or a prompt set: {', '.join(PROMPT_SETS)})") from None
            if q not in out:
                out.append(q)
    return out


def load_spec(path: Path) -> BatchSpec:
    """A BatchSpec from YAML: ``methods``, then either ``groups`` or ``prompts`` + ``seeds``, and
    optionally ``overrides``, ``teacher``, ``scene``."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"spec {path} not found") from None
    except yaml.YAMLError as exc:
        raise UserError(f"spec {path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise UserError(f"spec {path} must be a mapping")
    known = {"methods", "groups", "prompts", "seeds", "overrides", "teacher", "scene"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"spec {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if "groups" in data and ("prompts" in data or "seeds" in data):
        raise UserError(f"spec {path}: give either groups or prompts + seeds, not both")
    groups = data.get("groups")
    if groups is None:
        groups = [{"prompts": data["prompts"], "seeds": data.get("seeds", [0])}] if "prompts" in data else []
    spec = BatchSpec(groups=[_group(g, path) for g in groups], overrides=data.get("overrides") or {},
                     teacher=str(data.get("teacher", "shapes")), scene=str(data.get("scene", "nerf")))
    if "methods" in data:
        spec.methods = [str(m) for m in _list(data["methods"], "methods", path)]
    return spec


def _list(value, what: str, path) -> list:
    if isinstance(value, (str, int)):
        return [value]
    if not isinstance(value, list):
        raise UserError(f"spec {path}: {what} must be a list")
    return value


def _group(g, path) -> PromptGroup:
    if not isinstance(g, dict) or "prompts" not in g or set(g) - {"prompts", "seeds"}:
        raise UserError(f"spec {path}: every group is a mapping with prompts and seeds")
    seeds = _list(g.get("seeds", [0]), "seeds", path)
    if not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise UserError(f"spec {path}: seeds must be non-negative integers, got {seeds}")
    return PromptGroup(expand_prompts(_list(g["prompts"], "prompts", path)), list(seeds))


def parse_override(items: list[str] | tuple[str, ...]) -> dict:
    """``["train.steps=20", "export.resolution=64"]`` -> nested dict; values read as YAML."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--override {item!r}: expected KEY=VALUE, e.g. train.steps=200")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out


def merge(base: dict, extra: dict) -> dict:
    """Nested dicts merged, ``extra`` winning."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def method_label(method: str) -> str:
    return Path(method).stem if method.endswith((".yaml", ".yml")) or "/" in method else method


def plan(spec: BatchSpec, out: Path) -> list[RunTask]:
    """Every run of the batch with its validated config, in method, group, prompt, seed order."""
    from uni3d.generate import validate

    if not spec.methods:
        raise UserError("no methods: pass --methods or give methods in the spec")
    if not spec.groups or not any(g.prompts and g.seeds for g in spec.groups):
        raise UserError("no prompts: pass --prompts (a prompt or a set: full, under, ...) or give them in the spec")
    if spec.scene not in SCENES:
        raise UserError(f"scene {spec.scene!r} cannot be compared: use {' or '.join(SCENES)} (runs are scored as meshes)")
    labels = [method_label(m) for m in spec.methods]
    if len(set(labels)) != len(labels):
        raise UserError(f"methods repeat: {', '.join(labels)}")
    tasks, seen = [], set()
    for method, label in zip(spec.methods, labels):
        base = load_preset(preset_path(method), GenerateConfig())
        base = apply_overrides(base, spec.overrides)
        base = dataclasses.replace(base, teacher=spec.teacher, scene=spec.scene, progress=False, resume=False,
                                   overwrite=False, config=None, name=None)
        for group in spec.groups:
            for prompt in group.prompts:
                for seed in group.seeds:
                    key = run_key(label, prompt, seed)
                    if key in seen:
                        continue
                    seen.add(key)
                    cfg = dataclasses.replace(base, prompt=prompt, out=Path(out) / "runs" / key,
                                              train=dataclasses.replace(base.train, seed=seed))
                    validate(cfg)
                    tasks.append(RunTask(label, prompt, seed, cfg))
    return tasks
