"""Train the shipped Shapes World classifier on fresh renders (a few minutes on 2 cores).

    python scripts/train_classifier.py [--out assets/classifier/shapes-v1] [--steps 1500]

Prints held-out accuracy on renders drawn with a different seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from uni3d.world.classifier import ShapesClassifier, augment, view_targets
from uni3d.world.dataset import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("assets/classifier/shapes-v1"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--train-size", type=int, default=24000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    train = generate(args.train_size, seed=args.seed, progress=True)
    test = generate(3000, seed=args.seed + 1000)
    model = ShapesClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=args.steps)
    g = torch.Generator().manual_seed(args.seed)
    bar = tqdm(range(args.steps), desc="training classifier", unit="step")
    for _ in bar:
        idx = torch.randint(len(train), (args.batch_size,), generator=g)
        x = augment(train.images[idx].float() / 255, g)
        out = model(x)
        target, mask = view_targets(train.shape_idx[idx], train.azimuth[idx])
        loss = (
            F.cross_entropy(out["shape"], train.shape_idx[idx])
            + F.cross_entropy(out["colour"], train.colour_idx[idx])
            + ((out["view"] - target).pow(2) * mask).sum() / mask.sum().clamp(min=1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")

    model.eval()
    pred = model.predict(test.images.float() / 255)
    shape_acc = (pred["shape"] == test.shape_idx).float().mean().item()
    colour_acc = (pred["colour"] == test.colour_idx).float().mean().item()
    mug = test.shape_idx == 5
    cube = test.shape_idx == 1
    mug_err = ((pred["mug_azimuth"][mug] - test.azimuth[mug] + 180) % 360 - 180).abs()
    cube_err = ((pred["cube_azimuth"][cube] - test.azimuth[cube] % 90 + 45) % 90 - 45).abs()
    report = {
        "held_out_renders": len(test),
        "shape_accuracy": round(shape_acc, 4),
        "colour_accuracy": round(colour_acc, 4),
        "mug_azimuth_median_error_deg": round(mug_err.median().item(), 2),
        "cube_azimuth_mod90_median_error_deg": round(cube_err.median().item(), 2),
        "command": "python scripts/train_classifier.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
    }
    model.save_pretrained(args.out)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
