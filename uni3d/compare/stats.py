"""Per-method summaries of a batch: means with bootstrap 95% intervals, diversity, markdown tables."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from uni3d.evaluate import SHAPE_GENUS, diversity
from uni3d.world.captions import parse_prompt


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    value: Callable[[dict], float | None]
    """The run's value, or None where the metric does not apply to the run."""
    better: str
    """"lower" or "higher" (wall time and memory: lower)."""
    fmt: str = "{:.3f}"


def _num(key: str, when: Callable[[dict], bool] = lambda r: True):
    return lambda r: None if not when(r) or r.get(key) is None else float(r[key])


def _shape_fixed(r: dict) -> bool:
    return parse_prompt(r["prompt"]).shape is not None


def _colour_fixed(r: dict) -> bool:
    return parse_prompt(r["prompt"]).colour is not None


def _mug(r: dict) -> bool:
    return parse_prompt(r["prompt"]).shape == "mug"


def _handles_right(r: dict) -> float | None:
    """1 when the mesh has as many handles as the prompt's shape (0 but for the torus and the mug), else 0."""
    shape = parse_prompt(r["prompt"]).shape
    return None if shape is None or r.get("handles") is None else float(int(r["handles"]) == SHAPE_GENUS[shape])


METRICS = (
    Metric("chamfer", "Chamfer-L1", _num("chamfer", _shape_fixed), "lower", "{:.4f}"),
    Metric("fscore", "F-score@0.05", _num("fscore", _shape_fixed), "higher"),
    Metric("iou", "volumetric IoU", _num("iou", _shape_fixed), "higher"),
    Metric("shape_acc", "shape right (geometry)", _num("shape_correct", _shape_fixed), "higher", "{:.0%}"),
    Metric("colour_acc", "colour right (vertex colours)", _num("colour_correct", _colour_fixed), "higher", "{:.0%}"),
    Metric("view_shape_acc", "shape right (classifier, 8 views)", _num("view_shape_accuracy", _shape_fixed), "higher", "{:.0%}"),
    Metric("view_colour_acc", "colour right (classifier, 8 views)", _num("view_colour_accuracy", _colour_fixed), "higher", "{:.0%}"),
    Metric("one_handle", "mugs with one handle", _num("janus_ok", _mug), "higher", "{:.0%}"),
    Metric("handles_acc", "handles right (genus)", _handles_right, "higher", "{:.0%}"),
    Metric("wall_seconds", "wall time per run (s)", _num("wall_seconds"), "lower", "{:.0f}"),
    Metric("peak_memory_mb", "peak memory per run (MB)", _num("peak_memory_mb"), "lower", "{:.0f}"),
)
DIVERSITY = Metric("diversity", "diversity (normalised entropy)", _num("normalised_entropy"), "higher", "{:.2f}")
"""Measured per (method, under-specified prompt) over seeds; its interval resamples prompts."""


def bootstrap_ci(values, n: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; (nan, nan) without values, (v, v) for one value."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), float(x[0])
    means = x[np.random.default_rng(seed).integers(0, x.size, (n, x.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def diversity_table(rows: list[dict]) -> list[dict]:
    """One entry per (method, under-specified prompt) with at least one finished run."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["status"] == "ok" and r["kind"] != "full":
            groups.setdefault((r["method"], r["prompt"]), []).append(r)
    return [{"method": m, **diversity(p, rs)} for (m, p), rs in groups.items()]


def summarise(rows: list[dict], methods: list[str]) -> dict[str, dict[str, dict]]:
    """``{method: {metric: {mean, lo, hi, n}}}`` over the finished runs, plus ``runs`` / ``failed`` counts."""
    div = diversity_table(rows)
    out = {}
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        ok = [r for r in mine if r["status"] == "ok"]
        stats = {"runs": {"n": len(mine)}, "failed": {"n": len(mine) - len(ok)}}
        for metric, values in [(x, [x.value(r) for r in ok]) for x in METRICS] + \
                              [(DIVERSITY, [DIVERSITY.value(d) for d in div if d["method"] == m and d["runs"] > 1])]:
            values = [v for v in values if v is not None]
            lo, hi = bootstrap_ci(values)
            stats[metric.name] = {"mean": float(np.mean(values)) if values else math.nan, "lo": lo, "hi": hi,
                                  "n": len(values)}
        out[m] = stats
    return out


def _cell(s: dict, fmt: str) -> str:
    if not s["n"] or math.isnan(s["mean"]):
        return "-"
    if s["n"] == 1:
        return fmt.format(s["mean"]) + " (n=1)"
    return f"{fmt.format(s['mean'])} [{fmt.format(s['lo'])}, {fmt.format(s['hi'])}]"


def markdown_summary(summary: dict) -> str:
    """Methods as rows, metrics as columns: mean [bootstrap 95% interval]."""
    metrics = [*METRICS, DIVERSITY]
    head = "| method | runs (not finished) | " + " | ".join(f"{m.label} {'↓' if m.better == 'lower' else '↑'}" for m in metrics) + " |"
    lines = [head, "|" + "---|" * (len(metrics) + 2)]
    for method, s in summary.items():
        cells = [_cell(s[m.name], m.fmt) for m in metrics]
        lines.append(f"| {method} | {s['runs']['n']} ({s['failed']['n']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_diversity(div: list[dict], methods: list[str]) -> str:
    """Under-specified prompts as rows, methods as columns: distinct values / runs and what they were."""
    prompts = list(dict.fromkeys(d["prompt"] for d in div))
    by = {(d["method"], d["prompt"]): d for d in div}
    lines = ["| prompt | free | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 2)]
    for p in prompts:
        free = next(d["free"] for d in div if d["prompt"] == p)
        cells = []
        for m in methods:
            d = by.get((m, p))
            cells.append("-" if d is None else f"{d['distinct']}/{d['runs']}, H={d['normalised_entropy']:.2f} "
                         f"({', '.join(f'{k} {v}' for k, v in sorted(d['values'].items()))})")
        lines.append(f"| {p} | {free} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
