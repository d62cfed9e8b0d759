"""The Shapes World benchmark: run (or finish) the batch of a spec and write docs/BENCHMARK.md from it.

    python scripts/benchmark.py                      # configs/benchmark/full.yaml -> runs/benchmark -> docs/BENCHMARK.md
    python scripts/benchmark.py --executor ray --ray-address HOST:6379 --threads 2
    python scripts/benchmark.py --report-only        # rewrite the document from the runs finished so far
    python scripts/benchmark.py --spec configs/benchmark/small.yaml --out runs/benchmark-small \\
        --doc runs/benchmark-small/BENCHMARK.md      # a check of the whole pipeline in minutes

The batch is `uni3d compare --spec SPEC --out OUT` (resumable: finished runs are skipped, so a
killed benchmark continues where it stopped); OUT also gets results.csv and report.html. Every
number in the tables is computed here from the runs' evaluation.json; nothing is typed by hand. The one
hand-written part, the reading of what won and why (--reading, docs/benchmark/reading.md), names on its first
line the count of finished runs it was written for, and the document flags it when the count changes.

The records of every finished run (config.yaml, evaluation.json, metrics.json and a front view, a few KB) are
kept in the repository under --records (docs/benchmark/runs/METHOD/PROMPT/sSEED); a run recorded there and
missing from OUT is restored from them and skipped, so the 1224 runs of the full benchmark add up over
machines and sessions instead of having to run in one.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np

from uni3d.compare.batch import CompareConfig, compare, resolve_spec
from uni3d.compare.report import front_view, grid_figure
from uni3d.compare.spec import method_label, plan
from uni3d.compare.stats import DIVERSITY, METRICS, diversity_table, markdown_diversity, markdown_summary, summarise
from uni3d.errors import UserError
from uni3d.world.captions import parse_prompt
from uni3d.world.shapes import COLOUR_NAMES, SHAPE_NAMES

DEFINITIONS = """\
- **Chamfer-L1** (world units), **F-score@0.05** and **volumetric IoU** compare the exported mesh with the
  ground-truth solid of the prompt's shape after the rotation about y that minimises Chamfer (an object may come
  out at any yaw); runs of prompts that fix the shape (`a COLOUR SHAPE`, `a SHAPE`).
- **shape right (geometry)**: the nearest ground-truth shape by Chamfer is the prompt's.
- **colour right (vertex colours)**: the colour of the mesh's area-weighted mean vertex colour is the prompt's
  (prompts that fix the colour). That colour is gray when the mean's saturation is below half that of the
  palette's least saturated colour, and otherwise the palette colour nearest in hue (the mean less its smallest
  channel): a mean over a surface is paler than its parts, and read as a whole RGB direction a pale green would be
  gray. Each run's verdict is read again from its stored mean colour whenever the document is written.
- **shape / colour right (classifier, 8 views)**: the shipped classifier (`assets/classifier/shapes-v1`) reads the
  run's eight `multiview.png` views (azimuth 0, 45, ..., 315 at elevation 15; training draws its views at
  random, so these are held out); the fraction of views read as the prompt's shape / colour.
- **mugs with one handle**: the Janus test; runs of mug prompts whose mesh has genus 1 (a Janus mug grows a
  handle on several sides).
- **handles right (genus)**: runs of prompts that fix the shape whose mesh has as many handles as the
  ground-truth shape (one for the torus and the mug, none for the others). A spongy or pitted field meshes into
  a surface with many; the export's closings remove the narrowest, and close a torus's hole that comes out
  narrower than twice the close radius.
- **diversity**: over the seeds of one under-specified prompt (`a SHAPE`: the colour is free; `a COLOUR object`:
  the shape is free), the entropy of the free attribute over its maximum `log2(min(seeds, 6))`: 0 when every seed
  gives the same, 1 when they are as spread as the seeds allow. Averaged over prompts (the interval resamples
  prompts).
- **wall time** covers generation, export and scoring of one run, on the machine as it was while the run ran
  (runs made while other jobs shared it took longer: compare methods' speed in docs/PERFORMANCE.md, which times
  each default run on an idle machine); **peak memory** is the maximum resident set of the run's own process
  (each run gets a fresh one).
- Intervals are percentile bootstrap 95% intervals of the mean (2000 resamples of the runs); `n=1` marks a
  single value. A metric that does not apply shows `-`.
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def _mean(values, fmt: str = "{:.2f}") -> str:
    values = [float(v) for v in values if v is not None]
    return f"{fmt.format(np.mean(values))} ({len(values)})" if values else "-"


