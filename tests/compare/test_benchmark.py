"""scripts/benchmark.py writes the benchmark document from a batch (runs faked here, see conftest)."""

import runpy
import sys
from pathlib import Path

from uni3d.training import TrainConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"


def test_benchmark_document_from_a_small_batch(fake_runs, tmp_path, monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text("methods: [sds, vsd]\ngroups:\n  - {prompts: [a red mug], seeds: [0]}\n"
                    "  - {prompts: [a mug], seeds: [0, 1]}\noverrides: {train: {steps: 30}}\n")
    doc = tmp_path / "docs" / "BENCHMARK.md"
    argv = [str(SCRIPT), "--spec", str(spec), "--out", str(tmp_path / "bench"), "--doc", str(doc), "--workers", "0",
            "--threads", "1", "--no-progress"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPT), run_name="__main__")
    text = doc.read_text()
    assert "**6 of 6 runs finished**" in text and "python scripts/benchmark.py --spec" in text
    assert f"| sds | sds | 20 | 30 | {TrainConfig().views} | 32 | nerf |" in text  # the settings, from the presets and the spec
    assert "| sds | 3 (0) |" in text and "| a mug | colour | 2/2, H=1.00" in text
    assert "| sds | 3 | 0 | 3 | 0 |" in text  # the Janus table: three mug runs, one handle each
    for name in ("metrics.png", "grid.png", "diversity-a-mug.png"):
        assert (doc.parent / "benchmark" / name).is_file(), name
    assert (tmp_path / "bench" / "report.html").is_file()
    # the document is regenerated from finished runs without running anything
    fake_runs.calls.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--report-only"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert fake_runs.calls == [] and doc.read_text() == text
