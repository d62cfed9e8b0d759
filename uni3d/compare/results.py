"""One row per run: what results.csv holds, how a finished run is recognised, and the CSV itself.

A run is *finished* when its directory holds ``evaluation.json``: the worker writes it last and
atomically, after the mesh, renders and metrics.json, so a run killed at any point before is
redone from scratch on the next invocation (with ``--overwrite`` semantics for that run only).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from uni3d.compare.spec import RunTask
from uni3d.world.captions import parse_prompt

COLUMNS = (
    "method", "prompt", "seed", "kind", "status", "error",
    "chamfer", "fscore", "iou", "yaw", "nearest_shape", "shape_correct", "colour", "colour_correct",
    "view_shape", "view_colour", "view_shape_accuracy", "view_colour_accuracy", "handles", "janus_ok",
    "steps", "wall_seconds", "train_seconds", "peak_memory_mb", "run_dir",
)
"""Columns of results.csv (see docs/BENCHMARK.md for their meaning)."""


def kind(prompt: str) -> str:
    """``full`` (a COLOUR SHAPE), ``shape-only`` (a SHAPE) or ``colour-only`` (a COLOUR object)."""
    p = parse_prompt(prompt)
    return "full" if p.shape and p.colour else ("shape-only" if p.shape else "colour-only")


def finished(run_dir: Path) -> bool:
    return (Path(run_dir) / "evaluation.json").is_file()


def ok_row(task: RunTask, evaluation: dict) -> dict:
    """The row of a finished run. Its colour verdict is read again from the mean colour the run measured
    (``colour_rgb``), under the current ``uni3d.evaluate.colour_verdict``: a run scored under an earlier rule
    reads as one scored today."""
    from uni3d.evaluate import colour_verdict

    row = {k: evaluation.get(k) for k in COLUMNS}
    row.update(method=task.method, prompt=task.prompt, seed=task.seed, kind=kind(task.prompt), status="ok", error="",
               train_seconds=evaluation.get("train_seconds_this_session"), run_dir=str(task.run_dir))
    if evaluation.get("colour_rgb") is not None:
        row["colour"], row["colour_correct"] = colour_verdict(task.prompt, evaluation["colour_rgb"])
    return row


def error_row(task: RunTask, error: BaseException | str) -> dict:
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    row = dict.fromkeys(COLUMNS)
    row.update(method=task.method, prompt=task.prompt, seed=task.seed, kind=kind(task.prompt), status="error",
               error=" ".join(str(message).split())[:500], run_dir=str(task.run_dir))
    return row


def load_row(task: RunTask) -> dict:
    """The row of a finished run, from its evaluation.json."""
    try:
        return ok_row(task, json.loads((task.run_dir / "evaluation.json").read_text()))
    except (OSError, ValueError) as exc:
        return error_row(task, exc)


def write_csv(rows: list[dict], path: Path) -> None:
    tmp = Path(path).with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r.get(k) is None else r[k] for k in COLUMNS})
    tmp.replace(path)


def _typed(value: str):
    if value == "":
        return None
    if value in ("True", "False"):
        return value == "True"
    for cast in (int, float):
        try:
            v = cast(value)
            return None if isinstance(v, float) and math.isnan(v) else v
        except ValueError:
            pass
    return value


def read_csv(path: Path) -> list[dict]:
    """Rows of a results.csv with numbers, booleans and empty cells (None) restored."""
    with Path(path).open(newline="") as f:
        rows = [{k: _typed(v) for k, v in r.items()} for r in csv.DictReader(f)]
    for r in rows:  # text columns stay text ("0" is not a prompt)
        for k in ("method", "prompt", "error", "run_dir", "nearest_shape", "colour", "view_shape", "view_colour"):
            r[k] = "" if r.get(k) is None else str(r[k])
    return rows
