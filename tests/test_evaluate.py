"""Metric functions on ground-truth meshes."""

import numpy as np
import pytest
import trimesh

from uni3d.evaluate import genus, nearest_colour, score_mesh
from uni3d.world.mesh import ground_truth_mesh
from uni3d.world.shapes import COLOURS, SHAPE_NAMES


@pytest.fixture(scope="module")
def meshes():
    return {s: ground_truth_mesh(s, "red", 96) for s in SHAPE_NAMES}


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


def test_a_pale_colour_keeps_its_hue():
    """A surface's mean colour is paler than its parts: a third light gray, every palette colour still reads as itself;
    a gray with a tint reads gray."""
    for name, rgb in COLOURS.items():
        assert nearest_colour(np.asarray(rgb) * 2 / 3 + 0.8 / 3) == name
    assert nearest_colour([0.28, 0.55, 0.28]) == "green" and nearest_colour([0.72, 0.40, 0.41]) == "red"
    assert nearest_colour([0.56, 0.66, 0.69]) == "gray"  # a bluish gray


def test_handles_of_every_ground_truth_shape_are_its_genus(meshes):
    from uni3d.evaluate import SHAPE_GENUS

    assert set(SHAPE_GENUS) == set(meshes)
    assert {shape: genus(mesh) for shape, mesh in meshes.items()} == SHAPE_GENUS


def test_volumetric_iou(meshes):
    from uni3d.evaluate import volumetric_iou

    assert volumetric_iou(meshes["mug"], "mug") > 0.99 and volumetric_iou(meshes["torus"], "torus") > 0.99
    assert volumetric_iou(meshes["cube"], "sphere") < 0.75 and volumetric_iou(meshes["torus"], "mug") < 0.2
    mug = meshes["mug"].copy()
    mug.apply_transform(trimesh.transformations.rotation_matrix(np.radians(130), [0, 1, 0]))
    assert volumetric_iou(mug, "mug", yaw=230) > 0.99 > 0.92 > volumetric_iou(mug, "mug", yaw=0)
    s = score_mesh(mug, "a mug", n=3000)
    assert s.iou > 0.98 and s.janus_ok is True


def test_the_classifier_reads_rendered_views(tmp_path):
    import imageio.v3 as iio

    from uni3d.cameras import CameraSampler
    from uni3d.evaluate import multiview_panels, score_views
    from uni3d.teachers.sampling import image_grid
    from uni3d.world.render import render

    views = render(["mug"] * 8, ["green"] * 8, CameraSampler().turntable(8, elevation=15.0), resolution=48)
    iio.imwrite(tmp_path / "multiview.png", (image_grid(views, cols=8).permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
    panels = multiview_panels(tmp_path / "multiview.png")
    assert panels.shape == (8, 3, 48, 48) and (panels - views).abs().max() < 1 / 255 + 1e-6
    r = score_views(panels, "a green mug")
    assert r["view_shape"] == "mug" and r["view_colour"] == "green"
    assert r["view_shape_accuracy"] >= 0.75 and r["view_colour_accuracy"] == 1.0
    assert score_views(panels, "a mug")["view_colour_accuracy"] is None


def test_diversity_of_an_underspecified_prompt():
    from uni3d.evaluate import diversity

    runs = [{"colour": c, "shape_correct": True} for c in ("red", "red", "blue", "gray")]
    d = diversity("a mug", runs)
    assert d["free"] == "colour" and d["distinct"] == 3 and d["entropy_bits"] == 1.5 and d["fixed_correct"] == 1.0
    assert d["normalised_entropy"] == 0.75  # 1.5 bits of at most log2(4)
    same = diversity("a red object", [{"nearest_shape": "cube", "colour_correct": c} for c in (True, False)])
    assert same["free"] == "shape" and same["distinct"] == 1 and same["normalised_entropy"] == 0.0
    assert f"{same['normalised_entropy']:.2f}" == "0.00"  # not -0.00 in the reports
    assert same["fixed_correct"] == 0.5
    with pytest.raises(ValueError, match="fully specified"):
        diversity("a red mug", runs)


def test_evaluate_command_prints_and_stores(meshes, tmp_path, capsys):
    import json

    from uni3d.cli import main

    (tmp_path / "config.yaml").write_text("prompt: a red cube\n")
    meshes["cube"].export(tmp_path / "mesh.glb")
    (tmp_path / "evaluation.json").write_text('{"wall_seconds": 12.5}')  # from the batch that made the run
    assert main(["evaluate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "IoU 1.000" in out and "wall 12 s" in out  # 12.5 rounds to even
    stored = json.loads((tmp_path / "evaluation.json").read_text())
    assert stored["iou"] > 0.99 and stored["shape_correct"] and stored["wall_seconds"] == 12.5
    assert not (tmp_path / "evaluation.json.tmp").exists()


def test_evaluate_prints_the_training_time_of_a_single_run(meshes, tmp_path, capsys):
    from uni3d.cli import main

    (tmp_path / "config.yaml").write_text("prompt: a red cube\n")
    meshes["cube"].export(tmp_path / "mesh.glb")
    (tmp_path / "metrics.json").write_text('{"train_seconds_this_session": 61.4, "peak_memory_mb": 900.0}')
    assert main(["evaluate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "training 61 s" in out and "peak 900.0 MB" in out
