"""Metric functions on ground-truth meshes."""

import numpy as np
import pytest
import trimesh

from uni3d.evaluate import genus, nearest_colour, score_mesh
from uni3d.world.mesh import ground_truth_mesh
from uni3d.world.shapes import COLOURS


@pytest.fixture(scope="module")
def meshes():
    return {s: ground_truth_mesh(s, "red", 96) for s in ("cube", "mug", "torus", "sphere")}


def test_a_shape_scores_near_zero_against_itself_at_any_yaw(meshes):
    mug = meshes["mug"].copy()
    mug.apply_transform(trimesh.transformations.rotation_matrix(np.radians(130), [0, 1, 0]))
    s = score_mesh(mug, "a red mug", n=6000)
    assert s.nearest_shape == "mug" and s.shape_correct
    assert s.chamfer < 0.015 and s.fscore > 0.99
    assert abs(((s.yaw - 230) + 180) % 360 - 180) < 3  # undoes the 130 degree turn
    assert s.colour == "red" and s.handles == 1


def test_distinct_shapes_score_far_apart(meshes):
    s = score_mesh(meshes["cube"], "a red sphere", n=6000)
    assert s.nearest_shape == "cube" and s.shape_correct is False
    assert s.chamfer_by_shape["sphere"] >= 0.05


def test_colour_direction_ignores_shading():
    for name, rgb in COLOURS.items():
        assert nearest_colour(np.asarray(rgb) * 0.45) == name


def test_handles(meshes):
    assert genus(meshes["sphere"]) == 0 and genus(meshes["torus"]) == 1 and genus(meshes["mug"]) == 1
