"""Measure the shipped shapes teacher and write docs/TEACHER.md (+ the model card's figures).

    python scripts/eval_teacher.py [--cfg 4] [--out docs]

Samples every fully specified prompt (8 samples each, random training views), the 12
under-specified prompts (32 samples each) and camera probes (mug at azimuth 0 / 180, cube at
0 / 45), scores them with the shipped classifier, and times sampling.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import imageio.v3 as iio
import matplotlib
import torch
import torch.nn.functional as F

from uni3d.cameras import Cameras, CameraSampler
from uni3d.teachers.sampling import SAMPLERS, image_grid, sample
from uni3d.teachers.shapes import ShapesTeacher, default_teacher_dir
from uni3d.world.captions import COLOUR_ONLY_PROMPTS, FULL_PROMPTS, SHAPE_ONLY_PROMPTS, parse_prompt
from uni3d.world.classifier import ShapesClassifier
from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES

matplotlib.use("Agg")


def to8(img: torch.Tensor):
    return (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")


def upscale(img: torch.Tensor, k: int = 2) -> torch.Tensor:
    return img.repeat_interleave(k, -1).repeat_interleave(k, -2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", type=Path, default=default_teacher_dir())
    ap.add_argument("--cfg", type=float, default=None, help="CFG scale (default: the teacher's own)")
    ap.add_argument("--sampler", choices=SAMPLERS, default="ddpm")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--per-prompt", type=int, default=8)
    ap.add_argument("--under", type=int, default=32)
    ap.add_argument("--probe", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--cfg-sweep", type=float, nargs="*", default=[1.5, 2.0, 3.0, 4.0, 6.0],
                    help="CFG scales compared first on 2 samples per fully specified prompt")
    ap.add_argument("--sampler-sweep", nargs="*", default=["ddim:30", "ddim:50", "ddpm:30", "ddpm:50"],
                    help="SAMPLER:STEPS compared on 2 samples per fully specified prompt")
    args = ap.parse_args()

    teacher = ShapesTeacher.from_pretrained(args.teacher)
    clf = ShapesClassifier.from_pretrained()
    cfg = args.cfg if args.cfg is not None else teacher.meta.default_cfg
    fig_dir = args.out / "teacher"
    fig_dir.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(args.seed)
    sampler = CameraSampler()

    def small_run(scale: float, sampler_name: str, steps: int) -> dict:
        """2 samples per fully specified prompt: both attributes right, and the background."""
        gs = torch.Generator().manual_seed(args.seed + 1)
        ok = n = 0
        imgs_all = []
        for prompt in FULL_PROMPTS:
            want = parse_prompt(prompt)
            imgs = sample(teacher, prompt, 2, sampler.sample(2, gs), scale, steps, gs, sampler=sampler_name)
            pred = clf.predict(imgs)
            ok += ((pred["shape"] == SHAPE_NAMES.index(want.shape)) & (pred["colour"] == COLOUR_NAMES.index(want.colour))).sum().item()
            n += 2
            imgs_all.append(imgs)
        return {"both_right": ok / n, **background_of(imgs_all)}

    # 0. The sampler and the CFG scale, compared on a smaller sample.
    sampler_sweep = {}
    for spec in args.sampler_sweep:
        name, steps = spec.split(":")
        sampler_sweep[spec] = small_run(cfg, name, int(steps))
        print(f"{spec}: {sampler_sweep[spec]}", flush=True)
    sweep = {}
    for scale in args.cfg_sweep:
        sweep[scale] = small_run(scale, args.sampler, args.steps)["both_right"]
        print(f"CFG {scale:g}: shape and colour right in {sweep[scale]:.0%}", flush=True)

    # 1. Fully specified prompts.
    rows, grids = [], []
    shape_ok = colour_ok = total = 0
    for prompt in FULL_PROMPTS:
        want = parse_prompt(prompt)
        imgs = sample(teacher, prompt, args.per_prompt, sampler.sample(args.per_prompt, g), cfg, args.steps, g,
                      sampler=args.sampler)
        pred = clf.predict(imgs)
        s_ok = (pred["shape"] == SHAPE_NAMES.index(want.shape)).sum().item()
        c_ok = (pred["colour"] == COLOUR_NAMES.index(want.colour)).sum().item()
        shape_ok, colour_ok, total = shape_ok + s_ok, colour_ok + c_ok, total + len(imgs)
        rows.append((prompt, s_ok, c_ok, len(imgs)))
        grids.append(imgs)
        print(f"{prompt:<22} shape {s_ok}/{len(imgs)} colour {c_ok}/{len(imgs)}", flush=True)
    background = background_of(grids)
    grid = image_grid(torch.cat(grids), cols=args.per_prompt * 2)
    iio.imwrite(fig_dir / "samples_full.png", to8(upscale(grid)))

    # 2. Under-specified prompts: coverage of the free attribute.
    under_rows, under_grids = [], []
    for prompt in SHAPE_ONLY_PROMPTS + COLOUR_ONLY_PROMPTS:
        want = parse_prompt(prompt)
        imgs = sample(teacher, prompt, args.under, sampler.sample(args.under, g), cfg, args.steps, g, sampler=args.sampler)
        pred = clf.predict(imgs)
        if want.colour is None:  # "a {shape}": colours must vary, the shape must hold
            free = torch.bincount(pred["colour"], minlength=6)
            fixed_ok = (pred["shape"] == SHAPE_NAMES.index(want.shape)).float().mean().item()
            names = COLOUR_NAMES
        else:
            free = torch.bincount(pred["shape"], minlength=6)
            fixed_ok = (pred["colour"] == COLOUR_NAMES.index(want.colour)).float().mean().item()
            names = SHAPE_NAMES
        covered = int((free > 0).sum())
        under_rows.append((prompt, covered, fixed_ok, {n: int(c) for n, c in zip(names, free.tolist())}))
        under_grids.append(imgs[:16])
        print(f"{prompt:<22} covers {covered}/6  fixed attribute {fixed_ok:.2f}", flush=True)
    iio.imwrite(fig_dir / "samples_under.png", to8(upscale(image_grid(torch.cat(under_grids), cols=16))))

    # 3. Camera probes.
    probes = {}
    probe_imgs = []
    for prompt, azimuths in (("a red mug", (0.0, 180.0)), ("a blue cube", (0.0, 45.0))):
        for az in azimuths:
            cams = Cameras.from_angles([az] * args.probe, [15.0] * args.probe)
            imgs = sample(teacher, prompt, args.probe, cams, cfg, args.steps, g, sampler=args.sampler)
            pred = clf.predict(imgs)
            if "mug" in prompt:
                err = ((pred["mug_azimuth"] - az + 180) % 360 - 180).abs()
                occupancy = (imgs.min(dim=1).values < 0.9).float()
                cols = torch.arange(imgs.shape[-1]).float() - (imgs.shape[-1] - 1) / 2
                centroid = (occupancy.sum(1) * cols).sum(-1) / occupancy.sum((1, 2)).clamp(min=1)
                probes[f"{prompt} @ az {az:g}"] = {
                    "view_correct": float((err < 45).float().mean()),
                    "handle_right_of_centre": float((centroid > 0).float().mean()),
                }
            else:
                err = ((pred["cube_azimuth"] - az % 90 + 45) % 90 - 45).abs()
                probes[f"{prompt} @ az {az:g}"] = {"view_correct": float((err < 22.5).float().mean())}
            probe_imgs.append(imgs[:8])
    iio.imwrite(fig_dir / "camera_probes.png", to8(upscale(image_grid(torch.cat(probe_imgs), cols=8), 3)))

    # 4. Sampling speed: 8 images with CFG.
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    sample(teacher, "a red mug", 8, sampler.sample(8, g), cfg, args.steps, g, sampler=args.sampler)
    seconds_8 = time.perf_counter() - t0

    summary = {
        "cfg_sweep": sweep, "background": background, "handle_pixels": handle_pixels(),
        "cfg": cfg, "sampler": args.sampler, "sampler_steps": args.steps, "sampler_sweep": sampler_sweep,
        "shape_accuracy": shape_ok / total, "colour_accuracy": colour_ok / total, "samples": total,
        "under_min_coverage": min(r[1] for r in under_rows),
        "camera_probes": probes, "seconds_for_8_samples": round(seconds_8, 2), "teacher": teacher.fingerprint,
    }
    (fig_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_loss_plot(args.teacher, fig_dir)
    write_markdown(args, summary, rows, under_rows)
    write_model_card(args.teacher, summary, fig_dir)
    print(json.dumps(summary, indent=2))


def background_of(batches: list[torch.Tensor]) -> dict:
    """Whiteness and texture of the 2-pixel border of samples (Shapes World's background is pure white).

    ``texture``: mean absolute deviation of border pixels from their 2x2 block mean (0 for a flat background).
    """
    x = torch.cat(batches)
    block = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2)
    ring = torch.ones_like(x[0, 0], dtype=torch.bool)
    ring[2:-2, 2:-2] = False
    border = x[..., ring]  # (samples, 3, border pixels)
    return {"border_mean": border.mean().item(),
            "white_fraction": (border.mean((1, 2)) > 0.95).float().mean().item(),
            "texture": (x - block).abs()[..., ring].mean().item()}


def handle_pixels() -> dict:
    """Pixels of a ground-truth mug render that only the handle covers, at 32 and 64 px (azimuth 0)."""
    from uni3d.world.render import render
    from uni3d.world.shapes import sdf_cylinder_y

    out = {}
    cams = Cameras.from_angles(0.0, 15.0)
    for res in (32, 64):
        mug = render(["mug"], ["red"], cams, res)[0]
        body = render(["mug"], ["red"], cams, res, sdf_fn=lambda p, _: sdf_cylinder_y(p, 0.30, 0.36))[0]
        occupied = lambda x: x.min(0).values < 0.98  # noqa: E731
        out[f"{res}px"] = int((occupied(mug) & ~occupied(body)).sum())
    return out


def write_loss_plot(teacher_dir: Path, fig_dir: Path) -> None:
    import matplotlib.pyplot as plt

    log = teacher_dir / "loss.csv"
    if not log.exists():
        return
    with open(log) as f:
        data = [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]
    steps, loss = zip(*data)
    k = 50
    smooth = [sum(loss[max(0, i - k):i + 1]) / len(loss[max(0, i - k):i + 1]) for i in range(len(loss))]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(steps, loss, alpha=0.25, lw=0.5, label="per step")
    ax.plot(steps, smooth, lw=1.5, label=f"mean of {k}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    recipe = json.loads((teacher_dir / "training.json").read_text()).get("recipe", {}) if (teacher_dir / "training.json").exists() else {}
    gamma = recipe.get("min_snr_gamma", 5.0)
    ax.set_ylabel(f"min-SNR-{gamma:g} weighted eps MSE" if gamma > 0 else "eps MSE")
    ax.legend()
    fig.tight_layout()
    fig.savefig(fig_dir / "loss.png", dpi=120)
    plt.close(fig)


def write_model_card(teacher_dir: Path, s: dict, fig_dir: Path) -> None:
    """assets/teachers/shapes-v1/README.md: how it was made and what it does, with small figures beside it."""
    import shutil

    record = json.loads((teacher_dir / "training.json").read_text()) if (teacher_dir / "training.json").exists() else {}
    for name in ("loss.png", "samples_full.png", "camera_probes.png"):
        if (fig_dir / name).exists():
            shutil.copy(fig_dir / name, teacher_dir / name)
    meta = json.loads((teacher_dir / "teacher.json").read_text())
    unet = json.loads((teacher_dir / "unet" / "config.json").read_text())
    wall = record.get("wall_seconds")
    recipe = record.get("recipe", {})
    gamma = recipe.get("min_snr_gamma", 5.0)
    weighting = f"min-SNR-{gamma:g} weighting" if gamma > 0 else "plain eps MSE"
    tokens = meta.get("camera_tokens", 0)
    dropout = recipe.get("camera_dropout", 0.15)
    camera = ("- camera: sin/cos of 1-4 x azimuth and 1-2 x elevation and a flag (13 numbers), projected and added to the"
              " time embedding")
    if unet.get("resnet_time_scale_shift") == "scale_shift":
        camera += " (which scales and shifts every ResNet block's features)"
    if tokens:
        camera += f", and mapped by a small MLP (`camera_encoder/`) to {tokens} tokens appended to the text for cross-attention"
    camera += f"; withheld (zeros) for {dropout:.0%} of training, so the teacher also works without a camera."
    # fractions of the caption families (records older than these settings trained with their defaults)
    p_shape, p_colour, p_empty = (recipe.get(k, v) for k, v in (("p_shape_only", 0.15), ("p_colour_only", 0.15),
                                                               ("p_empty", 0.10)))
    lines = [
        f"# {teacher_dir.name}: the embedded Shapes World teacher of uni3d",
        "",
        "A small text-to-image diffusion model of the procedural Shapes World (six solids, six colours, one",
        "fixed light, white background), conditioned on the camera of the view. It is the default teacher of",
        "`uni3d generate`, loaded by name (`--teacher shapes`).",
        "",
        "## Model",
        "",
        f"- diffusers `UNet2DConditionModel`, block channels {unet['block_out_channels']}, "
        f"{unet['layers_per_block']} layer per block, cross-attention on text, in pixel space: the "
        f"{meta['resolution']} px image in [-1, 1], pixel-unshuffled by {meta['unshuffle']} to "
        f"{unet['in_channels']} x {unet['sample_size']} x {unet['sample_size']}; weights stored in float16.",
        camera,
        "- text: a 2-layer transformer (width 128) over the closed vocabulary in `tokenizer/vocab.json`;",
        f"  captions `a {{colour}} {{shape}}` ({1 - p_shape - p_colour - p_empty:.0%}), `a {{shape}}` ({p_shape:.0%}), "
        f"`a {{colour}} object` ({p_colour:.0%}) and empty ({p_empty:.0%}, classifier-free guidance's unconditional branch).",
        "- noise: DDPM, 1000 steps, cosine schedule (`squaredcos_cap_v2`), epsilon prediction.",
        f"- default classifier-free guidance scale: {meta['default_cfg']:g}.",
        "",
        "## Training",
        "",
        f"- command: `{record.get('command', 'uni3d teacher train')}` (the same as `python scripts/train_teacher.py`)",
        f"- data: {record.get('dataset_renders', '?')} renders at {record.get('resolution', '?')} px (2x2 supersampled),"
        " uniform shapes, colours and training views (azimuth U[0, 360), elevation U[-10, 45])",
        f"- {record.get('steps', '?')} steps of batch {record.get('batch_size', '?')} "
        f"({record.get('images_seen', '?')} images seen), AdamW, lr {recipe.get('lr', 5e-4):g} cosine to {recipe.get('lr_min', 3e-5):g}, "
        f"EMA {recipe.get('ema_decay', 0.999):g}, {weighting}" + (", bf16 autocast" if record.get("bf16", True) else ""),
        f"- wall time: {wall / 60:.0f} minutes on 2 CPU cores" if wall else "- wall time: see loss.csv",
        f"- final loss (mean of the last 100 steps): {record.get('final_loss_mean_last_100', float('nan')):.4f}",
        "",
        "![loss](loss.png)",
        "",
        "## Measured",
        "",
        f"With CFG {s['cfg']:g} and {s['sampler'].upper()} {s['sampler_steps']} steps, scored by the shipped classifier: shape accuracy "
        f"{s['shape_accuracy']:.1%}, colour accuracy {s['colour_accuracy']:.1%} over {s['samples']} samples of the 36 "
        f"fully specified prompts; every under-specified prompt covers at least {s['under_min_coverage']} of 6 "
        "colours (or shapes). Details, tables and all figures: `docs/TEACHER.md` (`python scripts/eval_teacher.py`).",
        "",
        "![samples](samples_full.png)",
        "",
        "Camera probes (red mug at azimuth 0 and 180, blue cube at 0 and 45):",
        "",
        "![probes](camera_probes.png)",
        "",
    ]
    (teacher_dir / "README.md").write_text("\n".join(lines))


def write_markdown(args, s, rows, under_rows) -> None:
    lines = [
        "# The shapes teacher, measured",
        "",
        f"Regenerate: `python scripts/eval_teacher.py` (CFG {s['cfg']:g}, {s['sampler'].upper()} {s['sampler_steps']} steps, seed {args.seed}).",
        "Samples are scored by the shipped Shapes World classifier (`assets/classifier/shapes-v1`, trained by",
        "`python scripts/train_classifier.py`; its held-out accuracy on renders is in its `metrics.json`).",
        f"Teacher weights: `{s['teacher']}` (name and the hash of its UNet weights).",
        "",
        "| measurement | result | target |",
        "|---|---|---|",
        f"| shape accuracy, 36 fully specified prompts x {args.per_prompt} samples | {s['shape_accuracy']:.1%} | >= 90% |",
        f"| colour accuracy, same samples | {s['colour_accuracy']:.1%} | >= 95% |",
        f"| fewest colours (or shapes) covered by an under-specified prompt, {args.under} samples | {s['under_min_coverage']} of 6 | >= 5 |",
    ]
    for k, v in s["camera_probes"].items():
        extra = f"; handle right of centre in {v['handle_right_of_centre']:.0%}" if "handle_right_of_centre" in v else ""
        lines.append(f"| camera probe: {k}, view head agrees | {v['view_correct']:.0%}{extra} | the views differ |")
    lines += [
        f"| background of the samples: mean of the 2-pixel border | {s['background']['border_mean']:.3f} (samples with border > 0.95: {s['background']['white_fraction']:.0%}; 2x2 texture {s['background']['texture']:.3f}) | white (1.0), not tinted |",
        f"| seconds to sample 8 images with CFG ({s['sampler'].upper()} {s['sampler_steps']}, 2 threads) | {s['seconds_for_8_samples']:.2f} | <= 10 |",
        "",
        f"Resolution: 32 px. A ground-truth mug at azimuth 0 shows {s['handle_pixels']['32px']} pixels covered by the handle alone at",
        f"32 px ({s['handle_pixels']['64px']} at 64 px): the handle is visible at 32 px, where the teacher's UNet is several times",
        "cheaper per step than at 64 px, which matters most to the 3D runs that call it thousands of times.",
        "",
        "Camera probes: a mug's handle points to +x, so it appears right of centre seen from azimuth 0 and left",
        "of it from azimuth 180; the classifier's view head reads the azimuth of mugs, and of cubes modulo 90",
        "(a face at 0, an edge at 45).",
        "",
        "## Choice of the sampler",
        "",
        f"CFG {s['cfg']:g}, 2 samples per fully specified prompt (72 samples). DDPM is ancestral with the",
        "predicted x0 clipped to [-1, 1]; DDIM is deterministic (eta 0). Texture: mean absolute deviation of",
        "the border pixels from their 2x2 block mean (0 on a flat background).",
        "",
        "| sampler:steps | both right | border mean | border > 0.95 | texture |",
        "|---|---|---|---|---|",
        *[f"| {k} | {v['both_right']:.0%} | {v['border_mean']:.3f} | {v['white_fraction']:.0%} | {v['texture']:.3f} |"
          for k, v in s["sampler_sweep"].items()],
        "",
        "## Choice of the guidance scale",
        "",
        "Shape and colour both right, 2 samples per fully specified prompt (72 samples), by CFG scale:",
        "",
        "| CFG | " + " | ".join(f"{k:g}" for k in s["cfg_sweep"]) + " |",
        "|---|" + "---|" * len(s["cfg_sweep"]),
        "| both right | " + " | ".join(f"{v:.0%}" for v in s["cfg_sweep"].values()) + " |",
        "",
        "## Fully specified prompts",
        "",
        "![samples](teacher/samples_full.png)",
        "",
        "Two prompts per row, 8 random training views each, in the order of the table.",
        "",
        "| prompt | shape | colour |",
        "|---|---|---|",
    ]
    lines += [f"| {p} | {a}/{n} | {c}/{n} |" for p, a, c, n in rows]
    lines += ["", "## Under-specified prompts", "", "![under](teacher/samples_under.png)", "",
              "One prompt per row (first 16 of the samples).", "",
              "| prompt | free attribute covered | held attribute correct | counts |", "|---|---|---|---|"]
    lines += [f"| {p} | {k}/6 | {f:.0%} | {', '.join(f'{n} {c}' for n, c in counts.items())} |" for p, k, f, counts in under_rows]
    lines += ["", "## Camera probes", "", "![probes](teacher/camera_probes.png)", "",
              "Rows: red mug at azimuth 0, red mug at 180, blue cube at 0, blue cube at 45 (elevation 15).", "",
              "## Training", "", "![loss](teacher/loss.png)", "",
              "See `assets/teachers/shapes-v1/README.md` for the training command, data and wall time.", ""]
    (args.out / "TEACHER.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
