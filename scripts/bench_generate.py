"""The default run of each method, end to end: docs/PERFORMANCE.md (default-run part).

    python scripts/bench_generate.py [--prompt "a red mug"] [--methods sds vsd uni-instruct-fkl]

Each method runs `uni3d generate PROMPT --config configs/METHOD.yaml` in its own process (default
settings otherwise, the machine's default threads) and its metrics.json gives: the training time
(the budget of issue 4: SDS <= 60 s, Uni-Instruct <= 120 s), seconds per step, the share of the
step spent outside the UNet passes (render, its backward and the scene's update; budget <= 20%)
and the process's peak resident memory (budget <= 2 GB); and what the run made, scored by `uni3d evaluate`
(nearest ground-truth shape, Chamfer-L1, colour, handles). Runs go to runs/bench_generate/METHOD.
Run it on an otherwise idle machine: the times are wall clock.

Any other flag goes to every `uni3d generate` (a trial of a setting); give such a run its own --out, e.g.

    python scripts/bench_generate.py --methods sds --out docs/performance/levers/sds-one-draw-500-steps.json \
        --noise-draws 1 --steps 500

and docs/PERFORMANCE.md lists the trials under docs/performance/levers/ beside the defaults.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

METHODS = ("sds", "vsd", "uni-instruct-fkl")
BUDGET_SECONDS = {"sds": 60.0, "uni-instruct-fkl": 120.0}


def run(method: str, prompt: str, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "uni3d.cli", "generate", prompt, "--config", f"configs/{method}.yaml",
           "--out", str(out), "--overwrite", "--no-progress", *extra]
    print("$", " ".join(cmd[2:]), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    m = json.loads((out / "metrics.json").read_text())
    from uni3d.evaluate import evaluate_run

    score = evaluate_run(out)
    return {
        "nearest_shape": score["nearest_shape"], "chamfer": round(score["chamfer"], 4), "colour": score["colour"],
        "handles": score["handles"],
        "steps": m["steps"], "train_seconds": m["train_seconds_this_session"], "process_seconds": round(wall, 1),
        "seconds_per_step": m["seconds_per_step"], "outside_unet_share": m["outside_unet_share"],
        "peak_memory_mb": m["peak_memory_mb"], "flags": extra,
        "noise_draws": yaml.safe_load((out / "config.yaml").read_text())["guidance"]["noise_draws"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt", default="a red mug")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--runs", type=Path, default=Path("runs/bench_generate"))
    ap.add_argument("--out", type=Path, default=Path("docs/performance/generate.json"))
    args, extra = ap.parse_known_args()  # any other flag goes to every uni3d generate (a trial)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for method in args.methods:
        out = args.runs / method
        if out.exists():
            shutil.rmtree(out)
        results[method] = run(method, args.prompt, out, extra)
        print(method, json.dumps(results[method]), flush=True)
    results["command"] = " ".join(["python scripts/bench_generate.py", f'--prompt "{args.prompt}"', *(
        [f"--methods {' '.join(args.methods)}", f"--out {args.out}", *extra] if extra else [])])
    results["budget_seconds"] = BUDGET_SECONDS
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
