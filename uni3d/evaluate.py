"""Scores of an exported mesh against Shapes World ground truth.

Geometry: Chamfer-L1 and F-score@0.05 after the best rotation about y (objects may come out at
any yaw), against every ground-truth shape; colour: the palette colour nearest in direction (so
shading's uniform darkening does not matter); the mug's Janus test: the number of handles, read
as the genus of the closed surface.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from uni3d.world.captions import parse_prompt
from uni3d.world.mesh import sample_surface
from uni3d.world.shapes import COLOUR_NAMES, COLOURS, SHAPE_NAMES

F_THRESHOLD = 0.05


@cache
def _gt_points(shape: str, n: int = 10000) -> np.ndarray:
    return sample_surface(shape, n, seed=1)


def rotate_y(points: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return points @ rot.T


def chamfer_fscore(pred: np.ndarray, gt: np.ndarray, yaw: float = 0.0,
                   trees: tuple[cKDTree, cKDTree] | None = None) -> tuple[float, float]:
    """Chamfer-L1 (mean of the two mean nearest distances) and F-score at F_THRESHOLD, with ``pred``
    rotated by ``yaw`` degrees about y (the trees of pred and gt are built once and reused)."""
    tree_pred, tree_gt = trees or (cKDTree(pred), cKDTree(gt))
    d_pg, _ = tree_gt.query(rotate_y(pred, yaw))
    d_gp, _ = tree_pred.query(rotate_y(gt, -yaw))
    precision, recall = (d_pg < F_THRESHOLD).mean(), (d_gp < F_THRESHOLD).mean()
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return float(0.5 * (d_pg.mean() + d_gp.mean())), float(f)


def best_yaw(pred: np.ndarray, shape: str) -> tuple[float, float, float]:
    """(chamfer, fscore, yaw in degrees) minimising Chamfer over rotations about y."""
    gt = _gt_points(shape)
    trees = (cKDTree(pred), cKDTree(gt))
    coarse = min((chamfer_fscore(pred, gt, a, trees)[0], a) for a in range(0, 360, 10))
    fine = min((chamfer_fscore(pred, gt, a, trees)[0], a) for a in np.arange(coarse[1] - 5, coarse[1] + 5.5, 1.0))
    ch, f = chamfer_fscore(pred, gt, fine[1], trees)
    return ch, f, float(fine[1] % 360)


def nearest_colour(rgb: np.ndarray) -> str:
    """The palette colour whose direction in RGB is closest to ``rgb`` (shading scales all channels)."""
    v = rgb / max(1e-6, np.linalg.norm(rgb))
    sims = {n: float(np.dot(v, np.asarray(c) / np.linalg.norm(c))) for n, c in COLOURS.items()}
    return max(sims, key=sims.get)


def mesh_colour(mesh: trimesh.Trimesh) -> np.ndarray:
    """Area-weighted mean vertex colour in [0, 1]."""
    colours = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0
    face_rgb = colours[mesh.faces].mean(1)
    w = mesh.area_faces
    return (face_rgb * w[:, None]).sum(0) / max(1e-12, w.sum())


def genus(mesh: trimesh.Trimesh) -> int:
    """Handles of a closed surface: (2 - Euler characteristic) / 2, summed over components."""
    total = 0
    for part in mesh.split(only_watertight=False):
        total += max(0, round((2 - part.euler_number) / 2))
    return total


@dataclass
class MeshScore:
    prompt: str
    nearest_shape: str
    chamfer: float
    """Chamfer-L1 to the prompt's shape, after the best yaw (world units)."""
    fscore: float
    """F-score at 0.05 to the prompt's shape, same yaw."""
    yaw: float
    chamfer_by_shape: dict
    colour: str
    colour_rgb: list
    handles: int
    shape_correct: bool | None
    colour_correct: bool | None


def score_mesh(mesh: trimesh.Trimesh, prompt: str, n: int = 10000) -> MeshScore:
    """Score one exported mesh of a Shapes World prompt."""
    want = parse_prompt(prompt)
    pts = np.asarray(trimesh.sample.sample_surface(mesh, n, seed=0)[0], dtype=np.float64)
    by_shape = {s: best_yaw(pts, s) for s in SHAPE_NAMES}
    nearest = min(by_shape, key=lambda s: by_shape[s][0])
    target = want.shape or nearest
    ch, f, yaw = by_shape[target]
    rgb = mesh_colour(mesh)
    colour = nearest_colour(rgb)
    return MeshScore(
        prompt=prompt, nearest_shape=nearest, chamfer=ch, fscore=f, yaw=yaw,
        chamfer_by_shape={s: round(v[0], 5) for s, v in by_shape.items()},
        colour=colour, colour_rgb=[round(float(x), 4) for x in rgb], handles=genus(mesh),
        shape_correct=None if want.shape is None else nearest == want.shape,
        colour_correct=None if want.colour is None else colour == want.colour,
    )


def evaluate_run(run_dir: Path) -> dict:
    """Score a finished ``uni3d generate`` run and store ``evaluation.json`` beside it."""
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    meshes = sorted(run_dir.glob("mesh.*"))
    if not meshes:
        from uni3d.errors import UserError

        raise UserError(f"{run_dir} holds no mesh.* (did the run finish?)")
    mesh = trimesh.load(meshes[0], force="mesh")
    result = asdict(score_mesh(mesh, cfg["prompt"]))
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        result.update({k: m.get(k) for k in ("train_seconds_this_session", "peak_memory_mb", "method", "divergence")})
    (run_dir / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


__all__ = ["score_mesh", "evaluate_run", "chamfer_fscore", "nearest_colour", "genus", "COLOUR_NAMES"]
