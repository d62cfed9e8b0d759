"""Scores of an exported mesh against Shapes World ground truth.

Geometry: Chamfer-L1 and F-score@0.05 after the best rotation about y (objects may come out at
any yaw), against every ground-truth shape, and the volumetric IoU at that yaw; colour: the
palette colour nearest in hue, or gray below a saturation (a surface's mean is paler than its parts), from the
vertex colours and from the shipped classifier reading the run's eight ``multiview.png`` views
(azimuth 0, 45, ..., 315 at elevation 15: fixed views, while training draws its views at random);
the mug's Janus test: the number of handles, read as the genus of the closed surface (which the other
shapes' surfaces should match too, ``SHAPE_GENUS``: a spongy mesh has many). Across
seeds, :func:`diversity` measures how much the free attribute of an under-specified prompt varies.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from uni3d.world.captions import parse_prompt
from uni3d.world.mesh import sample_surface
from uni3d.world.shapes import BOUNDING_RADIUS, COLOUR_NAMES, COLOURS, SHAPE_NAMES, sdf

F_THRESHOLD = 0.05
IOU_RESOLUTION = 64
"""Cells per side of the grid on which the volumetric IoU is counted."""
SHAPE_GENUS = {"sphere": 0, "cube": 0, "cylinder": 0, "cone": 0, "torus": 1, "mug": 1}
"""Handles of each ground-truth surface (tests/test_evaluate.py measures them on the ground-truth meshes)."""
MULTIVIEW_VIEWS = 8
"""Views in a run's multiview.png, one row (see ``uni3d.generate.write_outputs``)."""


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
    """(chamfer, fscore, yaw in degrees) minimising Chamfer over rotations about y: searched every
    10 degrees, then every degree, on a fifth of the points; scored on all of them at the best yaw."""
    gt = _gt_points(shape)
    sub_pred, sub_gt = pred[::5], gt[::5]
    sub_trees = (cKDTree(sub_pred), cKDTree(sub_gt))
    coarse = min((chamfer_fscore(sub_pred, sub_gt, a, sub_trees)[0], a) for a in range(0, 360, 10))
    fine = min((chamfer_fscore(sub_pred, sub_gt, a, sub_trees)[0], a)
               for a in np.arange(coarse[1] - 5, coarse[1] + 5.5, 1.0))
    ch, f = chamfer_fscore(pred, gt, fine[1])
    return ch, f, float(fine[1] % 360)


