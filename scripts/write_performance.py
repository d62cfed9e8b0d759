"""Compose docs/PERFORMANCE.md from the JSON the benchmark scripts wrote under docs/performance/.

    python scripts/bench_guidance.py && python scripts/bench_generate.py && python scripts/write_performance.py

docs/performance/nerfstudio.json, when there, is written by scripts/bench_nerfstudio.py in the nerfstudio
environment.
"""

from __future__ import annotations

import json
from pathlib import Path

from uni3d.training import SCENE_TIMINGS

DOCS = Path("docs")


def guidance_section(data: dict) -> list[str]:
    methods = [m for m in data if isinstance(data[m], dict)]
    comps = sorted({c for m in methods for c in data[m]["components"]},
                   key=["render", "teacher pass", "fake-score pass", "backward", "LoRA step", "discriminator"].index)
    lines = [
        "## Guidance: one scene step, by component",
        "",
        f"Measured by `{data['command']}` (NeRF scene, shapes teacher, 2 threads). Components are timed",
        "on their own, on both threads; the step is the Trainer's whole `train_step`, where VSD's and Uni-Instruct's fake",
        "score trains on a second thread (`--overlap-fake`: VSD's beside the guidance passes and the scene's backward,",
        "Uni-Instruct's beside the backward), so it is less than the sum of its parts. Seconds, each the median over as",
        "many calls as `--steps`.",
        "",
        "| method | step | " + " | ".join(comps) + " |",
        "|---|---|" + "---|" * len(comps),
    ]
    for m in methods:
        c = data[m]["components"]
        lines.append(f"| {m} | {data[m]['step']:.3f} | " + " | ".join(f"{c[k]:.3f}" if k in c else "-" for k in comps) + " |")
    lines += ["", f"Uni-Instruct step / VSD step: **{data['ratio_uni_instruct_to_vsd']:.2f}x** (budget: at most 2.0x).", ""]
    return lines


