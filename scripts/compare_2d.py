"""The 2D mode: every method optimises one image per fully specified prompt; docs/GUIDANCE_2D.md.

    python scripts/compare_2d.py [--steps 400] [--methods sds vsd uni-instruct-fkl uni-instruct-rkl]

Methods not named in --methods keep their row from docs/guidance_2d/results.json, with the command that
measured it, so one method can be remeasured after a change that touches only it.

Each method distils the shapes teacher into 36 images at once (one particle per prompt, all seen
from one fixed camera), through the same Trainer and guidance code as 3D. The shipped classifier
then reads each image's shape and colour.

The methods with a fake score (VSD, Uni-Instruct) get the same, larger one here than in 3D
(PARTICLE_FAKE): a particle is one fixed image per prompt, a point mass, whose exact noise-prediction
error is zero at every t; the attention-only rank-4 LoRA of the 3D presets, one step per image step,
stays close to the teacher, and Uni-Instruct's pathwise terms, which differentiate through the fake
score, then carry its error into every pixel (docs/GUIDANCE_2D.md).

Several methods may run at once (one process each): results.json is read again just before it is
written, and only this run's methods are replaced.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import imageio.v3 as iio
import torch

from uni3d.cameras import Cameras
from uni3d.config import GenerateConfig, apply_overrides, load_preset
from uni3d.generate import FIXED_VIEW
from uni3d.scenes.image import PYRAMID_DETAIL_LR, PYRAMID_LEVELS, ImageScene
from uni3d.teachers import load_teacher
from uni3d.teachers.sampling import image_grid
from uni3d.training import Trainer
from uni3d.world.captions import FULL_PROMPTS, parse_prompt
from uni3d.world.classifier import ShapesClassifier
from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES

PRESETS = {
    "sds": "configs/sds.yaml",
    "vsd": "configs/vsd.yaml",
    "uni-instruct-fkl": "configs/uni-instruct-fkl.yaml",
    "uni-instruct-rkl": "configs/uni-instruct-rkl.yaml",
}


PARTICLE_FAKE = {
    "fake": {"targets": ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2", "conv_in", "conv_out"], "rank": 8, "lr": 0.003},
    "train": {"fake_steps": 3},
}
"""Fake-score settings of the 2D mode, for every method that has one (measured: scripts/probe_2d.py)."""


PARTICLE_GUIDANCE = {
    "uni-instruct-fkl": {"guidance": {"cfg_scale": 4.0, "t_min_start": 0.8, "anneal_steps": 100,
                                      "ratio_normalise": 0.0}},
    "uni-instruct-rkl": {"guidance": {"cfg_scale": 1.5, "t_min_start": 0.9, "anneal_steps": 100}},
}
"""Guidance settings of the 2D mode that differ from a method's 3D preset (measured: scripts/probe_2d.py).

