"""The reports of a batch: report.md, summary.json, metrics.png and a self-contained report.html.

The HTML inlines every image (base64): summary table, the metric plots with bootstrap 95%
intervals, a comparison grid (method rows x prompt columns, the front view of each run's
multiview.png), per-seed grids of the under-specified prompts, turntable GIFs and failed runs.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from uni3d.compare.stats import DIVERSITY, METRICS, diversity_table, markdown_diversity, markdown_summary, summarise

THUMB = 96


def method_labels(summary: dict) -> tuple[list[str], list[bool]]:
    """Each method's label in the plots and whether some of its runs are not finished; such a label says how many
    are, of how many."""
    partial = [s["failed"]["n"] > 0 for s in summary.values()]
    labels = [f"{k} ({s['runs']['n'] - s['failed']['n']} of {s['runs']['n']})" if part else k
              for (k, s), part in zip(summary.items(), partial)]
    return labels, partial


def plot_metrics(summary: dict, path: Path) -> Path:
    """One panel per metric: each method's mean with its bootstrap 95% interval. A method with runs not finished
    is drawn hollow and gray, its label saying how many finished: its mean covers only part of the prompts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [*METRICS, DIVERSITY]
    methods = list(summary)
    cols = 4
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows + 0.4), squeeze=False)
    x = np.arange(len(methods))
    labels, partial = method_labels(summary)
    for ax, m in zip(axes.flat, metrics):
        stats = [summary[k][m.name] for k in methods]
        mean = np.array([s["mean"] for s in stats])
        lo = np.array([s["lo"] for s in stats])
        hi = np.array([s["hi"] for s in stats])
        yerr = np.nan_to_num(np.stack([mean - lo, hi - mean]), nan=0.0)
        for drawn in (False, True):
            i = np.array([part == drawn for part in partial])
            if i.any():
                colour = "tab:gray" if drawn else "tab:blue"
                ax.errorbar(x[i], mean[i], yerr=yerr[:, i], fmt="o", capsize=4, color=colour,
                            markerfacecolor="white" if drawn else colour)
        ax.set_title(f"{m.label} ({'lower' if m.better == 'lower' else 'higher'} is better)", fontsize=9)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        for tick, part in zip(ax.get_xticklabels(), partial):
            tick.set_color("tab:gray" if part else "black")
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.grid(axis="y", alpha=0.3)
        if m.fmt == "{:.0%}" or m.name in ("fscore", "iou", "diversity"):
            ax.set_ylim(-0.05, 1.05)
        if not any(s["n"] for s in stats):
            ax.text(0.5, 0.5, "no runs it applies to", ha="center", va="center", transform=ax.transAxes, color="gray")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    title = "mean per method, bars: bootstrap 95% interval"
    if any(partial):
        title += "; hollow gray: runs not all finished (finished of all in brackets), a mean over part of the prompts"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def front_view(run_dir: str | Path) -> np.ndarray | None:
    """The first view of a run's multiview.png (or its front.png, all a run restored from its records keeps),
    (H, W, 3) uint8, or None."""
    import imageio.v3 as iio

    from uni3d.evaluate import multiview_panels

    path = Path(run_dir) / "multiview.png"
    try:
        if path.is_file():
            return (multiview_panels(path)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        if (Path(run_dir) / "front.png").is_file():
            return np.asarray(iio.imread(Path(run_dir) / "front.png"))[..., :3]
    except (OSError, ValueError):
        pass
    return None


def grid_figure(cells: list[list[np.ndarray | None]], row_labels: list[str], col_labels: list[str], path: Path,
                captions: list[list[str]] | None = None) -> Path:
    """An image grid with labelled rows and columns, as a PNG (for docs); ``captions`` (one per cell) replace the
    column labels with a title over every image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r, c = len(row_labels), len(col_labels)
    tall = 0.35 if captions else 0.0  # room for a two-line caption over every image
    fig, axes = plt.subplots(r, c, figsize=(1.1 * c + 1.2, (1.15 + tall) * r + 0.6), squeeze=False)
    for i in range(r):
        for j in range(c):
            ax = axes[i][j]
            img = cells[i][j]
            ax.imshow(img if img is not None else np.full((THUMB, THUMB, 3), 235, np.uint8))
            ax.set_xticks([])
            ax.set_yticks([])
            if captions is not None:
                ax.set_title(captions[i][j], fontsize=5.5)
            elif i == 0:
                ax.set_title(col_labels[j], fontsize=7)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=7)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _png(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _file(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _img(src: str | None, title: str, width: int = THUMB) -> str:
    if src is None:
        return f'<div class="missing" title="{html.escape(title)}">no image</div>'
    return f'<img src="{src}" width="{width}" title="{html.escape(title)}" alt="{html.escape(title)}">'


def _table(header: list[str], body: list[list[str]], escape: bool = True) -> str:
    esc = html.escape if escape else (lambda s: s)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _by_run(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["method"], r["prompt"], r["seed"]): r for r in rows}


def _cell(row: dict | None, gif: bool = False) -> str:
    if row is None:
        return '<div class="missing">not run</div>'
    title = f"{row['method']} / {row['prompt']} / seed {row['seed']}"
    if row["status"] != "ok":
        return f'<div class="missing" title="{html.escape(row["error"] or "")}">failed</div>'
    if gif:
        path = Path(row["run_dir"]) / "turntable.gif"
        return _img(_file(path, "image/gif") if path.is_file() else None, title)
    img = front_view(row["run_dir"])
    caption = f"{row.get('nearest_shape') or '?'}, {row.get('colour') or '?'}"
    return _img(None if img is None else _png(img), title) + f"<br><small>{html.escape(caption)}</small>"


def _grid(rows: list[dict], methods: list[str], prompts: list[str], seed_of, gif: bool = False) -> str:
    by = _by_run(rows)
    body = [[html.escape(m)] + [_cell(by.get((m, p, seed_of(p))), gif) for p in prompts] for m in methods]
    return '<div class="scroll">' + _table(["method", *prompts], body, escape=False) + "</div>"


def html_report(rows: list[dict], methods: list[str], summary: dict, div: list[dict], plot: Path, title: str,
                turntables: int = 6) -> str:
    first_seed = {}
    for r in rows:
        first_seed[r["prompt"]] = min(first_seed.get(r["prompt"], r["seed"]), r["seed"])
    prompts = list(dict.fromkeys(r["prompt"] for r in rows))
    ok = sum(r["status"] == "ok" for r in rows)
    metrics = [*METRICS, DIVERSITY]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(rows)} runs: {ok} finished, {len(rows) - ok} failed. Cells: mean [bootstrap 95% interval].</p>",
             "<h2>Summary</h2>",
             _table(["method", "runs (not finished)", *[m.label for m in metrics]],
                    [[m, f"{s['runs']['n']} ({s['failed']['n']})",
                      *[_fmt(s[x.name], x.fmt) for x in metrics]] for m, s in summary.items()]),
             "<h2>Metrics</h2>", f'<img src="{_file(plot, "image/png")}" alt="metrics per method">',
             "<h2>Comparison grid</h2><p>Front view (azimuth 0) of the first seed; caption: nearest shape, colour.</p>",
             _grid(rows, methods, prompts, first_seed.get)]
    under = [p for p in prompts if any(r["prompt"] == p and r["kind"] != "full" for r in rows)]
    if under:
        parts.append("<h2>Diversity of the under-specified prompts</h2>")
        parts.append(_table(["method", "prompt", "free", "runs", "distinct", "entropy (bits)", "normalised", "values"],
                            [[d["method"], d["prompt"], d["free"], d["runs"], d["distinct"], d["entropy_bits"],
                              d["normalised_entropy"], json.dumps(d["values"])] for d in div]))
        by = _by_run(rows)
        for p in under:
            seeds = sorted({r["seed"] for r in rows if r["prompt"] == p})
            body = [[html.escape(m)] + [_cell(by.get((m, p, s))) for s in seeds] for m in methods]
            parts += [f"<h3>{html.escape(p)}</h3>", '<div class="scroll">',
                      _table(["method", *[f"seed {s}" for s in seeds]], body, escape=False), "</div>"]
    if turntables > 0:
        parts += [f"<h2>Turntables</h2><p>The first {min(turntables, len(prompts))} prompts, first seed.</p>",
                  _grid(rows, methods, prompts[:turntables], first_seed.get, gif=True)]
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        parts += ["<h2>Failed runs</h2>",
                  _table(["method", "prompt", "seed", "error"], [[r["method"], r["prompt"], r["seed"], r["error"]] for r in failed])]
    style = ("body{font-family:sans-serif;margin:2em;max-width:100%}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:3px;text-align:center;vertical-align:top}.scroll{overflow-x:auto}"
             ".missing{width:96px;height:96px;background:#eee;color:#888;font-size:11px;line-height:96px;display:inline-block}"
             "img{image-rendering:pixelated}")
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _fmt(s: dict, fmt: str) -> str:
    if not s["n"] or math.isnan(s["mean"]):
        return "-"
    return fmt.format(s["mean"]) + ("" if s["n"] == 1 else f" [{fmt.format(s['lo'])}, {fmt.format(s['hi'])}]")


def write_reports(out: Path, rows: list[dict], methods: list[str], title: str | None = None, turntables: int = 6) -> dict:
    """report.md, summary.json, metrics.png and report.html under ``out``; returns the summary."""
    out = Path(out)
    summary = summarise(rows, methods)
    div = diversity_table(rows)
    plot = plot_metrics(summary, out / "metrics.png")
    md = ["# Comparison", "", f"{len(rows)} runs; cells: mean [bootstrap 95% interval] over runs (diversity: over prompts).",
          "", markdown_summary(summary), ""]
    if div:
        md += ["## Diversity of the under-specified prompts (distinct values / runs, normalised entropy)", "",
               markdown_diversity(div, methods), ""]
    (out / "report.md").write_text("\n".join(md))
    (out / "summary.json").write_text(json.dumps(_clean({"summary": summary, "diversity": div}), indent=2) + "\n")
    (out / "report.html").write_text(html_report(rows, methods, summary, div, plot, title or f"uni3d compare: {out}",
                                                 turntables))
    return summary


def _clean(x):
    """NaN as null, so that summary.json stays valid JSON."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x