def generate_section(data: dict) -> list[str]:
    methods = [m for m in data if isinstance(data[m], dict) and "steps" in data[m]]
    budget = data.get("budget_seconds", {})
    lines = [
        "## The default run, end to end",
        "",
        f"Measured by `{data['command']}`: `uni3d generate` with each method's preset and default settings, one",
        "process per run, on this machine's 2 cores. Outside the UNet: the render, its backward and the scene's",
        "update, as a share of the step (the rest is the teacher and fake-score passes, their backward and the fake",
        "score's training). VSD and Uni-Instruct compute the fake score's training gradient on a second thread, VSD",
        "beside the guidance passes and the scene's backward, Uni-Instruct beside the backward, each thread on one core",
        "(`--overlap-fake`, the default on two threads): the parts below are wall time on the first thread, and `fake` is",
        "only what the second thread added after the first was done. Peak memory: the process's maximum resident set.",
        "",
        "| method | steps | training, s | budget, s | s / step | outside the UNet (budget 20%) | peak memory, MB (budget 2048) "
        "| what it made: nearest shape, Chamfer-L1, colour, handles |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        r = data[m]
        per_step = sum(r["seconds_per_step"].values())
        made = what_it_made(r) if "chamfer" in r else "-"
        lines.append(f"| {m} | {r['steps']} | {r['train_seconds']:.0f} | {budget.get(m, '-')} | {per_step:.3f} | "
                     f"{r['outside_unet_share']:.0%} | {r['peak_memory_mb']:.0f} | {made} |")
    parts = sorted({k for m in methods for k in data[m]["seconds_per_step"]})
    lines += ["", "Seconds per step by part of the step (`Trainer.timings`):", "",
              "| method | " + " | ".join(parts) + " |", "|---|" + "---|" * len(parts)]
    for m in methods:
        sp = data[m]["seconds_per_step"]
        lines.append(f"| {m} | " + " | ".join(f"{sp.get(k, 0.0):.3f}" for k in parts) + " |")
    draws = [f"{m} draws {data[m]['noise_draws']}" for m in methods if data[m].get("noise_draws", 1) > 1]
    if draws:
        lines += ["", f"Diffusion times and noises drawn per rendered view (`--noise-draws`, set by the presets): "
                  f"{', '.join(draws)}, the others one. Each render then serves that many teacher passes, whose mean "
                  "gradient has that much less variance; the trials below hold the same method with one draw."]
    return lines + [""] + time_reading(data, methods) + share_reading(data, methods)


def time_reading(data: dict, methods: list[str]) -> list[str]:
    """Each method whose default run took longer than its budget, from the same measurements."""
    lines = []
    for m in methods:
        r, budget = data[m], data.get("budget_seconds", {}).get(m)
        if budget is None or r["train_seconds"] <= budget:
            continue
        per_step = sum(r["seconds_per_step"].values())
        lines.append(
            f"- **{m} misses its {budget:.0f} s budget here**: {r['train_seconds']:.1f} s of training, "
            f"{per_step:.3f} s a step for {r['steps']} steps; within it, a step may take {budget / r['steps']:.3f} s. "
            "Its UNet passes are "
            f"{1 - r['outside_unet_share']:.0%} of the step.")
    return lines + [""] if lines else []


def what_it_made(r: dict) -> str:
    """The run's mesh as `uni3d evaluate` scored it: nearest shape, Chamfer-L1, colour, handles."""
    return f"{r['nearest_shape']}, {r['chamfer']:.4f}, {r['colour']}, {r['handles']}"


def scene_and_unet(seconds_per_step: dict[str, float]) -> tuple[float, float]:
    """Seconds a step spends on the scene side (render, its backward, the update) and in the UNet passes."""
    scene = sum(seconds_per_step.get(k, 0.0) for k in SCENE_TIMINGS)
    return scene, sum(v for k, v in seconds_per_step.items() if k not in SCENE_TIMINGS)


def share_reading(data: dict, methods: list[str]) -> list[str]:
    """What the outside-the-UNet budget asks of each method that misses it, from the same measurements."""
    lines = []
    for m in methods:
        scene, unet = scene_and_unet(data[m]["seconds_per_step"])
        if data[m]["outside_unet_share"] <= SHARE_BUDGET:
            continue
        need = unet * SHARE_BUDGET / (1 - SHARE_BUDGET)
        lines.append(
            f"- **{m} misses the {SHARE_BUDGET:.0%} budget**: its scene side (render, backward, update) takes "
            f"{scene * 1e3:.1f} ms a step and its UNet passes {unet * 1e3:.1f} ms; {SHARE_BUDGET:.0%} would need the "
            f"scene side under {need * 1e3:.1f} ms, {scene / need:.1f}x faster. The scene side costs the same whatever "
            "the method, so the method with the fewest UNet passes (one CFG-batched teacher pass, no fake score) has "
            "the largest share; with the small shapes teacher that pass is short, with a Stable Diffusion UNet it is "
            "far longer.")
    return lines + [""] if lines else []


def levers_section(trials: list[dict]) -> list[str]:
    """Settings tried beside the defaults (against the budgets): one row per trial file and method."""
    lines = [
        "## Trials beside the defaults",
        "",
        "Each row is the default run with the settings named, measured as above, in the same sitting, by the command",
        "under the table (each trial's JSON in docs/performance/levers/ holds its command).",
        "",
        "| method | settings changed | s / step | scene side, ms / step | UNet passes, ms / step | outside the UNet "
        "| training, s | what it made: nearest shape, Chamfer-L1, colour, handles |",
        "|---|---|---|---|---|---|---|---|",
    ]
    commands = []
    for data in trials:
        commands.append(data["command"])
        for m, r in data.items():
            if not (isinstance(r, dict) and "steps" in r):
                continue
            scene, unet = scene_and_unet(r["seconds_per_step"])
            made = what_it_made(r)
            lines.append(f"| {m} | `{' '.join(r['flags'])}` | {scene + unet:.3f} | {scene * 1e3:.1f} | {unet * 1e3:.1f} | "
                         f"{r['outside_unet_share']:.0%} | {r['train_seconds']:.0f} | {made} |")
    return lines + ["", "Commands:", ""] + [f"- `{c}`" for c in commands] + [""]


def nerfstudio_section(data: dict) -> list[str]:
    """One ns-train step of each uni3d method, the fake score's gradient on a second thread or not."""
    methods = [m for m in data if isinstance(data[m], dict)]
    lines = [
        "## nerfstudio: one `ns-train` step",
        "",
        f"Measured by `.venv-ns/bin/{data['command']}` on {data['threads']} threads: each method's `ns-train` configuration",
        "stepped by uni3d's nerfstudio Trainer (its training iteration and callbacks, without the viewer), with the",
        "fake score's gradient computed on a second thread during nerfstudio's backward, for VSD during the guidance",
        "passes too (`--pipeline.model.overlap-fake`, the default), and without. Seconds, each the median over the steps",
        f"after the first five of {data['steps']}.",
        "",
        "| method | overlap | one stream | one stream / overlap |",
        "|---|---|---|---|",
    ]
    for m in methods:
        r = data[m]
        lines.append(f"| {m} | {r['overlap']:.3f} | {r['one stream']:.3f} | {r['one stream'] / r['overlap']:.2f}x |")
    return lines + [""]


SHARE_BUDGET = 0.20
"""The largest share of a step that may be spent outside the UNet passes (issue 4)."""


def main() -> None:
    lines = ["# Performance", "", "Every number below is written by the script named with it; rerun to refresh.", ""]
    path = DOCS / "performance" / "guidance.json"
    if path.exists():
        lines += guidance_section(json.loads(path.read_text()))
    path = DOCS / "performance" / "generate.json"
    if path.exists():
        lines += generate_section(json.loads(path.read_text()))
    path = DOCS / "performance" / "nerfstudio.json"
    if path.exists():
        lines += nerfstudio_section(json.loads(path.read_text()))
    trials = sorted((DOCS / "performance" / "levers").glob("*.json"))
    if trials:
        lines += levers_section([json.loads(t.read_text()) for t in trials])
    (DOCS / "PERFORMANCE.md").write_text("\n".join(lines))
    print(f"wrote {DOCS / 'PERFORMANCE.md'}")


if __name__ == "__main__":
    main()
