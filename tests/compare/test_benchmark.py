"""scripts/benchmark.py writes the benchmark document from a batch (runs faked here, see conftest)."""

import json
import re
import runpy
import shutil
import sys
from pathlib import Path

from uni3d.compare.spec import BatchSpec, PromptGroup, load_spec
from uni3d.training import TrainConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"


def test_benchmark_document_from_a_small_batch(fake_runs, tmp_path, monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text("methods: [sds, vsd]\ngroups:\n  - {prompts: [a red mug], seeds: [0]}\n"
                    "  - {prompts: [a mug], seeds: [0, 1]}\noverrides: {train: {steps: 30}}\n")
    doc = tmp_path / "docs" / "SMALL.md"  # figures go to docs/small/, and the links say so
    records = tmp_path / "records"
    argv = [str(SCRIPT), "--spec", str(spec), "--out", str(tmp_path / "bench"), "--doc", str(doc), "--workers", "0",
            "--threads", "1", "--no-progress", "--records", str(records)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPT), run_name="__main__")
    text = doc.read_text()
    assert "**6 of 6 runs finished**" in text and "python scripts/benchmark.py --spec" in text
    assert f"| sds | sds | 7.5 | 0.02-0.98 | 30 | {TrainConfig().views} | 4 | 32 | nerf (blob_radius 0.42) |" in text  # presets, spec
    assert "| sds | 3 (0) |" in text and "| a mug | colour | 2/2, H=1.00" in text
    assert "| sds | 3 | 0 | 3 | 0 |" in text  # the Janus table: three mug runs, one handle each
    assert "| vsd | 1 of 1 | 1 of 1 | - |" in text  # the quality bar: the ground-truth mug meets it
    for name in ("metrics.png", "grid.png", "diversity-a-mug.png"):
        assert (doc.parent / "small" / name).is_file(), name
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(links) == 3 and all((doc.parent / link).is_file() for link in links), links
    assert (tmp_path / "bench" / "report.html").is_file()
    # the document is regenerated from finished runs without running anything
    fake_runs.calls.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--report-only"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert fake_runs.calls == [] and doc.read_text() == text
    # on another machine, without the runs: the records in the repository stand for them, pictures included
    assert sorted(p.name for p in (records / "sds" / "a-red-mug" / "s0").iterdir()) == [
        "config.yaml", "evaluation.json", "front.png", "metrics.json"]
    shutil.rmtree(tmp_path / "bench")
    grid = (doc.parent / "small" / "grid.png").read_bytes()
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert fake_runs.calls == [] and doc.read_text() == text
    assert (doc.parent / "small" / "grid.png").read_bytes() == grid


def test_quality_bar_names_what_each_missing_run_missed():
    bar = runpy.run_path(str(SCRIPT))["quality_bar"]
    ok = dict(method="sds", kind="full", status="ok", error="", seed=0, shape_correct=True, chamfer=0.02,
              colour_correct=True, janus_ok=None, nearest_shape="cube", colour="red", handles=0)
    rows = [dict(ok, prompt="a red cube"), dict(ok, prompt="a red torus", chamfer=0.03),
            dict(ok, prompt="a red cone", shape_correct=False, nearest_shape="cylinder", chamfer=0.05),
            dict(ok, prompt="a red mug", chamfer=0.04, colour_correct=False, colour="blue", janus_ok=False, handles=2),
            dict(ok, prompt="a red sphere", status="error", error="RuntimeError: boom", chamfer=None),
            dict(ok, prompt="a mug", kind="shape-only", shape_correct=False),  # not fully specified: not counted
            *[dict(ok, prompt=f"a {c} cube", status="error", error="not run", chamfer=None) for c in ("blue", "gray")]]
    line = bar(rows, ["sds"]).splitlines()[-1]
    assert line == ("| sds | 2 of 7 | 1 of 7 | a red cone (0): nearest cylinder; a red mug (0): Chamfer 0.0400, "
                    "colour blue, 2 handles; a red sphere (0): RuntimeError: boom; 2 not run yet |")


def test_settings_name_the_terms_a_preset_turns_off(tmp_path):
    settings = runpy.run_path(str(SCRIPT))["settings"]
    spec = BatchSpec(methods=["uni-instruct-fkl", "uni-instruct-js"], groups=[PromptGroup(["a red mug"], [0])])
    rows = settings(spec, tmp_path)
    assert rows[2].startswith("| uni-instruct-fkl | uni-instruct (fkl) | 3 |")
    assert rows[3].startswith("| uni-instruct-js | uni-instruct (js; without DI) | 3 |")  # configs/uni-instruct-js.yaml


