"""The 2D mode on six prompts, with any preset and any settings: a quick probe of one change to a method.

    python scripts/probe_2d.py NAME [--preset uni-instruct-fkl] [--steps 150] [SECTION.FIELD=VALUE ...]
    python scripts/probe_2d.py uncentred guidance.cross_centred=false
    python scripts/probe_2d.py small-fake train.fake_steps=1 fake.rank=4 "fake.targets=[to_q,to_k,to_v,to_out.0]"

One image per prompt (by default a red sphere, a green cube, a blue cylinder, a yellow cone, a purple torus, a gray
mug; --prompt P, repeated, for others),
seen from the 2D mode's fixed view, optimised through the same Trainer and fake score (compare_2d.PARTICLE_FAKE) as docs/GUIDANCE_2D.md; the shipped
classifier reads them. Prints one JSON line (what was read, the mean of the images' 3-pixel border: 1.0 is a
white background) and writes runs/probe_2d/NAME.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import imageio.v3 as iio
import torch
import yaml
from compare_2d import (  # scripts/ is on the path when run as a script
    BACKGROUND,
    OPACITY_INIT,
    image_setting,
    particle_preset,
    particles_trainer,
)

from uni3d.config import apply_overrides
from uni3d.scenes.image import PYRAMID_DETAIL_LR, PYRAMID_LEVELS
from uni3d.teachers.sampling import image_grid
from uni3d.world.captions import FULL_PROMPTS, parse_prompt
from uni3d.world.classifier import ShapesClassifier
from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES

PROMPTS = ["a red sphere", "a green cube", "a blue cylinder", "a yellow cone", "a purple torus", "a gray mug"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("settings", nargs="*", help="SECTION.FIELD=VALUE, e.g. guidance.t_min=0.1 (YAML values)")
    ap.add_argument("--preset", default="uni-instruct-fkl", help="a preset of configs/, without .yaml")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--prompt", action="append", dest="prompts",
                    help="a fully specified prompt; repeat for more (default: six, one per shape)")
    ap.add_argument("--all", action="store_true", help="all 36 fully specified prompts, as docs/GUIDANCE_2D.md runs them")
    ap.add_argument("--lr", type=float, default=0.03, help="learning rate of the image logits")
    ap.add_argument("--background", choices=["none", "white"], default=BACKGROUND,
                    help="the images: plain colour (none) or colour and opacity over white")
    ap.add_argument("--opacity-init", type=float, default=OPACITY_INIT, help="starting opacity (white background)")
    ap.add_argument("--levels", type=int, default=PYRAMID_LEVELS, help="pyramid levels of the images (1: plain pixels)")
    ap.add_argument("--detail-lr", type=float, default=PYRAMID_DETAIL_LR, help="learning-rate factor per finer pyramid level")
    ap.add_argument("--out", type=Path, default=Path("runs/probe_2d"))
    args = ap.parse_intermixed_args()
    if args.all and args.prompts:
        ap.error("--all and --prompt exclude each other")
    args.prompts = FULL_PROMPTS if args.all else args.prompts or PROMPTS
    try:
        vague = [p for p in args.prompts if parse_prompt(p).colour is None or parse_prompt(p).shape is None]
    except ValueError as err:
        ap.error(str(err))
    if vague:
        ap.error(f"--prompt needs a fully specified prompt ('a COLOUR SHAPE'), not {', '.join(map(repr, vague))}")
    overrides: dict = {}
    for item in args.settings:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        overrides.setdefault(section, {})[name] = yaml.safe_load(value)
    cfg = apply_overrides(particle_preset(Path(f"configs/{args.preset}.yaml")), overrides)
    trainer, scene = particles_trainer(cfg, args.prompts, args.steps, cfg.train.seed, args.lr, args.background, args.opacity_init,
                                        args.levels, args.detail_lr)
    start = time.perf_counter()
    last = trainer.fit(progress=True)
    images = scene.images()[0].detach()
    pred = ShapesClassifier.from_pretrained().predict(images)
    read = [f"{COLOUR_NAMES[c]} {SHAPE_NAMES[s]}" for s, c in zip(pred["shape"].tolist(), pred["colour"].tolist())]
    misread = [p for r, p in zip(read, args.prompts) if r != f"{parse_prompt(p).colour} {parse_prompt(p).shape}"]
    border = torch.cat([images[..., :3, :].flatten(1), images[..., -3:, :].flatten(1)], 1).mean().item()
    args.out.mkdir(parents=True, exist_ok=True)
    grid = image_grid(images, cols=min(len(args.prompts), 12)).repeat_interleave(3, -1).repeat_interleave(3, -2)
    iio.imwrite(args.out / f"{args.name}.png", (grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
    print(json.dumps({"name": args.name, "read_right": f"{len(args.prompts) - len(misread)}/{len(args.prompts)}",
                      "misread": {p: read[args.prompts.index(p)] for p in misread}, "border": round(border, 3),
                      "seconds": round(time.perf_counter() - start, 1), "settings": args.settings,
                      "images": image_setting(args.background, args.opacity_init, args.levels, args.detail_lr),
                      "last": {k: round(v, 4) for k, v in last.items()}}))


if __name__ == "__main__":
    main()
