"""One train step, and the Trainer that holds the clock, optimizers, checkpoints and progress.

The Trainer holds no math: the formulas live in ``uni3d.guidance``.
"""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from uni3d.cameras import Cameras, CameraSampler
from uni3d.guidance.config import GuidanceConfig
from uni3d.guidance.distill import draw_noise, guidance_loss
from uni3d.scenes.base import Scene
from uni3d.teachers.base import Conditioning, Teacher
from uni3d.teachers.fake_score import FakeScore, FakeScoreConfig, camera_conditioning
from uni3d.teachers.sample_cache import cached_teacher_samples


@dataclass
class TrainConfig:
    """The optimisation loop."""

    steps: int = 500
    """Scene optimisation steps."""
    views: int = 1
    """Rendered views per step (one view for 500 steps made as good a mug as two for 1000, in a quarter of the time)."""
    resolution: int = 32
    """Render resolution (pixels); the teacher resizes to its own."""
    seed: int = 0
    """Seed of the scene initialisation, cameras and noise: a seeded CPU run is deterministic."""
    fake_steps: int = 1
    """Fake-score (LoRA) steps per scene step (VSD, Uni-Instruct)."""
    overlap_fake: bool = True
    """With two or more torch threads, compute the fake score's training gradient on a second thread, each on half
    the threads: for VSD beside the teacher's and the fake score's guidance passes and the scene's backward, for
    Uni-Instruct beside the backward (through both UNets). The small UNet passes gain little from more cores
    within one operation (docs/PERFORMANCE.md). Off: one stream of work on all threads. Either way a seeded run is
    deterministic."""
    lr_scale: float = 1.0
    """Multiplier of every scene learning rate."""
    regularizer_weights: dict[str, float] = field(default_factory=dict)
    """Weight of each scene regulariser by name (loss_opacity, loss_orient, ...); missing names weigh 1."""
    checkpoint_every: int = 250
    """Steps between checkpoints (also written on SIGINT / SIGTERM and at the end)."""
    log_every: int = 10
    """Steps between lines of metrics.jsonl."""
    elevation_range: tuple[float, float] = (-10.0, 45.0)
    """Elevation range of the sampled views (degrees)."""


SCENE_TIMINGS = ("render", "scene_backward", "scene_update")
"""The parts of ``Trainer.timings`` spent on the scene side of the step rather than in the UNet passes."""


def outside_unet_share(timings: dict[str, float]) -> float:
    """Fraction of the step spent on the scene side (render, its backward, its update) rather than in the
    UNet passes (teacher, fake score, their backward, the fake score's training; the guidance formulas, a
    few elementwise operations, count on the UNet side)."""
    total = sum(timings.values())
    return sum(timings.get(k, 0.0) for k in SCENE_TIMINGS) / total if total > 0 else 0.0


@contextmanager
def torch_threads(n: int):
    """Inside: torch's intra-op threads of the calling thread set to ``n``."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def on_threads(n: int, fn, *args):
    """``fn(*args)`` with the calling thread's torch threads set to ``n``."""
    with torch_threads(n):
        return fn(*args)


class FakeBeside:
    """The fake score's gradient (``Trainer.fake_gradients``) being computed on the overlap's second thread; from
    here until ``wait`` the calling thread runs on the other half of the torch threads."""

    def __init__(self, pool: ThreadPoolExecutor, work, *args):
        self.before = torch.get_num_threads()
        half = self.before // 2
        self.future: Future = pool.submit(on_threads, self.before - half, work, *args)
        torch.set_num_threads(half)

    def wait(self) -> None:
        """Until the second thread is done (an error there too, left for ``result``); the threads put back."""
        try:
            wait([self.future])
        finally:
            torch.set_num_threads(self.before)

    def result(self) -> dict[str, torch.Tensor]:
        """The fake score's losses, its gradient in its parameters' ``.grad``; an error there is raised here."""
        self.wait()
        return self.future.result()


class Interrupted(Exception):
    """Raised after a checkpoint when SIGINT / SIGTERM arrived."""