def test_settings_give_the_diffusion_time_schedule(tmp_path):
    settings = runpy.run_path(str(SCRIPT))["settings"]
    spec = BatchSpec(methods=["sds", "uni-instruct-fkl"], groups=[PromptGroup(["a red mug"], [0])],
                     overrides={"guidance": {"anneal_steps": 100}})
    sds, fkl = settings(spec, tmp_path)[2:]
    assert "| 7.5 | 0.02-0.98 | 300 | 1 | 4 |" in sds  # no annealing: one range; configs/sds.yaml: 4 draws, 300 steps
    assert "| 3 | 0.9-0.98, to 0.02-0.98 over steps 0-100 | 500 | 1 | 1 |" in fkl  # configs/uni-instruct-fkl.yaml


def test_settings_name_the_scene_settings_a_preset_changes(tmp_path):
    settings = runpy.run_path(str(SCRIPT))["settings"]
    spec = BatchSpec(methods=["uni-instruct-fkl"], groups=[PromptGroup(["a red mug"], [0])],
                     overrides={"nerf": {"blob_radius": 0.3}})
    assert settings(spec, tmp_path)[2].endswith("| nerf (blob_radius 0.3) |")
    spec = BatchSpec(methods=["uni-instruct-fkl"], groups=[PromptGroup(["a red mug"], [0])])
    assert settings(spec, tmp_path)[2].endswith("| nerf |")


def test_a_reading_written_for_other_runs_is_flagged(tmp_path):
    reading_section = runpy.run_path(str(SCRIPT))["reading_section"]
    path = tmp_path / "reading.md"
    assert reading_section(path, 10) == []  # no reading: no section
    path.write_text("<!-- written for 10 finished runs -->\nForward KL won on cones.\n")
    current = reading_section(path, 10)
    assert current[0].startswith("## Reading") and current[2] == "Forward KL won on cones."
    assert "out of date" not in "".join(current)
    assert "Written when 10 runs had finished; the tables above now hold 12" in "".join(reading_section(path, 12))
    path.write_text("Forward KL won on cones.\n")  # no stamp: the document asks for one
    assert "<!-- written for 12 finished runs -->" in "".join(reading_section(path, 12))


def test_runs_that_miss_the_bar_are_shown(fake_runs, tmp_path, monkeypatch):
    fake_runs.recolour[("a red cube", "vsd")] = "blue"
    spec = tmp_path / "spec.yaml"
    spec.write_text("methods: [sds, vsd]\ngroups:\n  - {prompts: [a red cube], seeds: [0]}\noverrides: {train: {steps: 30}}\n")
    doc = tmp_path / "docs" / "SMALL.md"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--spec", str(spec), "--out", str(tmp_path / "bench"), "--doc", str(doc),
                                      "--workers", "0", "--threads", "1", "--no-progress", "--records", str(tmp_path / "r")])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    text = doc.read_text()
    assert "| vsd | 0 of 1 | 1 of 1 | a red cube (0): colour blue |" in text and "| sds | 1 of 1 |" in text
    assert "The finished runs that missed the quality bar, front views:" in text
    assert "![runs that missed the bar](small/misses.png)" in text and (doc.parent / "small" / "misses.png").is_file()
    assert "name the same colour in 2 of 2 finished runs" in text  # the recoloured cube reads blue both ways


