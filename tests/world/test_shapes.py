"""The Shapes World spec pinned: SDF values at hand-computed points."""

import math

import pytest
import torch

from uni3d.world.shapes import COLOURS, SHAPE_NAMES, sdf

CASES = [
    ("sphere", (0, 0, 0), -0.50),
    ("sphere", (1, 0, 0), 0.50),
    ("sphere", (0, 0.3, 0.4), 0.0),
    ("cube", (0, 0, 0), -0.38),
    ("cube", (1, 0, 0), 0.62),
    ("cube", (0, 0.2, 0), -0.18),
    ("cube", (1, 1, 1), math.sqrt(3) * 0.62),
    ("cylinder", (0, 0, 0), -0.35),
    ("cylinder", (0, 1, 0), 0.58),
    ("cylinder", (1, 0, 0), 0.65),
    ("cylinder", (0.35 + 0.3, 0.42 + 0.4, 0), 0.5),  # off the rim
    ("cone", (0, 0.42, 0), 0.0),  # apex
    ("cone", (0, -0.42, 0), 0.0),  # base centre
    ("cone", (0, -1.0, 0), 0.58),
    ("cone", (0, 0, 0), -0.45 * 0.42 / math.hypot(0.45, 0.84)),  # nearer the side than the base
    ("cone", (0, 1.0, 0), 0.58),  # straight above the apex
    ("torus", (0.38, 0, 0), -0.17),
    ("torus", (0, 0, 0), 0.21),
    ("torus", (0, 0, -0.38), -0.17),
    ("torus", (0.38, 0.5, 0), 0.33),
    ("mug", (0, 0, 0), -0.30),
    ("mug", (0.54, 0, 0), -0.07),  # on the handle's centre line
    ("mug", (0.61, 0, 0), 0.0),  # outer edge of the handle
    ("mug", (-0.61, 0, 0), 0.31),  # no handle on -x
    ("mug", (0, 0.5, 0), 0.14),
]


@pytest.mark.parametrize("shape,point,expected", CASES)
def test_sdf_values(shape, point, expected):
    value = sdf(torch.tensor([point], dtype=torch.float32), shape).item()
    assert value == pytest.approx(expected, abs=1e-5)


def test_six_shapes_and_palette():
    assert SHAPE_NAMES == ["sphere", "cube", "cylinder", "cone", "torus", "mug"]
    assert COLOURS["red"] == (0.85, 0.10, 0.10)
    assert COLOURS["yellow"] == (0.90, 0.80, 0.10)
    assert len(COLOURS) == 6


def test_unknown_shape():
    with pytest.raises(ValueError, match="sphere"):
        sdf(torch.zeros(1, 3), "pyramid")