def by_attribute(rows: list[dict], methods: list[str], attribute: str, metric: str, names: list[str],
                 fmt: str = "{:.2f}") -> str:
    """Mean of ``metric`` (runs in brackets) per method and per shape or colour of the prompt."""
    body = []
    for m in methods:
        cells = [_mean((r[metric] for r in rows if r["method"] == m and r["status"] == "ok"
                        and getattr(parse_prompt(r["prompt"]), attribute) == n), fmt) for n in names]
        body.append([m, *cells])
    return _table(["method", *names], body)


def colour_agreement(ok: list[dict]) -> str:
    """How often the two colour readings of a run, its vertex colours and the classifier's of its views, agree."""
    both = [r for r in ok if r.get("colour") and r.get("view_colour")]
    same = sum(r["colour"] == r["view_colour"] for r in both)
    return (f"The two colour readings of a run, its mesh's vertex colours and the classifier's reading of its eight "
            f"views, name the same colour in {same} of {len(both)} finished runs.")


def handle_counts(rows: list[dict], methods: list[str]) -> str:
    body = []
    for m in methods:
        h = [r["handles"] for r in rows if r["method"] == m and r["status"] == "ok" and parse_prompt(r["prompt"]).shape == "mug"]
        body.append([m, len(h), sum(x == 0 for x in h), sum(x == 1 for x in h), sum(x >= 2 for x in h)])
    return _table(["method", "mug runs", "0 handles", "1 handle", "2 or more"], body)


BAR, GOAL = 0.035, 0.025
"""Chamfer-L1 of the quality bar of `uni3d generate`'s defaults, and the level to reach for."""


def missed_bar(r: dict) -> list[str]:
    """Why a run of a fully specified prompt misses the quality bar (nothing when it meets it)."""
    if r["status"] != "ok":
        return [r["error"] or "not run"]
    return [
        *([f"nearest {r['nearest_shape']}"] if not r["shape_correct"] else []),
        *([f"Chamfer {r['chamfer']:.4f}"] if r["shape_correct"] and r["chamfer"] >= BAR else []),
        *([f"colour {r['colour']}"] if not r["colour_correct"] else []),
        *([f"{r['handles']} handles"] if r["janus_ok"] is False else []),
    ]


def meets_goal(r: dict) -> bool:
    """A finished run of the prompt's shape below the level to reach for (Chamfer-L1 < GOAL)."""
    return r["status"] == "ok" and r["shape_correct"] and r["chamfer"] < GOAL


def quality_bar(rows: list[dict], methods: list[str]) -> str:
    """Per method, the runs of fully specified prompts that meet the bar: the nearest ground-truth shape is the
    prompt's at Chamfer-L1 < BAR, the colour is right and a mug has one handle; and what the others missed."""
    out = ["| method | runs meeting the bar | Chamfer-L1 < 0.025 | missed: prompt (seed): why |", "|---|---|---|---|"]
    for m in methods:
        runs = [r for r in rows if r["method"] == m and r["kind"] == "full"]
        whys = [(r, missed_bar(r)) for r in runs]
        not_run = sum(why == ["not run"] for _, why in whys)  # counted, not listed: a batch under way has many
        missed = [f"{r['prompt']} ({r['seed']}): {', '.join(why)}" for r, why in whys
                  if why and why != ["not run"]] + ([f"{not_run} not run yet"] if not_run else [])
        met = sum(not why for _, why in whys)
        goal = sum(meets_goal(r) for r in runs)
        out.append(f"| {m} | {met} of {len(runs)} | {goal} of {len(runs)} | {'; '.join(missed) or '-'} |")
    return "\n".join(out)


