"""Per-step cost of each method, by component, on one scene and teacher: docs/PERFORMANCE.md (guidance part).

    python scripts/bench_guidance.py [--steps 30] [--views 2] [--teacher shapes]

Components, each timed on its own over the same inputs (2 threads):
render (NeRF forward + encode), teacher pass (CFG, cond + uncond batched; one per view and noise draw of the
preset, --noise-draws), fake-score pass (likewise),
backward (through the render; for Uni-Instruct also through both UNets), LoRA step (the fake
score's noise-prediction training), discriminator (the ratio head's real half and BCE).
The whole step is the Trainer's own train_step. Every time is the median over --steps calls after warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from uni3d.cameras import CameraSampler
from uni3d.config import GenerateConfig, load_preset
from uni3d.guidance.distill import guidance_loss, repeat_for_draws
from uni3d.scenes.nerf import NeRFScene
from uni3d.teachers import load_teacher
from uni3d.teachers.fake_score import camera_conditioning
from uni3d.training import Trainer

PRESETS = {"sds": "configs/sds.yaml", "vsd": "configs/vsd.yaml", "uni-instruct-fkl": "configs/uni-instruct-fkl.yaml"}


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call: a median, not a mean, so that a burst of
    other load on a shared machine moves it little (two runs of 30 means differed by 20%)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(method: str, args) -> dict:
    cfg = load_preset(Path(PRESETS[method]), GenerateConfig())
    cfg.guidance.ratio_warmup = 0
    teacher = load_teacher(args.teacher)
    scene = NeRFScene(cfg.nerf)
    train = cfg.train.__class__(**{**cfg.train.__dict__, "views": args.views, "steps": 10**6})
    trainer = Trainer(train, cfg.guidance, cfg.fake, scene, teacher, "a red mug")
    for s in range(5):  # warm-up (occupancy grid, caches, teacher samples)
        trainer.train_step(s)
    step = timed(lambda: trainer.train_step(7), args.steps)

    g = torch.Generator().manual_seed(0)
    cams = CameraSampler().sample(args.views, g)
    cond = camera_conditioning(teacher, "a red mug", cams)
    out = {}
    out["render"] = timed(lambda: teacher.encode(scene.render(cams, train.resolution).rgb), args.steps)
    x0 = teacher.encode(scene.render(cams, train.resolution).rgb).detach()
    xk, ck = repeat_for_draws(x0, cond, cfg.guidance.noise_draws)  # the batch the guidance passes
    t = torch.full((len(xk),), 500)
    with torch.no_grad():
        out["teacher pass"] = timed(lambda: teacher.eps(xk, t, ck, cfg.guidance.cfg_scale), args.steps)
        if trainer.fake is not None:
            out["fake-score pass"] = timed(lambda: trainer.fake.eps(xk, t, ck), args.steps)

    def backward():
        x = teacher.encode(scene.render(cams, train.resolution).rgb)
        guidance_loss(cfg.guidance, teacher, trainer.fake, x, cond, 10**6, g).loss.backward()
    whole = timed(backward, args.steps)
    out["backward"] = max(0.0, whole - out["render"] - out["teacher pass"] - out.get("fake-score pass", 0.0))
    if trainer.fake is not None:
        real = trainer.real_samples(g, args.views)

        def lora(with_real):
            losses = trainer.fake.loss(x0, cond, real if with_real else None, g)
            trainer.fake_opt.zero_grad()
            sum(losses.values()).backward()
            trainer.fake_opt.step()
        out["LoRA step"] = timed(lambda: lora(False), args.steps)
        if real is not None:
            out["discriminator"] = max(0.0, timed(lambda: lora(True), args.steps) - out["LoRA step"])
    return {"step": step, "components": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--teacher", default="shapes")
    ap.add_argument("--out", type=Path, default=Path("docs/performance/guidance.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    results = {m: bench(m, args) for m in PRESETS}
    for m, r in results.items():
        print(m, json.dumps(r))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results["ratio_uni_instruct_to_vsd"] = results["uni-instruct-fkl"]["step"] / results["vsd"]["step"]
    results["command"] = f"python scripts/bench_guidance.py --steps {args.steps} --views {args.views} --teacher {args.teacher}"
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Uni-Instruct / VSD step time: {results['ratio_uni_instruct_to_vsd']:.2f}")


if __name__ == "__main__":
    main()