def test_a_method_with_runs_not_finished_says_so_in_the_readings():
    from uni3d.compare.stats import DIVERSITY, METRICS

    readings = runpy.run_path(str(SCRIPT))["readings"]

    def stats(chamfer: float, failed: int) -> dict:
        s = {m.name: {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0} for m in (*METRICS, DIVERSITY)}
        s["chamfer"] = {"mean": chamfer, "lo": chamfer - 1e-3, "hi": chamfer + 1e-3, "n": 10 - failed}
        return {**s, "runs": {"n": 10}, "failed": {"n": failed}}

    (line,) = readings({"sds": stats(0.02, 0), "vsd": stats(0.01, 4)})
    assert line.startswith("- Chamfer-L1: best mean **vsd** (0.0100; 6 of 10 runs finished), then sds (0.0200); ")

    (line,) = readings({"sds": stats(0.02, 0), "vsd": stats(0.02, 0), "uni-instruct-fkl": stats(0.02, 0),
                        "uni-instruct-rkl": stats(0.03, 0)})
    assert line == "- Chamfer-L1: sds, vsd and uni-instruct-fkl tie at 0.0200."  # each method tied at the top is named

    # with two methods complete, a partial one is not ranked, however good its mean over the prompts it has run
    lines = readings({"sds": stats(0.02, 0), "vsd": stats(0.03, 0), "uni-instruct-js": stats(0.01, 7)})
    assert lines[0].startswith("- Chamfer-L1: best mean **sds** (0.0200), then vsd (0.0300); ")
    assert lines[1] == ("- Not ranked above until their runs finish, as their means cover only part of the prompts: "
                        "uni-instruct-js (3 of 10 runs finished).")


def test_compare_records_scores_both_sides_as_the_benchmark_does(tmp_path):
    compare = runpy.run_path(str(SCRIPT.with_name("compare_records.py")))["compare"]
    ev = dict(prompt="a red mug", nearest_shape="mug", chamfer=0.02, shape_correct=True, colour="red",
              colour_correct=True, handles=1, janus_ok=True)
    for side, handles, seeds in (("before", 2, (0, 1)), ("after", 1, (0, 2))):
        for seed in seeds:
            run = tmp_path / side / "a-red-mug" / f"s{seed}"
            run.mkdir(parents=True)
            (run / "evaluation.json").write_text(json.dumps(dict(ev, handles=handles, janus_ok=handles == 1)))
    lines = compare(tmp_path / "before", tmp_path / "after")
    assert lines[2] == "| a red mug | 0 | mug, 0.0200, red, 2 (misses: 2 handles) | mug, 0.0200, red, 1 |"
    assert len([line for line in lines if line.startswith("| a red mug |")]) == 1  # seeds 1 and 2: one side only
    assert "bar met 0 of 1; below 0.025 1 of 1 | mean Chamfer-L1 0.0200; bar met 1 of 1" in lines[-1]


def test_compare_records_gives_the_diversity_of_each_side(tmp_path):
    compare = runpy.run_path(str(SCRIPT.with_name("compare_records.py")))["compare"]
    ev = dict(prompt="a sphere", nearest_shape="sphere", chamfer=0.02, shape_correct=True, colour_correct=None,
              handles=0, janus_ok=None)
    for side, colours in (("before", ("green", "green", "green")), ("after", ("green", "red", "blue"))):
        for seed, colour in enumerate(colours):
            run = tmp_path / side / "a-sphere" / f"s{seed}"
            run.mkdir(parents=True)
            (run / "evaluation.json").write_text(json.dumps(dict(ev, colour=colour)))
    lines = compare(tmp_path / "before", tmp_path / "after")
    assert "| a sphere | colour | 1/3, H=0.00 (green 3) | 3/3, H=1.00 (blue 1, green 1, red 1) |" in lines
    assert lines[-1] == "Mean normalised entropy over these 1 prompts: before 0.00, after 1.00."
    lines = compare(tmp_path / "before", tmp_path / "after", seeds=[0, 1])  # narrowed: two seeds, one colour each side
    assert "| a sphere | colour | 1/2, H=0.00 (green 2) | 2/2, H=1.00 (green 1, red 1) |" in lines


def test_the_committed_records_stand_for_the_benchmark_as_the_code_now_asks():
    """Every record in docs/benchmark/runs was made with the settings that configs/benchmark/full.yaml and the
    presets give today: a change to a preset (or a default) that the benchmark's runs did not have fails here, so
    BENCHMARK.md never describes other settings than the code's, and a fresh checkout resumes over the records."""
    from uni3d.compare.batch import plan, stale

    root = Path(__file__).resolve().parents[2]
    records = root / "docs" / "benchmark" / "runs"
    # planned into the records' parent, each run's directory is its record
    tasks = [t for t in plan(load_spec(root / "configs" / "benchmark" / "full.yaml"), records.parent)
             if (t.run_dir / "evaluation.json").is_file()]
    assert tasks and tasks[0].run_dir.parent.parent.parent == records
    differ = {t.key: d for t in tasks if (d := stale(t))}
    assert not differ, f"{len(differ)} of {len(tasks)} records differ, e.g. {next(iter(differ.items()))}"