def saturation(rgb) -> float:
    """HSV saturation, (max - min) / max: 0 for a gray, unchanged when shading scales all channels."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return float((rgb.max() - rgb.min()) / max(1e-6, rgb.max()))


GRAY_SATURATION = 0.5 * min(saturation(c) for n, c in COLOURS.items() if n != "gray")
"""Below this saturation a colour reads as gray: half that of the palette's least saturated colour (purple's)."""


def _chroma(rgb) -> np.ndarray:
    """``rgb`` less its gray part (its smallest channel), as a unit vector: its hue, blind to shading (which
    scales every channel) and to a wash of white or gray (which adds the same to every channel)."""
    c = np.asarray(rgb, dtype=np.float64) - np.min(rgb)
    return c / max(1e-9, float(np.linalg.norm(c)))


def nearest_colour(rgb) -> str:
    """``gray`` when ``rgb`` is less saturated than ``GRAY_SATURATION``, else the other palette colour nearest
    in hue (the direction of its colour less its gray part).

    A mean over a surface is paler than its parts. Compared as whole RGB directions, a pale green
    (0.28, 0.55, 0.28) is nearer gray than green, and a pale red (0.72, 0.40, 0.41) nearer yellow than red."""
    if saturation(rgb) < GRAY_SATURATION:
        return "gray"
    hue = _chroma(rgb)
    sims = {n: float(np.dot(hue, _chroma(c))) for n, c in COLOURS.items() if n != "gray"}
    return max(sims, key=sims.get)


def colour_verdict(prompt: str, rgb) -> tuple[str, bool | None]:
    """The colour read from a mesh's mean colour ``rgb`` and whether it is the prompt's (None: the prompt leaves
    the colour free)."""
    want = parse_prompt(prompt).colour
    colour = nearest_colour(rgb)
    return colour, None if want is None else colour == want


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


def solid_occupancy(vertices: np.ndarray, faces: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Inside test of a closed mesh on the grid ``axis`` x ``axis`` x ``axis`` (x, y, z), (r, r, r) bool.

    Casts one ray along +y per (x, z) column and counts the surface crossings above each grid
    point: an odd count is inside. Exact for a closed surface, needs no spatial index; the columns
    are shifted by a tiny irrational offset so that no ray runs through a shared edge.
    """
    r, h = len(axis), float(axis[1] - axis[0])
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    cx, cz = axis + h * 5.437e-4, axis + h * 3.119e-4
    i0 = np.clip(np.ceil((tri[..., 0].min(1) - cx[0]) / h), 0, r).astype(np.int64)
    i1 = np.clip(np.floor((tri[..., 0].max(1) - cx[0]) / h), -1, r - 1).astype(np.int64)
    k0 = np.clip(np.ceil((tri[..., 2].min(1) - cz[0]) / h), 0, r).astype(np.int64)
    k1 = np.clip(np.floor((tri[..., 2].max(1) - cz[0]) / h), -1, r - 1).astype(np.int64)
    ni, nk = np.maximum(0, i1 - i0 + 1), np.maximum(0, k1 - k0 + 1)
    counts = ni * nk  # candidate columns of each triangle (its bounding box)
    t = np.repeat(np.arange(len(tri)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    ii, kk = i0[t] + local // np.maximum(nk[t], 1), k0[t] + local % np.maximum(nk[t], 1)
    a, e1, e2 = tri[t, 0], tri[t, 1] - tri[t, 0], tri[t, 2] - tri[t, 0]
    wx, wz = cx[ii] - a[:, 0], cz[kk] - a[:, 2]
    det = e1[:, 0] * e2[:, 2] - e2[:, 0] * e1[:, 2]
    safe = np.where(det == 0, 1.0, det)
    u, v = (wx * e2[:, 2] - e2[:, 0] * wz) / safe, (e1[:, 0] * wz - wx * e1[:, 2]) / safe
    hit = (det != 0) & (u >= 0) & (v >= 0) & (u + v <= 1)
    col, y = (ii * r + kk)[hit], (a[:, 1] + u * e1[:, 1] + v * e2[:, 1])[hit]
    base = min(float(axis[0]), float(y.min(initial=axis[0]))) - 1.0
    span = max(float(axis[-1]), float(y.max(initial=axis[-1]))) - base + 1.0
    keys = np.sort(col * span + (y - base))
    columns = np.arange(r * r)[:, None]
    above = np.searchsorted(keys, (columns + 1) * span) - np.searchsorted(keys, columns * span + (axis[None, :] - base), "right")
    return (above % 2 == 1).reshape(r, r, r).transpose(0, 2, 1)


def volumetric_iou(mesh: trimesh.Trimesh, shape: str, yaw: float = 0.0, resolution: int = IOU_RESOLUTION) -> float:
    """Intersection over union of the solid of ``mesh`` turned by ``yaw`` degrees about y (as in
    :func:`chamfer_fscore`) and the ground-truth ``shape``, counted on a ``resolution``^3 grid of
    cell centres over a cube that holds both."""
    verts = rotate_y(np.asarray(mesh.vertices, dtype=np.float64), yaw)
    extent = max(BOUNDING_RADIUS + 0.05, float(np.abs(verts).max()) + 1e-3)
    axis = (np.arange(resolution) + 0.5) / resolution * 2 * extent - extent
    pred = solid_occupancy(verts, mesh.faces, axis)
    grid = torch.as_tensor(np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1), dtype=torch.float32)
    gt = (sdf(grid, shape) < 0).numpy()
    union = (pred | gt).sum()
    return float((pred & gt).sum() / union) if union else 0.0


@cache
def _classifier():
    from uni3d.world.classifier import ShapesClassifier

    return ShapesClassifier.from_pretrained()


def multiview_panels(path: Path, views: int = MULTIVIEW_VIEWS) -> torch.Tensor:
    """The ``views`` images (views, 3, H, W) in [0, 1] of a run's one-row multiview.png (1 px white pad)."""
    import imageio.v3 as iio

    grid = np.asarray(iio.imread(path))[..., :3].astype(np.float32) / 255.0
    h, w = grid.shape[0] - 2, (grid.shape[1] - 1) // views - 1
    panels = [grid[1:1 + h, 1 + i * (w + 1): 1 + i * (w + 1) + w] for i in range(views)]
    return torch.from_numpy(np.stack(panels)).permute(0, 3, 1, 2).contiguous()


def score_views(images: torch.Tensor, prompt: str, classifier=None) -> dict:
    """The shipped classifier's reading of renders of one run: the majority shape and colour, and
    the fraction of views read as the prompt's shape and colour (None where the prompt leaves it free)."""
    want = parse_prompt(prompt)
    pred = (classifier or _classifier()).predict(images)
    shapes = [SHAPE_NAMES[i] for i in pred["shape"].tolist()]
    colours = [COLOUR_NAMES[i] for i in pred["colour"].tolist()]
    frac = lambda names, w: None if w is None else round(sum(n == w for n in names) / len(names), 4)  # noqa: E731
    return {"view_shape": Counter(shapes).most_common(1)[0][0], "view_colour": Counter(colours).most_common(1)[0][0],
            "view_shape_accuracy": frac(shapes, want.shape), "view_colour_accuracy": frac(colours, want.colour)}


@dataclass
class MeshScore:
    prompt: str
    nearest_shape: str
    chamfer: float
    """Chamfer-L1 to the prompt's shape, after the best yaw (world units)."""
    fscore: float
    """F-score at 0.05 to the prompt's shape, same yaw."""
    iou: float
    """Volumetric IoU with the prompt's shape, same yaw."""
    yaw: float
    chamfer_by_shape: dict
    colour: str
    colour_rgb: list
    handles: int
    janus_ok: bool | None
    """Mugs only: exactly one handle (a Janus mug grows one on every side)."""
    shape_correct: bool | None
    colour_correct: bool | None


def score_mesh(mesh: trimesh.Trimesh, prompt: str, n: int = 10000, iou_resolution: int = IOU_RESOLUTION) -> MeshScore:
    """Score one exported mesh of a Shapes World prompt."""
    want = parse_prompt(prompt)
    pts = np.asarray(trimesh.sample.sample_surface(mesh, n, seed=0)[0], dtype=np.float64)
    by_shape = {s: best_yaw(pts, s) for s in SHAPE_NAMES}
    nearest = min(by_shape, key=lambda s: by_shape[s][0])
    target = want.shape or nearest
    ch, f, yaw = by_shape[target]
    rgb = mesh_colour(mesh)
    colour, colour_correct = colour_verdict(prompt, rgb)
    handles = genus(mesh)
    return MeshScore(
        prompt=prompt, nearest_shape=nearest, chamfer=ch, fscore=f, iou=volumetric_iou(mesh, target, yaw, iou_resolution),
        yaw=yaw, chamfer_by_shape={s: round(v[0], 5) for s, v in by_shape.items()},
        colour=colour, colour_rgb=[round(float(x), 4) for x in rgb], handles=handles,
        janus_ok=handles == 1 if target == "mug" else None,
        shape_correct=None if want.shape is None else nearest == want.shape,
        colour_correct=colour_correct,
    )


def evaluate_run(run_dir: Path, extra: dict | None = None) -> dict:
    """Score a finished ``uni3d generate`` run and store ``evaluation.json`` beside it.

    ``extra`` (e.g. the batch's ``wall_seconds``) is stored with the scores; a ``wall_seconds``
    already in an earlier evaluation.json is kept. The file is written last and atomically, so
    its presence marks a finished, scored run.
    """
    import yaml

    from uni3d.errors import UserError

    run_dir = Path(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    meshes = sorted(run_dir.glob("mesh.*"))
    if not meshes:
        raise UserError(f"{run_dir} holds no mesh.* (did the run finish?)")
    mesh = trimesh.load(meshes[0], force="mesh")
    result = asdict(score_mesh(mesh, cfg["prompt"]))
    if (run_dir / "multiview.png").exists():
        result.update(score_views(multiview_panels(run_dir / "multiview.png"), cfg["prompt"]))
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        result.update({k: m.get(k) for k in ("train_seconds_this_session", "peak_memory_mb", "method", "divergence", "steps")})
    path = run_dir / "evaluation.json"
    if path.exists() and not (extra and "wall_seconds" in extra):
        try:
            previous = json.loads(path.read_text())
        except ValueError:
            previous = {}
        if "wall_seconds" in previous:
            result["wall_seconds"] = previous["wall_seconds"]
    result.update(extra or {})
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return result


def diversity(prompt: str, results: list[dict]) -> dict:
    """How the free attribute of an under-specified prompt varies over runs (seeds) of one method.

    ``a SHAPE`` leaves the colour free (read from the vertex colours), ``a COLOUR object`` the
    shape (the nearest ground-truth shape). Returns the number of distinct values, their entropy
    in bits, the entropy over its maximum ``log2(min(runs, 6))`` (0: always the same, 1: as
    spread as the runs allow), and how often the fixed attribute is right.
    """
    want = parse_prompt(prompt)
    if want.shape is not None and want.colour is not None:
        raise ValueError(f"{prompt!r} is fully specified: diversity is measured on 'a SHAPE' or 'a COLOUR object'")
    free, key, fixed = ("colour", "colour", "shape_correct") if want.colour is None else ("shape", "nearest_shape", "colour_correct")
    values = [r[key] for r in results]
    counts = Counter(values)
    n = len(values)
    probs = np.array([c / n for c in counts.values()]) if n else np.zeros(0)
    entropy = abs(float((probs * np.log2(probs)).sum())) if n else 0.0  # abs: one value gives 0, not -0
    cap = math.log2(min(n, len(SHAPE_NAMES if free == "shape" else COLOUR_NAMES))) if n > 1 else 0.0
    return {"prompt": prompt, "free": free, "runs": n, "distinct": len(counts), "entropy_bits": round(entropy, 4),
            "normalised_entropy": round(entropy / cap, 4) if cap else 0.0, "values": dict(counts),
            "fixed_correct": round(sum(bool(r[fixed]) for r in results) / n, 4) if n else None}


__all__ = ["score_mesh", "evaluate_run", "chamfer_fscore", "volumetric_iou", "score_views", "diversity", "nearest_colour",
           "colour_verdict",
           "genus", "COLOUR_NAMES"]
