"""Caption families: parsing, and the fractions the teacher is trained with."""

import pytest
import torch

from uni3d.world.captions import parse_prompt, sample_captions
from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES


def test_parse_the_three_families():
    assert (parse_prompt("a red mug").shape, parse_prompt("a red mug").colour) == ("mug", "red")
    assert (parse_prompt("a torus").shape, parse_prompt("a torus").colour) == ("torus", None)
    assert (parse_prompt("a gray object").shape, parse_prompt("a gray object").colour) == (None, "gray")
    with pytest.raises(ValueError, match="not a Shapes World caption"):
        parse_prompt("a red spoon")


def _families(captions):
    fam = {"empty": 0, "shape": 0, "colour": 0, "full": 0}
    for c in captions:
        if c == "":
            fam["empty"] += 1
        else:
            p = parse_prompt(c)
            fam["full" if p.shape and p.colour else "shape" if p.shape else "colour"] += 1
    return {k: v / len(captions) for k, v in fam.items()}


@pytest.mark.parametrize("kwargs,expected", [
    ({}, {"empty": 0.10, "shape": 0.25, "colour": 0.25, "full": 0.40}),  # the shipped teacher's recipe
    ({"p_shape_only": 0.15, "p_colour_only": 0.2, "p_empty": 0.05}, {"empty": 0.05, "shape": 0.15, "colour": 0.2, "full": 0.6}),
])
def test_caption_family_fractions(kwargs, expected):
    n = 20000
    g = torch.Generator().manual_seed(0)
    shape = torch.randint(len(SHAPE_NAMES), (n,), generator=g)
    colour = torch.randint(len(COLOUR_NAMES), (n,), generator=g)
    captions = sample_captions(shape, colour, generator=g, **kwargs)
    got = _families(captions)
    for k, v in expected.items():
        assert abs(got[k] - v) < 0.015, (k, got[k], v)  # binomial sd <= 0.0035 at n = 20000
    # every caption tells the truth about its image: what it names is the image's shape and colour
    for s, c, cap in zip(shape.tolist(), colour.tolist(), captions):
        if cap:
            p = parse_prompt(cap)
            assert p.shape in (None, SHAPE_NAMES[s]) and p.colour in (None, COLOUR_NAMES[c])
