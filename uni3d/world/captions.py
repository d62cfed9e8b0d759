"""Shapes World captions: the fully specified, the under-specified, and the empty caption."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES

FULL_PROMPTS = [f"a {c} {s}" for s in SHAPE_NAMES for c in COLOUR_NAMES]
"""The 36 fully specified prompts, ``a {colour} {shape}``."""
SHAPE_ONLY_PROMPTS = [f"a {s}" for s in SHAPE_NAMES]
"""``a {shape}``: the colour is free (6 prompts)."""
COLOUR_ONLY_PROMPTS = [f"a {c} object" for c in COLOUR_NAMES]
"""``a {colour} object``: the shape is free (6 prompts)."""
UNDERSPECIFIED_PROMPTS = SHAPE_ONLY_PROMPTS + COLOUR_ONLY_PROMPTS
P_SHAPE_ONLY, P_COLOUR_ONLY, P_EMPTY = 0.25, 0.25, 0.10
"""Default fractions of training captions ``a {shape}``, ``a {colour} object`` and empty (the shipped teacher's)."""


@dataclass(frozen=True)
class ParsedPrompt:
    """What a Shapes World prompt fixes; ``None`` where it leaves the choice free."""

    shape: str | None
    colour: str | None


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Parse a Shapes World caption. Raises ValueError for anything outside the three families."""
    words = prompt.strip().lower().split()
    if len(words) == 3 and words[0] == "a" and words[1] in COLOUR_NAMES and words[2] in SHAPE_NAMES:
        return ParsedPrompt(words[2], words[1])
    if len(words) == 2 and words[0] == "a" and words[1] in SHAPE_NAMES:
        return ParsedPrompt(words[1], None)
    if len(words) == 3 and words[0] == "a" and words[1] in COLOUR_NAMES and words[2] == "object":
        return ParsedPrompt(None, words[1])
    raise ValueError(
        f"{prompt!r} is not a Shapes World caption: use 'a COLOUR SHAPE', 'a SHAPE' or 'a COLOUR object' "
        f"with COLOUR in {', '.join(COLOUR_NAMES)} and SHAPE in {', '.join(SHAPE_NAMES)}"
    )


def sample_captions(
    shape_idx: torch.Tensor,
    colour_idx: torch.Tensor,
    generator: torch.Generator | None = None,
    p_shape_only: float = P_SHAPE_ONLY,
    p_colour_only: float = P_COLOUR_ONLY,
    p_empty: float = P_EMPTY,
) -> list[str]:
    """Draw a caption of a random family for each labelled image.

    An image of a red mug is captioned ``a red mug``, ``a mug``, ``a red object`` or ``""``. Since
    the images' shapes and colours are uniform, ``a mug`` then sees every colour equally often:
    the under-specified captions are faithful to the world.
    """
    u = torch.rand(shape_idx.shape[0], generator=generator).tolist()
    out = []
    for s, c, x in zip(shape_idx.tolist(), colour_idx.tolist(), u):
        shape, colour = SHAPE_NAMES[s], COLOUR_NAMES[c]
        if x < p_empty:
            out.append("")
        elif x < p_empty + p_shape_only:
            out.append(f"a {shape}")
        elif x < p_empty + p_shape_only + p_colour_only:
            out.append(f"a {colour} object")
        else:
            out.append(f"a {colour} {shape}")
    return out
