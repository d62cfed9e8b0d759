"""The resumable batch: finished runs are skipped, a killed batch continues, a failing run is recorded."""

import json
from pathlib import Path

import pytest
import yaml

from uni3d.cli import main
from uni3d.compare.batch import CompareConfig, compare
from uni3d.compare.results import read_csv
from uni3d.config import GenerateConfig, load_preset
from uni3d.errors import UserError


def _cfg(out, **kw) -> CompareConfig:
    kw = {"methods": ("sds", "vsd"), "prompts": ("a red mug", "a blue object"), "seeds": (0,), "out": out,
          "workers": 0, "threads": 1, "progress": False, "turntables": 2, **kw}
    return CompareConfig(**kw)


def test_batch_scores_every_run_and_writes_the_reports(fake_runs, tmp_path):
    out = tmp_path / "cmp"
    rows = compare(_cfg(out))
    assert [(r["method"], r["prompt"], r["status"]) for r in rows] == [
        ("sds", "a red mug", "ok"), ("sds", "a blue object", "ok"), ("vsd", "a red mug", "ok"), ("vsd", "a blue object", "ok")]
    assert (out / "runs" / "vsd" / "a-blue-object" / "s0" / "evaluation.json").is_file()
    csv_rows = read_csv(out / "results.csv")
    mug = csv_rows[0]
    assert mug["kind"] == "full" and mug["chamfer"] < 0.03 and mug["iou"] > 0.8 and mug["shape_correct"] is True
    assert mug["colour_correct"] is True and mug["handles"] == 1 and mug["janus_ok"] is True
    assert mug["view_colour_accuracy"] >= 0.75 and mug["peak_memory_mb"] == 100.0 and mug["wall_seconds"] > 0
    assert csv_rows[1]["kind"] == "colour-only" and csv_rows[1]["colour"] == "blue" and csv_rows[1]["shape_correct"] is None
    for name in ("report.md", "report.html", "metrics.png", "summary.json", "batch.yaml"):
        assert (out / name).is_file(), name
    assert "| sds | 2 (0) |" in (out / "report.md").read_text()


def test_killed_batch_continues_where_it_stopped(fake_runs, tmp_path):
    out = tmp_path / "cmp"
    fake_runs.kill.add(("a red mug", "vsd"))  # killed after its files, before its evaluation
    with pytest.raises(KeyboardInterrupt):
        compare(_cfg(out))
    partial = out / "runs" / "vsd" / "a-red-mug" / "s0"
    assert (partial / "mesh.glb").exists() and not (partial / "evaluation.json").exists()
    assert [r["status"] for r in read_csv(out / "results.csv")] == ["ok", "ok", "error", "error"]  # not run yet

    fake_runs.kill.clear()
    fake_runs.calls.clear()
    rows = compare(_cfg(out))
    assert [r["status"] for r in rows] == ["ok"] * 4
    # only the killed run and the one never started were run, the killed one over its partial directory
    assert fake_runs.calls == [("a red mug", "vsd", 0, True), ("a blue object", "vsd", 0, False)]
    fake_runs.calls.clear()
    compare(_cfg(out))
    assert fake_runs.calls == []  # everything finished: nothing runs