def readings(summary: dict) -> list[str]:
    """For each metric, the best method by its mean, and whether its interval separates it from the next.

    A method with runs not finished has means over part of the prompts only (the batch runs them in order), so
    while two or more methods are complete only those are ranked, and a last line names the ones left out;
    otherwise every method is ranked, and a partial one says so with its mean."""
    partial = {k: f"; {s['runs']['n'] - s['failed']['n']} of {s['runs']['n']} runs finished" for k, s in summary.items()
               if s["failed"]["n"]}
    left_out = list(partial) if len(summary) - len(partial) >= 2 else []
    out = []
    for m in [*METRICS, DIVERSITY]:
        scored = [(k, s[m.name]) for k, s in summary.items()
                  if k not in left_out and s[m.name]["n"] and not np.isnan(s[m.name]["mean"])]
        if len(scored) < 2:
            continue
        scored.sort(key=lambda x: x[1]["mean"], reverse=m.better == "higher")
        (best, a), (second, b) = scored[:2]
        if a["mean"] == b["mean"]:
            tied = [k for k, s in scored if s["mean"] == a["mean"]]
            out.append(f"- {m.label}: {', '.join(tied[:-1])} and {tied[-1]} tie at {m.fmt.format(a['mean'])}.")
            continue
        head = (f"- {m.label}: best mean **{best}** ({m.fmt.format(a['mean'])}{partial.get(best, '')}), then {second} "
                f"({m.fmt.format(b['mean'])}{partial.get(second, '')}); ")
        if min(a["n"], b["n"]) < 2:
            out.append(head + "one run only: no interval, nothing separated.")
            continue
        apart = a["lo"] > b["hi"] if m.better == "higher" else a["hi"] < b["lo"]
        out.append(head + ("the intervals do not overlap." if apart else "the intervals overlap: not separated by this benchmark."))
    if left_out:
        out.append("- Not ranked above until their runs finish, as their means cover only part of the prompts: "
                   + ", ".join(f"{k} ({partial[k][2:]})" for k in left_out) + ".")
    return out


READING_STAMP = re.compile(r"<!--\s*written for (\d+) finished runs\s*-->")
"""The first line of a reading file: how many finished runs the tables held when the reading was written."""


def reading_section(path: Path, finished: int) -> list[str]:
    """The hand-written reading of the results (``path``, markdown), flagged when the tables no longer hold the
    runs it was written for; nothing when there is no such file."""
    if not path.is_file():
        return []
    text = path.read_text().strip()
    stamp = READING_STAMP.match(text)
    lines = ["## Reading: what won, where, and why", ""]
    if stamp is None:
        lines += [f"*(`{path}` does not say which runs it was written for: its first line should be "
                  f"`<!-- written for {finished} finished runs -->`.)*", ""]
    elif int(stamp.group(1)) != finished:
        lines += [f"*(Written when {stamp.group(1)} runs had finished; the tables above now hold {finished}: "
                  "the reading may be out of date.)*", ""]
    body = text[stamp.end():].strip() if stamp else text
    return lines + [body, ""]


def figures(rows: list[dict], methods: list[str], fig_dir: Path, out: Path) -> list[str]:
    fig_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "metrics.png", fig_dir / "metrics.png")
    rel = fig_dir.name  # links relative to the document, which sits beside fig_dir
    lines = [f"![metrics per method]({rel}/metrics.png)", ""]
    by = {(r["method"], r["prompt"], r["seed"]): r for r in rows}
    full = [p for p in dict.fromkeys(r["prompt"] for r in rows) if None not in (parse_prompt(p).shape, parse_prompt(p).colour)]
    diagonal = [p for p in full if SHAPE_NAMES.index(parse_prompt(p).shape) == COLOUR_NAMES.index(parse_prompt(p).colour)]
    shown = (diagonal or full)[:6]
    if shown:
        seed = min(r["seed"] for r in rows if r["prompt"] in shown)
        cells = [[_image(by.get((m, p, seed))) for p in shown] for m in methods]
        grid_figure(cells, methods, shown, fig_dir / "grid.png")
        lines += [f"Front views (azimuth 0), seed {seed}; every prompt and the turntables are in `report.html`.", "",
                  f"![comparison grid]({rel}/grid.png)", ""]
    misses = {m: [(r, why) for r in rows if r["method"] == m and r["kind"] == "full" and r["status"] == "ok"
                  and (why := missed_bar(r))] for m in methods}
    shown_misses = {m: rs[:MISSES_SHOWN] for m, rs in misses.items() if rs}
    if shown_misses:
        width = max(map(len, shown_misses.values()))
        pad = lambda xs, fill: xs + [fill] * (width - len(xs))  # noqa: E731
        grid_figure([pad([_image(r) for r, _ in rs], None) for rs in shown_misses.values()], list(shown_misses),
                    [""] * width, fig_dir / "misses.png",
                    captions=[pad([f"{r['prompt']} ({r['seed']})\n{', '.join(why)}" for r, why in rs], "")
                              for rs in shown_misses.values()])
        more = {m: len(misses[m]) - len(rs) for m, rs in shown_misses.items() if len(misses[m]) > len(rs)}
        lines += ["The finished runs that missed the quality bar, front views"
                  + (f" (the first {MISSES_SHOWN} of a method; more: "
                     + ", ".join(f"{m} {n}" for m, n in more.items()) + ")" if more else "") + ":", "",
                  f"![runs that missed the bar]({rel}/misses.png)", ""]
    for p in [p for p in ("a mug", "a red object") if any(r["prompt"] == p for r in rows)]:
        seeds = sorted({r["seed"] for r in rows if r["prompt"] == p})
        name = f"diversity-{p.replace(' ', '-')}.png"
        grid_figure([[_image(by.get((m, p, s))) for s in seeds] for m in methods], methods, [f"seed {s}" for s in seeds],
                    fig_dir / name)
        lines += [f"`{p}` over seeds:", "", f"![{p} over seeds]({rel}/{name})", ""]
    return lines


