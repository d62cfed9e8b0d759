"""Train the shapes teacher from scratch on Shapes World renders (CPU, about 60 minutes on 2 cores).

    uni3d teacher train --out assets/teachers/shapes-v1 [--run-dir runs/teacher] [--resume]
"""

from __future__ import annotations

import copy
import csv
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from uni3d.cameras import Cameras, camera_features
from uni3d.errors import UserError
from uni3d.teachers.shapes_layout import (
    TeacherMeta,
    build_camera_encoder,
    build_scheduler,
    build_text_encoder,
    build_unet,
    save_teacher,
)
from uni3d.world.captions import P_COLOUR_ONLY, P_EMPTY, P_SHAPE_ONLY, sample_captions
from uni3d.world.dataset import ShapesDataset, generate


@dataclass
class TeacherTrainConfig:
    """Training recipe of the shapes teacher."""

    out: Path = Path("assets/teachers/shapes-v1")
    """Where the finished teacher (diffusers layout) is written."""
    run_dir: Path = Path("runs/teacher")
    """Working directory: dataset cache, checkpoints, loss log."""
    resume: bool = False
    """Continue from the last checkpoint in run_dir."""
    steps: int = 4000
    """Optimisation steps."""
    batch_size: int = 48
    """Images per step."""
    lr: float = 5e-4
    """Peak learning rate (AdamW), reached after warmup, cosine-decayed to lr_min."""
    lr_min: float = 3e-5
    """Final learning rate."""
    warmup: int = 100
    """Linear warm-up steps."""
    ema_decay: float = 0.999
    """Decay of the exponential moving average whose weights are shipped."""
    min_snr_gamma: float = 5.0
    """Min-SNR loss weighting (Hang et al. 2023) of the main phase; 0 (plain eps MSE) disables it. A run
    with 0 (and camera tokens and scale-shift) gave dark samples on tinted, 2x2-textured backgrounds."""
    finetune_steps: int = 0
    """Optional second phase after ``steps``: eps MSE (weighted by finetune_min_snr_gamma) at a constant
    learning rate (0: none). Tried once at 600 steps, unweighted, to clean the residual 2x2 texture of the
    samples; it made it worse."""
    finetune_lr: float = 1e-4
    """Learning rate of the second phase."""
    finetune_min_snr_gamma: float = 0.0
    """Min-SNR loss weighting of the second phase (0: plain eps MSE)."""
    finetune_ema_decay: float = 0.99
    """EMA decay of the second phase (short, so the shipped weights follow it)."""
    p_shape_only: float = P_SHAPE_ONLY
    """Fraction of images captioned ``a {shape}`` (their colour left free). A teacher trained with 0.15 (and 0.15
    colour-only) drew "a torus" in 4 of the 6 colours over 32 samples; with 0.25 and 0.25, the shipped teacher's
    under-specified prompts each cover at least 5 (docs/TEACHER.md)."""
    p_colour_only: float = P_COLOUR_ONLY
    """Fraction of images captioned ``a {colour} object`` (their shape left free)."""
    p_empty: float = P_EMPTY
    """Fraction of images with the empty caption (classifier-free guidance's unconditional branch)."""
    camera_dropout: float = 0.15
    """Fraction of images whose camera is withheld, so the teacher also works without one."""
    camera_tokens: int = 2
    """Camera tokens appended to the text for cross-attention, besides the camera in the time embedding
    (0: time embedding only; a teacher trained so drew a cube's edge from every side, where the shipped
    teacher, with 2, draws its face at azimuth 0 and its edge at 45)."""
    default_cfg: float = 3.0
    """Classifier-free guidance scale recorded in teacher.json as the teacher's default for sampling
    (chosen by measurement in docs/TEACHER.md)."""
    time_scale_shift: bool = False
    """The time (and camera) embedding scales and shifts each ResNet block's features (FiLM) instead of
    being added to them."""
    dataset_size: int = 40000
    """Number of renders generated once and cached in run_dir."""
    resolution: int = 32
    """Image side in pixels."""
    seed: int = 0
    """Seed of the dataset, initialisation and batches."""
    checkpoint_every: int = 200
    """Steps between checkpoints."""
    threads: int = 0
    """torch threads (0: leave torch's default)."""
    bf16: bool = True
    """bfloat16 autocast for the UNet (needs a CPU with bf16 support to be fast)."""


