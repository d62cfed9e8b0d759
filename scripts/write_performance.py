"""Compose docs/PERFORMANCE.md from the JSON the benchmark scripts wrote under docs/performance/.

    python scripts/bench_guidance.py && python scripts/write_performance.py
"""

from __future__ import annotations

import json
from pathlib import Path

DOCS = Path("docs")


def guidance_section(data: dict) -> list[str]:
    methods = [m for m in data if isinstance(data[m], dict)]
    comps = sorted({c for m in methods for c in data[m]["components"]},
                   key=["render", "teacher pass", "fake-score pass", "backward", "LoRA step", "discriminator"].index)
    lines = [
        "## Guidance: one scene step, by component",
        "",
        f"Measured by `{data['command']}` (NeRF scene, shapes teacher, 2 threads). Components are timed",
        "on their own; the step is the Trainer's whole `train_step`. Seconds.",
        "",
        "| method | step | " + " | ".join(comps) + " |",
        "|---|---|" + "---|" * len(comps),
    ]
    for m in methods:
        c = data[m]["components"]
        lines.append(f"| {m} | {data[m]['step']:.3f} | " + " | ".join(f"{c[k]:.3f}" if k in c else "-" for k in comps) + " |")
    lines += ["", f"Uni-Instruct step / VSD step: **{data['ratio_uni_instruct_to_vsd']:.2f}x** (budget: at most 2.0x).", ""]
    return lines


def main() -> None:
    lines = ["# Performance", "", "Every number below is written by the script named with it; rerun to refresh.", ""]
    path = DOCS / "performance" / "guidance.json"
    if path.exists():
        lines += guidance_section(json.loads(path.read_text()))
    (DOCS / "PERFORMANCE.md").write_text("\n".join(lines))
    print(f"wrote {DOCS / 'PERFORMANCE.md'}")


if __name__ == "__main__":
    main()
