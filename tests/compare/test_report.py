"""Reports of a batch: bootstrap intervals, summaries, results.csv, and the self-contained HTML."""

import json
import math
import re

import imageio.v3 as iio
import numpy as np
import pytest

from uni3d.compare.report import method_labels, write_reports
from uni3d.compare.results import COLUMNS, read_csv, write_csv
from uni3d.compare.stats import bootstrap_ci, diversity_table, summarise


def test_bootstrap_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 0.5, 200)
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * 0.5 / math.sqrt(200), rel=0.15)
    assert bootstrap_ci(x) == (lo, hi)  # seeded
    assert bootstrap_ci([0.3]) == (0.3, 0.3)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert bootstrap_ci([None, 2.0, 2.0]) == (2.0, 2.0)


def _row(method, prompt, seed, run_dir, **kw):
    base = dict.fromkeys(COLUMNS)
    kind = "full" if len(prompt.split()) == 3 and prompt.split()[2] != "object" else (
        "shape-only" if len(prompt.split()) == 2 else "colour-only")
    base.update(method=method, prompt=prompt, seed=seed, kind=kind, status="ok", error="", run_dir=str(run_dir),
                wall_seconds=10.0 + seed, peak_memory_mb=500.0, steps=3)
    base.update(kw)
    return base


def _run_dir(tmp_path, name, rgb):
    d = tmp_path / name
    d.mkdir(parents=True)
    panel = np.full((20, 20, 3), rgb, np.uint8)
    grid = np.full((22, 8 * 21 + 1, 3), 255, np.uint8)
    for i in range(8):
        grid[1:21, 1 + 21 * i: 21 + 21 * i] = panel
    iio.imwrite(d / "multiview.png", grid)
    iio.imwrite(d / "turntable.gif", [panel, panel // 2], duration=80, loop=0)
    return d


@pytest.fixture()
def rows(tmp_path):
    out = []
    for method, good in (("sds", True), ("vsd", False)):
        d = _run_dir(tmp_path, f"{method}/mug", (200, 20, 20) if good else (20, 20, 200))
        out.append(_row(method, "a red mug", 0, d, chamfer=0.01 if good else 0.1, fscore=0.95, iou=0.9, shape_correct=True,
                        colour_correct=good, colour="red" if good else "blue", nearest_shape="mug", handles=1 if good else 2,
                        janus_ok=good, view_shape_accuracy=1.0, view_colour_accuracy=1.0 if good else 0.0))
        for seed, colour in enumerate(("red", "green", "blue") if good else ("gray", "gray", "gray")):
            d = _run_dir(tmp_path, f"{method}/a-mug-{seed}", (100, 100, 100))
            out.append(_row(method, "a mug", seed, d, chamfer=0.02, fscore=0.9, iou=0.8, shape_correct=True, colour=colour,
                            nearest_shape="mug", handles=1, janus_ok=True, view_shape_accuracy=0.875))
    out.append(_row("vsd", "a blue object", 0, tmp_path / "none", status="error", error="RuntimeError: <boom>"))
    return out


def test_summary_and_diversity(rows):
    div = {(d["method"], d["prompt"]): d for d in diversity_table(rows)}
    assert div["sds", "a mug"]["distinct"] == 3 and div["sds", "a mug"]["normalised_entropy"] == 1.0
    assert div["vsd", "a mug"]["distinct"] == 1 and div["vsd", "a mug"]["normalised_entropy"] == 0.0
    s = summarise(rows, ["sds", "vsd"])
    assert s["sds"]["runs"]["n"] == 4 and s["vsd"]["failed"]["n"] == 1
    assert s["sds"]["colour_acc"]["mean"] == 1.0 and s["vsd"]["colour_acc"]["mean"] == 0.0  # the mug only
    assert s["sds"]["one_handle"]["mean"] == 1.0 and s["vsd"]["one_handle"]["mean"] == 0.75
    assert s["sds"]["chamfer"]["n"] == 4 and s["sds"]["chamfer"]["lo"] <= s["sds"]["chamfer"]["mean"] <= s["sds"]["chamfer"]["hi"]


def test_the_plots_mark_a_method_whose_runs_are_not_all_finished(rows):
    assert method_labels(summarise(rows, ["sds", "vsd"])) == (["sds", "vsd (4 of 5)"], [False, True])
    finished = [r for r in rows if r["status"] == "ok"]
    assert method_labels(summarise(finished, ["sds", "vsd"])) == (["sds", "vsd"], [False, False])


def test_handles_right_counts_every_shape_against_its_genus(rows, tmp_path):
    spheres = [_row(m, "a red sphere", 0, tmp_path / m, chamfer=0.02, shape_correct=True, nearest_shape="sphere",
                    handles=h, janus_ok=None) for m, h in (("sds", 0), ("vsd", 5))]
    s = summarise(rows + spheres, ["sds", "vsd"])
    assert s["sds"]["handles_acc"]["mean"] == 1.0 and s["sds"]["handles_acc"]["n"] == 5
    assert s["vsd"]["handles_acc"]["mean"] == 0.6  # the 2-handled mug and the 5-handled sphere
    assert s["vsd"]["one_handle"]["mean"] == 0.75  # the sphere is not a mug


def test_results_csv_round_trip(rows, tmp_path):
    write_csv(rows, tmp_path / "results.csv")
    back = read_csv(tmp_path / "results.csv")
    assert back[0]["chamfer"] == 0.01 and back[0]["janus_ok"] is True and back[0]["seed"] == 0
    assert back[-1]["status"] == "error" and back[-1]["chamfer"] is None and back[-1]["error"] == "RuntimeError: <boom>"


def test_reports_render_and_the_html_is_self_contained(rows, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    write_reports(out, rows, ["sds", "vsd"], title="test batch", turntables=1)
    page = (out / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not re.search(r'(href|src)="(http|/|\.)', page)
    assert sum(s.startswith("data:image/gif") for s in sources) == 2  # one turntable per method
    assert page.count("data:image/png") >= 1 + 2 + 6  # plots, grid, per-seed diversity grids
    assert "RuntimeError: &lt;boom&gt;" in page and "a mug" in page
    json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    md = (out / "report.md").read_text()
    assert "| sds | 4 (0) |" in md and "| vsd | 5 (1) |" in md and "| a mug | colour | 3/3, H=1.00" in md
    assert iio.imread(out / "metrics.png").shape[1] > 800


def test_a_row_reads_the_colour_again_under_the_current_rule(tmp_path):
    from uni3d.compare.results import ok_row
    from uni3d.compare.spec import BatchSpec, PromptGroup, plan

    (task,) = plan(BatchSpec(methods=["sds"], groups=[PromptGroup(["a green cone"], [1])]), tmp_path)
    # scored when the nearest RGB direction decided the colour: this pale green read as gray
    row = ok_row(task, {"colour": "gray", "colour_correct": False, "colour_rgb": [0.2781, 0.5451, 0.2845]})
    assert row["colour"] == "green" and row["colour_correct"] is True
    assert ok_row(task, {"colour": "gray", "colour_correct": False})["colour_correct"] is False  # nothing to re-read