def _lr_at(cfg: TeacherTrainConfig, step: int) -> float:
    if step >= cfg.steps:
        return cfg.finetune_lr
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def validate(cfg: TeacherTrainConfig) -> TeacherTrainConfig:
    """Raise UserError with a one-line message for settings that cannot train."""
    fractions = {"--p-shape-only": cfg.p_shape_only, "--p-colour-only": cfg.p_colour_only, "--p-empty": cfg.p_empty}
    for flag, value in fractions.items():
        if not 0 <= value <= 1:
            raise UserError(f"{flag} must be a fraction in [0, 1], got {value}")
    if sum(fractions.values()) > 1:
        raise UserError(f"{', '.join(fractions)} add up to {sum(fractions.values()):g}: at most 1 (the rest are "
                        "fully specified captions)")
    return cfg


def train(cfg: TeacherTrainConfig) -> Path:
    from tqdm import tqdm

    validate(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    data_path = cfg.run_dir / f"dataset-{cfg.dataset_size}-{cfg.resolution}-{cfg.seed}.pt"
    if data_path.exists():
        data = ShapesDataset.load(data_path)
    else:
        data = generate(cfg.dataset_size, cfg.resolution, seed=cfg.seed, progress=True)
        data.save(data_path)

    torch.manual_seed(cfg.seed)
    meta = TeacherMeta(resolution=cfg.resolution, camera_tokens=cfg.camera_tokens, default_cfg=cfg.default_cfg)
    unet = build_unet(meta, time_scale_shift="scale_shift" if cfg.time_scale_shift else "default")
    tokenizer, text_encoder = build_text_encoder()
    camera_encoder = build_camera_encoder(meta)
    scheduler = build_scheduler()
    live = {"unet": unet, "text": text_encoder} | ({"camera": camera_encoder} if camera_encoder is not None else {})
    params = [p for m in live.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    ema = {k: copy.deepcopy(m).requires_grad_(False) for k, m in live.items()}
    abar = scheduler.alphas_cumprod.float()
    ckpt_path, log_path = cfg.run_dir / "checkpoint.pt", cfg.run_dir / "loss.csv"
    start, elapsed0, t0 = 0, 0.0, time.time()
    if cfg.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        for k in live:
            live[k].load_state_dict(ckpt["live"][k])
            ema[k].load_state_dict(ckpt["ema"][k])
        opt.load_state_dict(ckpt["opt"])
        start = ckpt["step"]
        elapsed0 = ckpt.get("elapsed", 0.0)
        print(f"resumed at step {start}")
    elif log_path.exists():
        log_path.unlink()

    def save_checkpoint(step: int) -> None:
        state = {
            "live": {k: m.state_dict() for k, m in live.items()}, "ema": {k: m.state_dict() for k, m in ema.items()},
            "opt": opt.state_dict(), "step": step, "elapsed": elapsed0 + time.time() - t0,
        }
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt_path)

    stop = {"now": False}
    def _on_signal(signum, frame):  # finish the step, checkpoint, exit
        stop["now"] = True
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    u = meta.unshuffle
    log = open(log_path, "a", newline="")
    writer = csv.writer(log)
    if start == 0:
        writer.writerow(["step", "loss", "lr", "seconds"])
    t0 = time.time()
    total = cfg.steps + cfg.finetune_steps
    bar = tqdm(range(start, total), initial=start, total=total, desc="training shapes teacher", unit="step")
    step = start
    for step in bar:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(len(data), (cfg.batch_size,), generator=g)
        x0 = F.pixel_unshuffle(data.float_images(idx), u)
        captions = sample_captions(data.shape_idx[idx], data.colour_idx[idx], generator=g,
                                   p_shape_only=cfg.p_shape_only, p_colour_only=cfg.p_colour_only,
                                   p_empty=cfg.p_empty)
        cams = Cameras(data.azimuth[idx], data.elevation[idx])
        cam = camera_features(cams, cfg.batch_size)
        cam = cam * (torch.rand(cfg.batch_size, 1, generator=g) >= cfg.camera_dropout)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (cfg.batch_size,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = abar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            cond = text_encoder(tokenizer(captions))
            if camera_encoder is not None:
                cond = torch.cat([cond, camera_encoder(cam)], dim=1)
            pred = unet(x_t, t, encoder_hidden_states=cond, class_labels=cam).sample
        per = (pred.float() - eps).pow(2).mean(dim=(1, 2, 3))
        gamma = cfg.min_snr_gamma if step < cfg.steps else cfg.finetune_min_snr_gamma
        if gamma > 0:
            snr = abar[t] / (1 - abar[t])
            per = per * snr.clamp(max=gamma) / snr
        loss = per.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(cfg.ema_decay if step < cfg.steps else cfg.finetune_ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for k in live:
                for pe, pl in zip(ema[k].parameters(), live[k].parameters()):
                    pe.lerp_(pl, 1 - decay)
        writer.writerow([step + 1, f"{loss.item():.5f}", f"{_lr_at(cfg, step):.2e}", f"{elapsed0 + time.time() - t0:.1f}"])
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % cfg.checkpoint_every == 0 or stop["now"]:
            log.flush()
            save_checkpoint(step + 1)
        if stop["now"]:
            print(f"\ninterrupted: checkpoint at step {step + 1} in {ckpt_path}; rerun with --resume")
            log.close()
            raise SystemExit(130)
    log.close()
    for s, h in old.items():
        signal.signal(s, h)
    save_checkpoint(total)
    save_teacher(cfg.out, ema["unet"], ema["text"], tokenizer, scheduler, meta, ema.get("camera"))
    write_training_record(cfg)
    return cfg.out


def _wall_seconds(seconds: list[float]) -> float:
    """Total training time from the log's clock column, which restarts at 0 after an old-style resume."""
    total, last = 0.0, 0.0
    for x in seconds:
        if x < last:
            total += last
        last = x
    return total + last


def training_command(cfg: TeacherTrainConfig) -> str:
    """The ``uni3d teacher train`` command line that reproduces ``cfg`` (its non-default fields)."""
    from dataclasses import fields

    parts = ["uni3d teacher train"]
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.name == "resume" or value == f.default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else flag.replace("--", "--no-", 1))
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def write_training_record(cfg: TeacherTrainConfig) -> None:
    """Copy the loss log into the teacher and write training.json (command, data, steps, wall time)."""
    import json
    import shutil

    log = cfg.run_dir / "loss.csv"
    shutil.copy(log, cfg.out / "loss.csv")
    with open(log) as f:
        rows = list(csv.DictReader(f))
    record = {
        "command": training_command(cfg),
        "steps": cfg.steps, "finetune_steps": cfg.finetune_steps, "batch_size": cfg.batch_size,
        "images_seen": (cfg.steps + cfg.finetune_steps) * cfg.batch_size,
        "dataset_renders": cfg.dataset_size, "resolution": cfg.resolution, "seed": cfg.seed,
        "wall_seconds": _wall_seconds([float(r["seconds"]) for r in rows]),
        "final_loss_mean_last_100": sum(float(r["loss"]) for r in rows[-100:]) / max(1, len(rows[-100:])),
        "threads": torch.get_num_threads(), "bf16": cfg.bf16,
        "recipe": {k: v for k, v in asdict(cfg).items() if k not in ("out", "run_dir", "resume")},
    }
    (cfg.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