MISSES_SHOWN = 10
"""Runs per method in the figure of the runs that missed the quality bar."""


def _image(row: dict | None):
    return None if row is None or row["status"] != "ok" else front_view(row["run_dir"])


RECORDS = ("config.yaml", "metrics.json", "front.png", "evaluation.json")
"""What the records keep of a run, in the order they are restored (evaluation.json, the finished marker, last)."""


def restore(tasks, records: Path) -> int:
    """Runs finished in ``records`` but not in OUT are restored into OUT (a partial directory is replaced)."""
    n = 0
    for t in tasks:
        src = records / t.key
        if (src / "evaluation.json").is_file() and not (t.run_dir / "evaluation.json").is_file():
            shutil.rmtree(t.run_dir, ignore_errors=True)
            t.run_dir.mkdir(parents=True)
            for name in RECORDS:
                if (src / name).is_file():
                    shutil.copy2(src / name, t.run_dir / name)
            n += 1
    return n


def record(rows: list[dict], tasks, records: Path) -> int:
    """The records of every finished run of ``rows`` written under ``records``."""
    import imageio.v3 as iio

    by_dir = {r["run_dir"]: r for r in rows}
    n = 0
    for t in tasks:
        row = by_dir.get(str(t.run_dir))
        if row is None or row["status"] != "ok":
            continue
        dst = records / t.key
        dst.mkdir(parents=True, exist_ok=True)
        if not (t.run_dir / "front.png").is_file() and (front := front_view(t.run_dir)) is not None:
            iio.imwrite(dst / "front.png", front)
        for name in RECORDS:
            if (t.run_dir / name).is_file() and (t.run_dir / name).resolve() != (dst / name).resolve():
                shutil.copy2(t.run_dir / name, dst / name)
        n += 1
    return n


def settings(spec, out: Path) -> list[str]:
    tasks = plan(spec, out)
    lines = []
    for m in spec.methods:
        cfg = next(t.config for t in tasks if t.method == method_label(m))
        g = cfg.guidance
        off = [term.upper() for term in ("sim", "fgm", "di", "cross") if not getattr(g, term)]
        variant = f" ({g.divergence}{'; without ' + ', '.join(off) if off else ''})" if g.method == "uni-instruct" else ""
        tuned = scene_settings(cfg)
        lines.append(f"| {method_label(m)} | {g.method}{variant} | "
                     f"{g.cfg_scale:g} | {time_schedule(g)} | {cfg.train.steps} | {cfg.train.views} | {g.noise_draws} | "
                     f"{cfg.train.resolution} | {cfg.scene}{' (' + ', '.join(tuned) + ')' if tuned else ''} |")
    return ["| method | guidance | CFG | diffusion time t | steps | views / step | noise draws / view | render px "
            "| scene (settings its preset changes) |",
            "|---|---|---|---|---|---|---|---|---|", *lines]


def time_schedule(g) -> str:
    """The range t is drawn from, as fractions of the noise table: fixed, or where it starts and ends and the
    steps over which it moves."""
    start, end = g.t_range(0), g.t_range(g.anneal_start + g.anneal_steps)
    if start == end:
        return f"{start[0]:g}-{start[1]:g}"
    return f"{start[0]:g}-{start[1]:g}, to {end[0]:g}-{end[1]:g} over steps {g.anneal_start}-{g.anneal_start + g.anneal_steps}"