Uni-Instruct's pathwise terms differentiate the guided prediction, whose Jacobian is ``J_u + w (J_c - J_u)``: at
a CFG of 7.5 (SDS's and VSD's in 3D) it paints noisy, tinted backgrounds into the pixels of a lone image (reverse KL, whose
FGM term keeps the teacher's Jacobian even under an exact fake score, into every image); at a lower CFG the
background stays white and the objects read. Both also start at large noise only (t_min from 0.8 or 0.9 down to
the preset's over the first 100 steps): from the gray canvas at every t, reverse KL (mode-seeking) settled most
spheres into cubes, and forward KL a yellow sphere. Forward KL keeps the raw ratio weight here (the 3D preset
self-normalises it): docs/GUIDANCE_2D.md was measured with it."""


def particle_preset(method_or_path: str | Path) -> GenerateConfig:
    """A preset of configs/ (a method name of PRESETS or a path) with the 2D mode's fake score and guidance."""
    path = Path(PRESETS.get(str(method_or_path), method_or_path))
    cfg = apply_overrides(load_preset(path, GenerateConfig()), PARTICLE_FAKE)
    return apply_overrides(cfg, PARTICLE_GUIDANCE.get(path.stem, {}))


BACKGROUND = "none"
"""The 2D mode's images: the colour alone (none), or a colour and an opacity layer over white (white), as the
3D scenes composite over their white background (ImageScene). Probed on reverse KL only so far
(scripts/probe_2d.py --background white): white backgrounds, but every shape drawn as a cone."""
OPACITY_INIT = 0.3
"""Opacity of every pixel of the 2D mode's images at the start (with the white background)."""


def image_setting(background: str = BACKGROUND, opacity_init: float = OPACITY_INIT, levels: int = PYRAMID_LEVELS,
                  detail_lr: float = PYRAMID_DETAIL_LR) -> str:
    """How a row's images were parameterised, as GUIDANCE_2D.md's table shows it."""
    base = "none:" if background == "none" else f"{background}:{opacity_init:g}"
    return base if levels == 1 else f"{base} pyramid {levels}x{detail_lr:g}"


def particles_trainer(cfg: GenerateConfig, prompts: list[str], steps: int, seed: int, lr: float,
                      background: str = BACKGROUND, opacity_init: float = OPACITY_INIT, levels: int = PYRAMID_LEVELS,
                      detail_lr: float = PYRAMID_DETAIL_LR) -> tuple[Trainer, ImageScene]:
    """The 2D mode: one image per prompt, all seen from FIXED_VIEW, trained with ``cfg``'s guidance."""
    cfg.guidance.ratio_samples = 8  # teacher samples per prompt for the ratio head: many prompts here
    n = len(prompts)
    scene = ImageScene(n, 32, lr=lr, seed=seed, background=background, opacity_init=opacity_init, levels=levels,
                       detail_lr=detail_lr)
    train = cfg.train.__class__(**{**cfg.train.__dict__, "steps": steps, "seed": seed, "views": n})
    cams = Cameras.from_angles([FIXED_VIEW[0]] * n, [FIXED_VIEW[1]] * n)
    return Trainer(train, cfg.guidance, cfg.fake, scene, load_teacher("shapes"), prompts, fixed_cameras=cams), scene


def run(method: str, steps: int, seed: int, lr: float) -> tuple[torch.Tensor, float]:
    cfg = particle_preset(method)
    trainer, scene = particles_trainer(cfg, FULL_PROMPTS, steps, seed, lr)
    t0 = time.perf_counter()
    trainer.fit(progress=True)
    return scene.images()[0].detach(), (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="*", default=list(PRESETS), choices=list(PRESETS),
                    help="methods to (re)measure; none given (a bare --methods): rewrite the report from results.json")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.03, help="learning rate of the image logits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs"))
    args = ap.parse_args()

    clf = ShapesClassifier.from_pretrained()
    want_shape = torch.tensor([SHAPE_NAMES.index(parse_prompt(p).shape) for p in FULL_PROMPTS])
    want_colour = torch.tensor([COLOUR_NAMES.index(parse_prompt(p).colour) for p in FULL_PROMPTS])
    fig_dir = args.out / "guidance_2d"
    fig_dir.mkdir(parents=True, exist_ok=True)
    results_path = fig_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    command = f"python scripts/compare_2d.py --steps {args.steps} --seed {args.seed} --methods {' '.join(args.methods)}"
    shipped = load_teacher("shapes").fingerprint
    images_now = image_setting()
    for method in args.methods:
        images, sec = run(method, args.steps, args.seed, args.lr)
        pred = clf.predict(images)
        ok_s, ok_c = pred["shape"] == want_shape, pred["colour"] == want_colour
        results[method] = {"shape_accuracy": ok_s.float().mean().item(), "colour_accuracy": ok_c.float().mean().item(),
                           "both": (ok_s & ok_c).float().mean().item(), "seconds_per_step": round(sec, 3),
                           "misread": [p for p, a, b in zip(FULL_PROMPTS, ok_s.tolist(), ok_c.tolist()) if not (a and b)],
                           "command": command, "teacher": shipped, "images": images_now}
        grid = image_grid(images, cols=6).repeat_interleave(3, -1).repeat_interleave(3, -2)
        iio.imwrite(fig_dir / f"{method}.png", (grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
        print(method, json.dumps(results[method]), flush=True)
    latest = json.loads(results_path.read_text()) if results_path.exists() else {}  # other runs may have finished
    latest.update({m: results[m] for m in args.methods})
    results = {m: latest[m] for m in PRESETS if m in latest}
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Guidance in 2D: every method on the shapes teacher",
        "",
        "Regenerate: `python scripts/compare_2d.py --steps 150 --seed 0` for every method, or the command under a"
        " method's section for its row alone. Each method optimises",
        "36 images (one per fully specified prompt, a 32 px image each, seen from azimuth "
        f"{FIXED_VIEW[0]:g}, elevation {FIXED_VIEW[1]:g}) with its preset from `configs/`; the shipped classifier reads them.",
        "The table's `images` column says how the images were parameterised: `none:` the colour alone; `white:O` a"
        " colour layer and an opacity layer composited over white, starting at opacity O, as the 3D scenes"
        " composite over their white background; `pyramid L x F` each image's logits summed from L grids of 32, 16,"
        " 8 and 4 pixels, upsampled bilinearly, each finer grid learning at F times the next coarser one's rate (as"
        " the NeRF's multi-resolution grid parameterises its field: broad shapes and colours move first, single"
        " pixels last). Only the parameterisation of the images changes; every gradient still comes from the"
        " method's own formula.",
        "Settings of the 2D mode that differ from a method's 3D preset (`PARTICLE_GUIDANCE` in the script): "
        + (", ".join(f"{m}: {', '.join(f'{k}={v}' for sec in o.values() for k, v in sec.items())}"
                     for m, o in PARTICLE_GUIDANCE.items()) or "none") + ".",
        "VSD and Uni-Instruct share one fake score here, larger than the 3D presets' (`PARTICLE_FAKE` in the script: LoRA of",
        "rank 8 on the attention and convolution layers, 3 steps at lr 0.003 per image step): each particle is one fixed",
        "image, whose noise the fake score must learn to predict almost exactly, and Uni-Instruct's pathwise terms carry",
        "what it misses through the fake score's Jacobian into every pixel. Compare, on six prompts, forward KL with the",
        "3D presets' fake score (`python scripts/probe_2d.py small-fake train.fake_steps=1 fake.rank=4 fake.lr=0.001",
        "\"fake.targets=[to_q,to_k,to_v,to_out.0]\"`) and with this one (`python scripts/probe_2d.py default`).",
        "",
        "Why a particle is hard for the pathwise terms. A particle's exact fake score is `eps_F(x_t) = (x_t - a x0) / s`,",
        "so `eps_F - eps = 0` and the fake score's Jacobian is `I / s`. Then forward KL's gradient, SIM alone",
        "(`h = rho`, `H' = 0`), is `2 rho a (eps_T - eps) / s^3`: SDS's direction, with no UNet Jacobian in it. A fake score",
        "that stays near the teacher replaces `I / s` by the teacher's own Jacobian `(I - P) / s`, with `P` the projection",
        "of the denoiser onto the images it knows: the part of the direction along them (shape, colour) is removed and",
        "the part off them is kept, as noisy, tinted backgrounds, the more so the higher the CFG (below): forward KL runs",
        "at CFG 4 here (compare `python scripts/probe_2d.py NAME --prompt \"a gray cone\" --prompt \"a gray sphere\"`",
        "with and without `guidance.cfg_scale=7.5`).",
        "Reverse KL adds FGM (`H' = 1`), whose",
        "gradient keeps the teacher's Jacobian even under the exact fake score, `2 a J_T^T (eps_T - eps) / s^2`: the",
        "form of the SDS gradient that DreamFusion drops (costly, and poorly conditioned at small noise). With CFG,",
        "`J_T = J_u + w (J_c - J_u)`: `w = 7.5` (SDS's and VSD's CFG) multiplies the difference of two Jacobians, which on plain",
        "pixels painted a noisy cyan background into every image, read as cubes; a lower CFG and the pyramid, which",
        "makes single pixels the slowest to move, keep the background white (`python scripts/probe_2d.py NAME",
        "--preset uni-instruct-rkl --levels 1 guidance.cfg_scale=7.5` reproduces the plain-pixel failure on six prompts).",
        "From the gray starting canvas, with every `t` from the start, reverse KL (mode-seeking) settled most spheres",
        "into cubes, and forward KL one (a yellow sphere); both start at large noise only here (`t_min_start`,",
        "`anneal_steps` above), so the shape is settled before the details. `python scripts/probe_2d.py NAME --all",
        "--preset uni-instruct-rkl guidance.t_min_start=null` shows the cubes (forward KL: 35 of 36 read right without",
        "it, 36 with 0.8; reverse KL: 35 with 0.8 down over 120 steps, 36 with 0.9 over 100).",
        "In 3D the scene's smoothness across views averages what a lone 2D particle takes pixel by pixel.",
        "",
        "| method | shape read right | colour read right | both | s / step, 36 images (wall clock, indicative; benchmarks: PERFORMANCE.md) | images | teacher |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, r in results.items():
        lines.append(f"| {m} | {r['shape_accuracy']:.0%} | {r['colour_accuracy']:.0%} | {r['both']:.0%} | {r['seconds_per_step']} "
                     f"| {r.get('images', 'none:')} | `{r.get('teacher', '?')}` |")
    stale = [m for m, r in results.items() if r.get("teacher") != shipped or r.get("images", "none:") != images_now]
    lines.append("")
    if stale:
        lines += [f"**Stale rows**: {', '.join(stale)} were measured on other weights than the shipped teacher's "
                  f"(`{shipped}`) or on other images than `{images_now}`; rerun the command under each to refresh them.", ""]
    for m, r in results.items():
        lines += [f"## {m}", "", f"![{m}](guidance_2d/{m}.png)", "",
                  "Rows follow the prompt list: sphere, cube, cylinder, cone, torus, mug; columns red, green, blue, "
                  "yellow, purple, gray.", ""]
        if r["misread"]:
            lines += [f"Misread: {', '.join(r['misread'])}.", ""]
        lines += [f"Measured by `{r.get('command', 'python scripts/compare_2d.py --steps 150 --seed 0')}`.", ""]
    (args.out / "GUIDANCE_2D.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