class Trainer:
    """Optimises a scene so that its renders follow the teacher's guidance for a prompt.

    Args:
        prompts: one prompt for every view, or one per view (2D particles).
        fixed_cameras: always render these views (2D mode) instead of sampling.
    """

    def __init__(self, cfg: TrainConfig, guidance: GuidanceConfig, fake: FakeScoreConfig, scene: Scene,
                 teacher: Teacher, prompts: str | list[str], run_dir: Path | None = None,
                 fixed_cameras: Cameras | None = None):
        self.cfg, self.guidance, self.scene, self.teacher = cfg, guidance, scene, teacher
        self.prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self.run_dir = run_dir
        self.fixed_cameras = fixed_cameras
        self.sampler = CameraSampler(elevation_range=cfg.elevation_range)
        groups = [dict(g, lr=g["lr"] * cfg.lr_scale) for g in scene.param_groups()]
        self.opt = torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15, fused=True)  # one kernel over every grid
        scene.bind_optimizer(self.opt)
        self.fake = FakeScore(teacher, fake) if guidance.needs_fake_score else None
        # fused: one kernel over the LoRA's ~120 small tensors (6.6 -> 1.2 ms a step on 2 cores)
        self.fake_opt = torch.optim.AdamW(self.fake.trainable_parameters(), lr=fake.lr, fused=True) if self.fake else None
        self.real: dict[str, torch.Tensor] = {}
        self.step, self.skipped = 0, 0
        self._beside: ThreadPoolExecutor | None = None  # the second thread of overlap_fake, made on first use
        self.timings: dict[str, float] = {}
        """Seconds summed over steps: render (cameras, scene forward, conditioning), guidance (teacher and fake
        passes, the formula, the backward through the UNets down to x0), scene_backward (from x0 into the scene; for a latent
        teacher through its encoder),
        scene_update (optimizer, occupancy), fake (the fake score's own steps; with overlap_fake, what of them the
        first thread's work did not hide)."""

    # --- data -------------------------------------------------------------------------------
    def cameras(self, g: torch.Generator) -> Cameras:
        return self.fixed_cameras if self.fixed_cameras is not None else self.sampler.sample(self.cfg.views, g)

    def conditioning(self, cams: Cameras) -> Conditioning:
        if len(self.prompts) == 1:
            return camera_conditioning(self.teacher, self.prompts[0], cams)
        parts = [camera_conditioning(self.teacher, p, cams[i:i + 1]) for i, p in enumerate(self.prompts)]
        return Conditioning.cat(parts)

    def real_samples(self, g: torch.Generator, n: int) -> torch.Tensor | None:
        """Cached teacher samples of each view's prompt: the ratio head's real data."""
        gc = self.guidance
        if gc.method != "uni-instruct":
            return None
        prompts = self.prompts * n if len(self.prompts) == 1 else self.prompts
        for p in set(prompts):
            if p not in self.real:
                self.real[p], _ = cached_teacher_samples(self.teacher, p, gc.ratio_samples, gc.cfg_scale)
        return torch.stack([self.real[p][torch.randint(len(self.real[p]), (1,), generator=g).item()] for p in prompts[:n]])

    # --- the step ---------------------------------------------------------------------------
    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        torch.manual_seed(cfg.seed * 1_000_003 + step)  # scenes draw jitter from the global RNG: resumable
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        clock = time.perf_counter()
        cams = self.cameras(g)                                               # 1 cameras
        out = self.scene.render(cams, cfg.resolution)                        # 2 differentiable render
        x0 = self.teacher.encode(out.rgb)                                    # 3 teacher space (grad flows)
        cond = self.conditioning(cams)                                       # 4 prompt + camera per view
        t_render = time.perf_counter()
        noise = draw_noise(self.guidance, self.teacher, x0, step, g)         # 5 diffusion times and noises
        # 9a with overlap_fake, the fake score's first gradient meanwhile, on the second thread, from here for VSD
        # (it needs nothing of the guidance: it runs beside the teacher's and the fake score's passes too), after
        # the guidance for Uni-Instruct (whose pass through the fake score holds the LoRA frozen). It reads the
        # LoRA that the passes and their backward read too, and nothing writes it before the fake score's step (9).
        beside = self.second_thread()
        first_fake: FakeBeside | None = None
        try:
            if beside is not None and self.fake_needs_no_guidance():
                first_fake = FakeBeside(beside, self.fake_gradients, x0.detach(), cond, None, g)
            guided = guidance_loss(self.guidance, self.teacher, self.fake, x0, cond, step, g, noise)  # 6 scores
            losses = {"loss_guidance": guided.loss, **self.scene.regularizers(out, step)}  # 7 named losses
            total = sum(cfg.regularizer_weights.get(k, 1.0) * v for k, v in losses.items())
            real = self.real_samples(g, len(cams)) if self.fake is not None else None
            if beside is not None and first_fake is None:
                first_fake = FakeBeside(beside, self.fake_gradients, x0.detach(), cond, real, g)
            self.opt.zero_grad(set_to_none=True)
            x0_grad_at = []  # when the gradient reaches x0: the UNets' backward is done, the scene's starts
            if x0.requires_grad:
                x0.register_hook(lambda grad: x0_grad_at.append(time.perf_counter()))
            total.backward()
            t_guidance = time.perf_counter()
            if self._grads_finite():                                         # 8 NaN guard
                self.opt.step()
            else:
                self.skipped += 1
            self.scene.post_backward(step)
            t_update = time.perf_counter()
        finally:
            if first_fake is not None:
                first_fake.wait()  # the second thread is done before anything, an error too, goes on
        fake_losses = {}
        if self.fake is not None:                                            # 9 fake score follows the scene
            for i in range(cfg.fake_steps):
                if first_fake is not None and i == 0:
                    fake_losses = first_fake.result()
                else:
                    fake_losses = self.fake_gradients(x0.detach(), cond, real, g)
                self.fake_opt.step()
        t_end = time.perf_counter()
        t_x0 = x0_grad_at[0] if x0_grad_at else t_guidance
        for k, v in (("render", t_render - clock), ("guidance", t_x0 - t_render), ("scene_backward", t_guidance - t_x0),
                     ("scene_update", t_update - t_guidance), ("fake", t_end - t_update)):
            self.timings[k] = self.timings.get(k, 0.0) + v
        return {**{k: float(v.detach()) for k, v in {**losses, **fake_losses}.items()},
                "t": float(guided.t.float().mean()), **guided.stats}

    def fake_needs_no_guidance(self) -> bool:
        """Whether the fake score's gradient may start before the guidance: VSD's needs nothing of it, while
        Uni-Instruct's needs the teacher samples drawn after it, and its guidance's pass through the fake score holds
        the LoRA frozen."""
        return self.guidance.method == "vsd"

    def second_thread(self) -> ThreadPoolExecutor | None:
        """The thread of ``overlap_fake`` (made on first use), or None when the step runs as one stream."""
        if self.fake is None or not self.cfg.overlap_fake or torch.get_num_threads() < 2:
            return None
        if self._beside is None:
            self._beside = ThreadPoolExecutor(1, "uni3d-fake")
        return self._beside

    def fake_gradients(self, x0: torch.Tensor, cond: Conditioning, real: torch.Tensor | None,
                       g: torch.Generator) -> dict[str, torch.Tensor]:
        """The fake score's losses on detached renders, their gradient left in its parameters' ``.grad``."""
        losses = self.fake.loss(x0, cond, real, g)
        self.fake_opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        return losses

    def _grads_finite(self) -> bool:
        # One sum per gradient, read once: any NaN or inf makes it non-finite (a sum past float32's range too, a
        # step that would wreck the scene anyway); an isfinite mask per gradient cost ~1 ms a step on 2 cores.
        grads = [p.grad for grp in self.opt.param_groups for p in grp["params"] if p.grad is not None]
        if not grads or bool(torch.stack([gr.sum() for gr in grads]).isfinite().all()):
            return True
        self.opt.zero_grad(set_to_none=True)
        return False

    # --- the loop ---------------------------------------------------------------------------
    def fit(self, progress: bool = True) -> dict[str, float]:
        """Run to ``cfg.steps`` from the current step; checkpoints on schedule and on SIGINT/SIGTERM."""
        from tqdm import tqdm

        stop = {"now": False}
        handlers = {}
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[s] = signal.signal(s, lambda *_: stop.__setitem__("now", True))
            except ValueError:  # not the main thread
                pass
        metrics_file = open(self.run_dir / "metrics.jsonl", "a") if self.run_dir else None
        bar = tqdm(range(self.step, self.cfg.steps), initial=self.step, total=self.cfg.steps, unit="step",
                   disable=not progress, desc="distilling", dynamic_ncols=True)
        last: dict[str, float] = {}
        try:
            for step in bar:
                last = self.train_step(step)
                self.step = step + 1
                bar.set_postfix({k.removeprefix("loss_"): f"{v:.3g}" for k, v in last.items() if k.startswith("loss_")})
                if metrics_file and (self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps):
                    metrics_file.write(json.dumps({"step": self.step, **last, "skipped": self.skipped}) + "\n")
                    metrics_file.flush()
                if self.run_dir and (self.step % self.cfg.checkpoint_every == 0 or stop["now"]):
                    self.save_checkpoint()
                if stop["now"]:
                    raise Interrupted(f"interrupted at step {self.step}")
            if self.run_dir:
                self.save_checkpoint()
        finally:
            bar.close()
            if metrics_file:
                metrics_file.close()
            for s, h in handlers.items():
                signal.signal(s, h)
        return last

    # --- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        assert self.run_dir is not None
        return self.run_dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        """Scene, optimizers and fake-score adapter; never the teacher. Written atomically."""
        state = {"step": self.step, "skipped": self.skipped, "scene": self.scene.state_dict(),
                 "opt": self.opt.state_dict(), "timings": self.timings}
        if self.fake is not None:
            state["fake"] = self.fake.adapter_state()
            state["fake_opt"] = self.fake_opt.state_dict()
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)

    def load_checkpoint(self) -> None:
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)  # copied to the parameters' devices
        self.scene.load_state_dict(state["scene"])
        self.opt.load_state_dict(state["opt"])
        self.step, self.skipped = state["step"], state["skipped"]
        self.timings = state.get("timings", {})
        if self.fake is not None:
            self.fake.load_adapter_state(state["fake"])
            self.fake_opt.load_state_dict(state["fake_opt"])

