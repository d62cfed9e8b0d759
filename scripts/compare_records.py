"""Before and after a preset change: the same runs (prompt, seed) under two settings, side by side.

    python scripts/compare_records.py BEFORE AFTER

BEFORE and AFTER are run directories laid out as the benchmark's (PROMPT/sSEED/evaluation.json): a `uni3d
compare --out DIR`'s DIR/runs/METHOD, or records in docs/benchmark/runs/METHOD, e.g. those of an earlier commit:

    git worktree add /tmp/before REV
    python scripts/compare_records.py /tmp/before/docs/benchmark/runs/vsd runs/trial/runs/vsd

Only runs found in both are compared; --prompts (prompt sets too: full, under, ...) and --seeds narrow them. Each
is scored as the benchmark scores it (scripts/benchmark.py: the quality bar, Chamfer-L1 below 0.025); prints a
markdown table of the runs and the totals, per shape too, and for under-specified prompts the diversity of each
side over the seeds both have, as the benchmark's diversity table.
"""

from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path
from types import SimpleNamespace

from uni3d.compare.results import ok_row
from uni3d.compare.spec import expand_prompts
from uni3d.compare.stats import diversity_table, markdown_diversity
from uni3d.world.captions import parse_prompt

BENCHMARK = runpy.run_path(str(Path(__file__).with_name("benchmark.py")))


def load(root: Path) -> dict[tuple[str, int], dict]:
    """(prompt, seed) -> the run's row, for every evaluation.json under ``root``."""
    rows = {}
    for path in sorted(root.glob("*/s*/evaluation.json")):
        evaluation = json.loads(path.read_text())
        task = SimpleNamespace(method=root.name, prompt=evaluation["prompt"], seed=int(path.parent.name[1:]),
                               run_dir=path.parent)
        rows[(task.prompt, task.seed)] = ok_row(task, evaluation)
    return rows


def verdict(row: dict) -> str:
    why = BENCHMARK["missed_bar"](row) if row["kind"] == "full" else []
    return f"{row['nearest_shape']}, {row['chamfer']:.4f}, {row['colour']}, {row['handles']}" + (
        f" (misses: {', '.join(why)})" if why else "")


def summary(label: str, before: list[dict], after: list[dict]) -> str:
    def totals(rows: list[dict]) -> str:
        full = [r for r in rows if r["kind"] == "full"]
        met = sum(not BENCHMARK["missed_bar"](r) for r in full)
        goal = sum(BENCHMARK["meets_goal"](r) for r in full)
        mean = sum(r["chamfer"] for r in rows) / len(rows)
        return f"mean Chamfer-L1 {mean:.4f}; bar met {met} of {len(full)}; below {BENCHMARK['GOAL']} {goal} of {len(full)}"
    return f"| {label} | {len(before)} | {totals(before)} | {totals(after)} |"


def compare(before_dir: Path, after_dir: Path, prompts: list[str] | None = None,
            seeds: list[int] | None = None) -> list[str]:
    """The comparison's markdown lines, over the runs in both directories (of ``prompts`` and ``seeds`` only, if
    given)."""
    before, after = load(before_dir), load(after_dir)
    keys = sorted(k for k in before.keys() & after.keys()
                  if (prompts is None or k[0] in prompts) and (seeds is None or k[1] in seeds))
    if not keys:
        raise SystemExit(f"no run (prompt, seed) asked for is in both {before_dir} and {after_dir}")
    lines = ["| prompt | seed | before: nearest shape, Chamfer-L1, colour, handles | after |", "|---|---|---|---|"]
    lines += [f"| {p} | {s} | {verdict(before[p, s])} | {verdict(after[p, s])} |" for p, s in keys]
    lines += ["", "| runs | n | before | after |", "|---|---|---|---|", summary("all", [before[k] for k in keys],
                                                                            [after[k] for k in keys])]
    for shape in sorted({parse_prompt(p).shape or "" for p, _ in keys}):
        part = [k for k in keys if (parse_prompt(k[0]).shape or "") == shape]
        lines.append(summary(shape or "no shape named", [before[k] for k in part], [after[k] for k in part]))
    div = diversity_table([dict(side[k], method=label) for label, side in (("before", before), ("after", after))
                           for k in keys])
    if div:
        mean = {label: sum(d["normalised_entropy"] for d in div if d["method"] == label) / (len(div) // 2)
                for label in ("before", "after")}
        lines += ["", *markdown_diversity(div, ["before", "after"]).splitlines(), "",
                  f"Mean normalised entropy over these {len(div) // 2} prompts: before {mean['before']:.2f}, "
                  f"after {mean['after']:.2f}."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--prompts", nargs="+", help="only these prompts, or prompt sets (full, under, ...)")
    ap.add_argument("--seeds", nargs="+", type=int, help="only these seeds")
    args = ap.parse_args()
    prompts = expand_prompts(args.prompts) if args.prompts else None
    print("\n".join(compare(args.before, args.after, prompts, args.seeds)))


if __name__ == "__main__":
    main()
