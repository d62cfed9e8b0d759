"""One `ns-train` step of the uni3d methods, with the fake score's gradient on a second thread and without:
docs/PERFORMANCE.md (nerfstudio part). Runs in the nerfstudio environment (`bash scripts/test_nerfstudio.sh`
builds it):

    .venv-ns/bin/python scripts/bench_nerfstudio.py [--steps 40] [--methods vsd uni-instruct]

Each method's `ns-train uni3d-METHOD` configuration (its preset, the embedded teacher, "a red mug") is stepped by
uni3d's nerfstudio Trainer (`train_iteration` and its callbacks, no viewer or writers) for --steps steps with
`--pipeline.model.overlap-fake` on, then again from the same start with it off, on the machine's default
threads (the overlap needs two or more). A step's time is the median over the steps after the first five (the
first ones fill caches: the teacher's samples for Uni-Instruct's ratio head). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

OUT = Path("docs/performance/nerfstudio.json")
WARM_UP = 5


def seconds_per_step(method: str, overlap: bool, steps: int) -> float:
    from uni3d.nerfstudio.methods import trainer_config
    from uni3d.nerfstudio.trainer import Uni3DTrainer

    config = trainer_config(method)
    config.pipeline.model.overlap_fake = overlap
    torch.manual_seed(0)
    trainer = Uni3DTrainer(config)
    trainer.setup_without_viewer()
    times = []
    for step in range(steps):
        start = time.perf_counter()
        trainer.train_iteration(step)
        for callback in trainer.callbacks:
            callback.run_callback(step)
        times.append(time.perf_counter() - start)
    return statistics.median(times[WARM_UP:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40, help=f"steps per measurement (the first {WARM_UP} not timed)")
    ap.add_argument("--methods", nargs="+", default=["vsd", "uni-instruct"], help="ns-train methods, without uni3d-")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.steps <= WARM_UP:
        ap.error(f"--steps must be more than {WARM_UP}")
    data = {"command": " ".join(["python scripts/bench_nerfstudio.py", *(sys.argv[1:] if argv is None else argv)]),
            "threads": torch.get_num_threads(), "steps": args.steps}
    for method in args.methods:
        row = {}
        for overlap in (True, False):
            row["overlap" if overlap else "one stream"] = seconds_per_step(method, overlap, args.steps)
            print(f"uni3d-{method}, {'overlap' if overlap else 'one stream'}: "
                  f"{row['overlap' if overlap else 'one stream']:.3f} s / step", flush=True)
        data[f"uni3d-{method}"] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
