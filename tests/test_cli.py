"""The CLI's teacher and world commands, and their bad-input contract (exit 2, nothing written)."""

import subprocess
import sys

import pytest
import trimesh

from uni3d.cli import main


def test_top_level_help(capsys):
    assert main([]) == 0
    assert "teacher sample" in capsys.readouterr().out


def test_help_reflows_wrapped_field_docstrings(monkeypatch, capsys):
    """A field docstring wrapped over several source lines prints as one paragraph, not one line per source line."""
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--help"])
    assert exit_.value.code == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "Lowest diffusion time at the start" in x)
    assert "(large noise first: the object's shape is settled before its details); None: t_min throughout." in line


def test_unknown_command(capsys):
    assert main(["fly"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_teacher_sample_writes_pngs_and_grid(tiny_shapes_dir, tmp_path):
    out = tmp_path / "s"
    rc = main(["teacher", "sample", "a red mug", "-n", "3", "--out", str(out), "--teacher", str(tiny_shapes_dir),
               "--steps", "2", "--azimuth", "180", "--elevation", "10"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "sample_000.png", "sample_001.png", "sample_002.png"]


@pytest.mark.parametrize("prompt,needle", [("a shiny mug", "vocabulary: a object red"), ("", "--unconditional")])
def test_teacher_sample_bad_prompt(tiny_shapes_dir, tmp_path, capsys, prompt, needle):
    out = tmp_path / "s"
    rc = main(["teacher", "sample", prompt, "--out", str(out), "--teacher", str(tiny_shapes_dir), "--steps", "2"])
    assert rc == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not out.exists()


def test_unconditional_allowed_explicitly(tiny_shapes_dir, tmp_path):
    out = tmp_path / "s"
    assert main(["teacher", "sample", "", "--unconditional", "-n", "1", "--out", str(out),
                 "--teacher", str(tiny_shapes_dir), "--steps", "1"]) == 0
    assert (out / "grid.png").exists()


def test_missing_teacher_asset(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNI3D_ASSETS", str(tmp_path / "nowhere"))
    out = tmp_path / "s"
    assert main(["teacher", "sample", "a red mug", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model_index.json" in err and "git checkout" in err
    assert not out.exists()


def test_invalid_number(tiny_shapes_dir, tmp_path, capsys):
    assert main(["teacher", "sample", "a red mug", "-n", "0", "--out", str(tmp_path / "s"),
                 "--teacher", str(tiny_shapes_dir)]) == 2
    assert not (tmp_path / "s").exists()


def test_parse_error_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "uni3d.cli", "teacher", "sample", "a red mug", "-n", "many"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2


def test_world_mesh(tmp_path):
    out = tmp_path / "mug.glb"
    assert main(["world", "mesh", "a red mug", "-o", str(out), "--resolution", "64"]) == 0
    mesh = trimesh.load(out, force="mesh")
    assert mesh.bounds[1][0] == pytest.approx(0.61, abs=0.03)  # handle towards +x, world units
    assert mesh.bounds[0][0] == pytest.approx(-0.30, abs=0.03)
    colours = mesh.visual.vertex_colors
    assert tuple(int(c) for c in colours[0][:3]) == pytest.approx((217, 26, 26), abs=1)


def test_world_mesh_needs_full_prompt(tmp_path, capsys):
    assert main(["world", "mesh", "a mug", "-o", str(tmp_path / "m.glb")]) == 2
    assert not (tmp_path / "m.glb").exists()