def scene_settings(cfg) -> list[str]:
    """The scene's settings that differ from its defaults, as ``name value``."""
    section = getattr(cfg, cfg.scene, None)
    if not dataclasses.is_dataclass(section):
        return []
    default = type(section)()
    return [f"{f.name} {getattr(section, f.name)}" for f in dataclasses.fields(section)
            if getattr(section, f.name) != getattr(default, f.name)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, default=Path("configs/benchmark/full.yaml"))
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark"))
    ap.add_argument("--doc", type=Path, default=Path("docs/BENCHMARK.md"),
                    help="the document; its figures go to a folder beside it named after it (docs/benchmark/)")
    ap.add_argument("--title", default="Benchmark: every method on Shapes World, scored against ground truth")
    ap.add_argument("--executor", choices=["local", "ray"], default="local")
    ap.add_argument("--ray-address", default=None)
    ap.add_argument("--workers", type=int, default=1, help="local pool size; 0 runs in this process")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--report-only", action="store_true", help="write the document from the runs finished so far")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--records", type=Path, default=Path("docs/benchmark/runs"),
                    help="where the records of finished runs are kept and restored from")
    ap.add_argument("--reading", type=Path, default=None,
                    help="a hand-written reading of the results, placed after them (default: reading.md in the "
                         "figures folder, docs/benchmark/reading.md); its first line says how many finished runs it "
                         "was written for, and the document flags it when that count changes")
    args = ap.parse_args()

    cfg = CompareConfig(spec=args.spec, out=args.out, executor=args.executor, ray_address=args.ray_address,
                        workers=args.workers, threads=args.threads, report_only=args.report_only,
                        progress=not args.no_progress)
    try:
        spec = resolve_spec(cfg)
        tasks = plan(spec, args.out)
        restored = restore(tasks, args.records)
        if restored:
            print(f"benchmark: {restored} finished run(s) restored from {args.records}")
        rows = compare(cfg)
    except UserError as exc:
        sys.exit(f"benchmark: error: {exc}")
    print(f"benchmark: records of {record(rows, tasks, args.records)} finished run(s) in {args.records}")
    methods = [method_label(m) for m in spec.methods]
    fig_dir = args.doc.parent / args.doc.stem.lower()
    reading = args.reading or fig_dir / "reading.md"
    summary = summarise(rows, methods)
    div = diversity_table(rows)
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    command = "python scripts/benchmark.py " + shlex.join(a for a in sys.argv[1:] if a != "--report-only")
    groups = "; ".join(f"{len(g.prompts)} prompts x {len(g.seeds)} seeds ({', '.join(map(str, g.seeds))})" for g in spec.groups)
    seconds = sum(r["wall_seconds"] or 0 for r in ok)
    total = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
    lines = [
        f"# {args.title}", "",
        f"Regenerate: `{command}` (resumable; spec `{args.spec}`, runs and `report.html` in `{args.out}`).", "",
        f"**{len(ok)} of {len(rows)} runs finished**" + (f", {len(failed)} failed or not run yet (listed below)" if failed else "")
        + f". Methods: {', '.join(methods)}; {groups}; teacher `{spec.teacher}`. Sum of run wall times: {total} "
        f"({args.executor} executor; this machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {_torch_version()}).", "",
        *settings(spec, args.out), "",
        "## Results", "", "Mean [bootstrap 95% interval] over runs; arrows say which way is better.", "",
        markdown_summary(summary), "", *readings(summary), "", *reading_section(reading, len(ok)),
        "## The quality bar", "",
        f"Runs of fully specified prompts whose mesh has the prompt's shape as its nearest at Chamfer-L1 < {BAR} (after"
        " the best rotation about y), the right colour (vertex colours) and, for a mug, one handle:", "",
        quality_bar(rows, methods), "",
        "## Diversity of the under-specified prompts", "",
        "Distinct values of the free attribute / runs, normalised entropy H, and the values seen.", "",
        markdown_diversity(div, methods) if div else "No under-specified prompt in this batch.", "",
        "## By shape and colour", "", "Chamfer-L1 by the prompt's shape (runs in brackets):", "",
        by_attribute(rows, methods, "shape", "chamfer", SHAPE_NAMES, "{:.4f}"), "",
        "F-score@0.05 by the prompt's shape:", "",
        by_attribute(rows, methods, "shape", "fscore", SHAPE_NAMES), "",
        "Colour right (vertex colours) by the prompt's colour:", "",
        by_attribute(rows, methods, "colour", "colour_correct", COLOUR_NAMES), "",
        colour_agreement(ok), "",
        "## The Janus test (mug prompts)", "", handle_counts(rows, methods), "",
        "## Figures", "", *figures(rows, methods, fig_dir, args.out),
        "## What is measured", "", DEFINITIONS,
    ]
    if failed:
        lines += ["## Runs not finished", "", _table(["method", "prompt", "seed", "error"],
                                                     [[r["method"], r["prompt"], r["seed"], r["error"] or "-"] for r in failed]), ""]
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text("\n".join(lines))
    print(f"wrote {args.doc}")


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
