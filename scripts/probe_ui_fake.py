"""Diagnostic: is Uni-Instruct limited by its fake score? The 2D mode twice, LoRA fake vs the exact one.

    python scripts/probe_ui_fake.py [--steps 80] [--divergence fkl] [--out runs/probe_ui_fake]

Each image of the 2D mode is a point mass, so the exact score of the student's noised distribution is
known in closed form: eps_F(x_t) = (x_t - a_t x0) / s_t. The script optimises one image for each of six
prompts with Uni-Instruct's preset, once with the online LoRA fake score and once with that exact fake
score (same teacher, same seeds, same everything else), and prints what the shipped classifier reads.
If the exact fake recovers the objects and the LoRA does not, the fake score is the bottleneck.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import imageio.v3 as iio
import torch

import uni3d.training
from uni3d.cameras import Cameras
from uni3d.config import GenerateConfig, load_preset
from uni3d.generate import FIXED_VIEW
from uni3d.guidance.distill import guidance_loss
from uni3d.scenes.image import ImageScene
from uni3d.teachers import load_teacher
from uni3d.teachers.sampling import image_grid
from uni3d.training import Trainer
from uni3d.world.captions import parse_prompt
from uni3d.world.classifier import ShapesClassifier
from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES

PROMPTS = ["a red sphere", "a green cube", "a blue cylinder", "a yellow cone", "a purple torus", "a gray mug"]


class PointMassFake:
    """The exact fake score of a point mass at the current images; the LoRA's ratio head still gives rho."""

    def __init__(self, lora, teacher, x0: torch.Tensor):
        self.lora, self.teacher, self.x0 = lora, teacher, x0.detach()

    def frozen(self):
        return contextlib.nullcontext()

    def eps(self, x_t, t, cond):
        a, s = (v.to(x_t) for v in self.teacher.a_s(t))
        _, logit = self.lora.eps(x_t.detach(), t, cond)
        return (x_t - a * self.x0) / s, logit


def exact_guidance_loss(cfg, teacher, fake, x0, cond, step, generator=None):
    return guidance_loss(cfg, teacher, PointMassFake(fake, teacher, x0), x0, cond, step, generator)


def run(exact: bool, steps: int, divergence: str) -> torch.Tensor:
    cfg = load_preset(Path("configs/uni-instruct-fkl.yaml"), GenerateConfig())
    cfg.guidance.divergence = divergence
    cfg.guidance.ratio_samples = 8
    teacher = load_teacher("shapes")
    n = len(PROMPTS)
    scene = ImageScene(n, 32, lr=0.03, seed=0)
    train = cfg.train.__class__(**{**cfg.train.__dict__, "steps": steps, "seed": 0, "views": n})
    cams = Cameras.from_angles([FIXED_VIEW[0]] * n, [FIXED_VIEW[1]] * n)
    trainer = Trainer(train, cfg.guidance, cfg.fake, scene, teacher, PROMPTS, fixed_cameras=cams)
    original = uni3d.training.guidance_loss
    uni3d.training.guidance_loss = exact_guidance_loss if exact else original
    try:
        trainer.fit(progress=True)
    finally:
        uni3d.training.guidance_loss = original
    return scene.images()[0].detach()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--divergence", default="fkl")
    ap.add_argument("--out", type=Path, default=Path("runs/probe_ui_fake"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    clf = ShapesClassifier.from_pretrained()
    for exact in (False, True):
        images = run(exact, args.steps, args.divergence)
        pred = clf.predict(images)
        ok = [SHAPE_NAMES[s] == parse_prompt(p).shape and COLOUR_NAMES[c] == parse_prompt(p).colour
              for p, s, c in zip(PROMPTS, pred["shape"].tolist(), pred["colour"].tolist())]
        name = "exact" if exact else "lora"
        grid = image_grid(images, cols=6).repeat_interleave(3, -1).repeat_interleave(3, -2)
        iio.imwrite(args.out / f"{name}.png", (grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
        print(f"{name} fake score: {sum(ok)}/{len(PROMPTS)} read right by the classifier ({args.out / name}.png)",
              flush=True)


if __name__ == "__main__":
    main()