def test_a_failing_run_is_recorded_and_the_batch_goes_on(fake_runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    fake_runs.fail["a blue object"] = RuntimeError("the scene exploded")
    assert main(["compare", "--methods", "sds", "--prompts", "a red mug", "a blue object", "a green torus",
                 "--out", str(out), "--workers", "0", "--threads", "1", "--no-progress"]) == 0
    rows = read_csv(out / "results.csv")
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert rows[1]["error"] == "RuntimeError: the scene exploded"
    assert "2 of 3 runs finished" in capsys.readouterr().out
    assert "the scene exploded" in (out / "report.html").read_text()
    fake_runs.fail.clear()
    fake_runs.calls.clear()
    compare(_cfg(out, methods=("sds",), prompts=("a red mug", "a blue object", "a green torus")))
    assert [c[0] for c in fake_runs.calls] == ["a blue object"]  # a failed run is tried again


def test_changed_settings_need_overwrite(fake_runs, tmp_path):
    out = tmp_path / "cmp"
    compare(_cfg(out, methods=("sds",), prompts=("a red mug",)))
    steps = load_preset(Path(__file__).parents[2] / "configs" / "sds.yaml", GenerateConfig()).train.steps
    with pytest.raises(UserError, match=f"train.steps: {steps} here, 7 asked"):
        compare(_cfg(out, methods=("sds",), prompts=("a red mug",), override=("train.steps=7",)))
    fake_runs.calls.clear()
    compare(_cfg(out, methods=("sds",), prompts=("a red mug",), override=("train.steps=7",), overwrite=True))
    assert len(fake_runs.calls) == 1
    assert json.loads((out / "runs" / "sds" / "a-red-mug" / "s0" / "evaluation.json").read_text())["steps"] == 7


def test_a_setting_added_since_a_run_does_not_make_it_stale(fake_runs, tmp_path):
    """A run made before a setting existed (its config.yaml lacks the key) still stands; a changed one does not."""
    out = tmp_path / "cmp"
    compare(_cfg(out, methods=("sds",), prompts=("a red mug",)))
    path = out / "runs" / "sds" / "a-red-mug" / "s0" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    del config["guidance"]["ratio_normalise"]
    path.write_text(yaml.safe_dump(config))
    fake_runs.calls.clear()
    compare(_cfg(out, methods=("sds",), prompts=("a red mug",)))
    assert fake_runs.calls == []
    config["guidance"]["cfg_scale"] = 1.5
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(UserError, match="guidance.cfg_scale: 1.5 here"):
        compare(_cfg(out, methods=("sds",), prompts=("a red mug",)))


def test_a_retired_setting_does_not_make_a_run_stale(fake_runs, tmp_path):
    """Gaussian runs made before the pair-list rasteriser saved its tile side: a batch resumes over them."""
    out = tmp_path / "cmp"
    compare(_cfg(out, methods=("sds",), prompts=("a red mug",)))
    path = out / "runs" / "sds" / "a-red-mug" / "s0" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["gaussians"]["tile"] = 8
    path.write_text(yaml.safe_dump(config))
    fake_runs.calls.clear()
    compare(_cfg(out, methods=("sds",), prompts=("a red mug",)))
    assert fake_runs.calls == []
    config["gaussians"]["tiles"] = 8  # a setting uni3d never had still tells the run apart
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(UserError, match="gaussians.tiles: 8 here"):
        compare(_cfg(out, methods=("sds",), prompts=("a red mug",)))


def test_report_only_runs_nothing(fake_runs, tmp_path):
    out = tmp_path / "cmp"
    compare(_cfg(out, methods=("sds",), prompts=("a red mug",)))
    fake_runs.calls.clear()
    rows = compare(_cfg(out, methods=("sds",), prompts=("a red mug", "a mug"), report_only=True))
    assert fake_runs.calls == [] and [r["status"] for r in rows] == ["ok", "error"] and rows[1]["error"] == "not run"


def test_changed_export_settings_mesh_the_runs_again_without_training(tiny_shapes_dir, tiny, tmp_path, monkeypatch):
    """A real tiny run; then the batch asked for another export meshes it again from its checkpoint, records
    the settings in config.yaml and scores it anew, and a third call has nothing left to do."""
    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cmp"
    base = {"methods": ("sds",), "prompts": ("a red mug",), "teacher": str(tiny_shapes_dir)}
    assert compare(_cfg(out, **base, override=tuple(tiny)))[0]["status"] == "ok"
    run = out / "runs" / "sds" / "a-red-mug" / "s0"
    trained = (run / "checkpoint.pt").stat().st_mtime_ns, (run / "metrics.jsonl").read_text()
    scored = (run / "evaluation.json").stat().st_mtime_ns

    import uni3d.generate

    monkeypatch.setattr(uni3d.generate, "generate", lambda cfg: pytest.fail("a finished run was trained again"))
    rows = compare(_cfg(out, **base, override=(*tiny, "export.close_radius=0", "export.hidden_views=0")))
    assert rows[0]["status"] == "ok"
    assert ((run / "checkpoint.pt").stat().st_mtime_ns, (run / "metrics.jsonl").read_text()) == trained
    assert (run / "evaluation.json").stat().st_mtime_ns > scored
    export = yaml.safe_load((run / "config.yaml").read_text())["export"]
    assert (export["close_radius"], export["hidden_views"], export["resolution"]) == (0.0, 0, 40)
    assert json.loads((run / "metrics.json").read_text())["meshes"] == ["mesh.glb"]
    scored = (run / "evaluation.json").stat().st_mtime_ns
    compare(_cfg(out, **base, override=(*tiny, "export.close_radius=0", "export.hidden_views=0")))
    assert (run / "evaluation.json").stat().st_mtime_ns == scored  # nothing differs any more: nothing runs


def test_changed_export_without_a_checkpoint_needs_overwrite(fake_runs, tmp_path):
    """A finished run with no checkpoint left (restored from its records) cannot be meshed again."""
    out = tmp_path / "cmp"
    compare(_cfg(out, methods=("sds",), prompts=("a red mug",)))
    with pytest.raises(UserError, match="export.close_radius: 0.08 here, 0.0 asked"):
        compare(_cfg(out, methods=("sds",), prompts=("a red mug",), override=("export.close_radius=0",)))
