"""`uni3d generate` end to end on a tiny random teacher: every method and scene, resume, bad input."""

import json

import pytest
import torch
import trimesh
import yaml

from uni3d.cli import main
from uni3d.config import GenerateConfig, load_run_config
from uni3d.generate import generate

FAST = ["--steps", "3", "--views", "1", "--resolution", "16", "--export.resolution", "40", "--no-progress",
        "--ratio-samples", "2", "--nerf.samples-per-ray", "24", "--checkpoint-every", "2"]


@pytest.mark.parametrize("method", ["sds", "vsd", "uni-instruct"])
def test_generate_nerf_writes_a_mesh(tiny_shapes_dir, tmp_path, method, monkeypatch):
    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["generate", "a red mug", "--teacher", str(tiny_shapes_dir), "--method", method, "--out", str(out),
                 "--formats", "glb", "ply", *FAST]) == 0
    for name in ("config.yaml", "metrics.json", "metrics.jsonl", "multiview.png", "turntable.gif", "checkpoint.pt"):
        assert (out / name).exists(), name
    mesh = trimesh.load(out / "mesh.glb", force="mesh")
    assert len(mesh.faces) > 0 and (out / "mesh.ply").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["method"] == method and metrics["mesh_route"] == "density"
    # config.yaml is plain YAML that reloads into the same settings
    assert yaml.safe_load((out / "config.yaml").read_text())["guidance"]["method"] == method
    assert load_run_config(out / "config.yaml").guidance.method == method
    # `uni3d export` overrides the run's export settings, and says which flag is wrong
    import uni3d.export

    seen = []
    real = uni3d.export.extract_mesh
    monkeypatch.setattr(uni3d.export, "extract_mesh", lambda scene, cfg: seen.append(cfg) or real(scene, cfg))
    assert main(["export", str(out), "--format", "obj", "--resolution", "32", "--close-radius", "0",
                 "--pit-radius", "0.1", "--hidden-views", "0"]) == 0
    assert (seen[-1].close_radius, seen[-1].pit_radius, seen[-1].resolution, seen[-1].hidden_views) == (0.0, 0.1, 32, 0)
    assert (out / "mesh.obj").exists()
    for flag in ("--close-radius", "--pit-radius", "--hidden-views"):
        assert main(["export", str(out), flag, "-1"]) == 2


def test_generate_gaussians_writes_a_mesh(tiny_shapes_dir, tmp_path):
    out = tmp_path / "gs"
    assert main(["generate", "a yellow sphere", "--scene", "gaussians", "--method", "sds", "--teacher", str(tiny_shapes_dir),
                 "--out", str(out), "--gaussians.num-init", "300", *FAST]) == 0
    assert len(trimesh.load(out / "mesh.glb", force="mesh").faces) > 0
    # the same cloud through TSDF fusion of its rendered depth
    assert main(["export", str(out), "--method", "tsdf", "--format", "ply", "--resolution", "32"]) == 0
    mesh = trimesh.load(out / "mesh.ply", force="mesh")
    assert len(mesh.faces) > 0 and abs(mesh.vertices).max() <= 1.0 + 1e-6


def test_generate_image_scene(tiny_shapes_dir, tmp_path):
    out = tmp_path / "img"
    assert main(["generate", "a blue cube", "--scene", "image", "--method", "sds", "--teacher", str(tiny_shapes_dir),
                 "--out", str(out), *FAST]) == 0
    assert (out / "image.png").exists() and not (out / "mesh.glb").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method,scene", [("sds", "nerf"), ("vsd", "nerf"), ("uni-instruct", "nerf"), ("sds", "gaussians")])
def test_generate_on_cuda_then_export_on_the_cpu(tiny_shapes_dir, tmp_path, method, scene, monkeypatch):
    """--device cuda trains there (cameras, noise and the fake score's modules follow the teacher and the scene)
    and the run's checkpoint exports again with the scene rebuilt on the CPU."""
    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["generate", "a red mug", "--teacher", str(tiny_shapes_dir), "--method", method, "--scene", scene,
                 "--device", "cuda", "--out", str(out), "--gaussians.num-init", "300", *FAST]) == 0
    assert len(trimesh.load(out / "mesh.glb", force="mesh").faces) > 0
    assert main(["export", str(out), "--format", "ply", "--resolution", "32"]) == 0
    assert len(trimesh.load(out / "mesh.ply", force="mesh").faces) > 0


def test_checkpoint_never_holds_the_teacher(tiny_shapes_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["generate", "a red mug", "--teacher", str(tiny_shapes_dir), "--method", "vsd", "--out", str(out), *FAST]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert set(state["fake"]) == {"lora", "camera_embedding", "ratio_head"}
    assert not any("unet" in k and "lora" not in k for k in state["fake"]["lora"])
    assert not any(k.startswith("teacher") for k in state)


def test_resume_after_a_kill_matches_the_uninterrupted_run(tiny_shapes_dir, tmp_path, monkeypatch):
    from uni3d.training import Trainer

    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path / "cache"))
    args = ["generate", "a green torus", "--teacher", str(tiny_shapes_dir), "--method", "uni-instruct",
            "--ratio-warmup", "0", *FAST[:-2], "--steps", "5", "--checkpoint-every", "2"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0

    real_step = Trainer.train_step

    def dying_step(self, step):
        if step == 4:
            raise KeyboardInterrupt  # killed after the checkpoint at step 4
        return real_step(self, step)

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        main([*args, "--out", str(tmp_path / "killed")])
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["step"] == 4
    assert main(["generate", "--out", str(tmp_path / "killed"), "--resume", "--no-progress"]) == 0
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 5
    for k in a["scene"]:
        assert torch.equal(a["scene"][k], b["scene"][k]), k
    for k in a["fake"]["lora"]:
        assert torch.equal(a["fake"]["lora"][k], b["fake"]["lora"][k]), k


def test_sigterm_checkpoints_and_exits_130(tiny_shapes_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "uni3d.cli", "generate", "a red cube", "--teacher", str(tiny_shapes_dir),
                             "--method", "sds", "--out", str(out), *FAST[:-2], "--steps", "100000", "--checkpoint-every", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] >= 1


BAD = [
    (["--steps", "0"], "--steps must be positive"),
    (["--steps", "-3"], "--steps must be positive"),
    (["--cfg-scale", "0"], "--cfg-scale must be positive"),
    (["--method", "dreamfusion"], None),
    (["--divergence", "kl"], None),
    (["--divergence", "alpha"], "--alpha"),
    (["--ratio-normalise", "1"], "--ratio-normalise must be in [0, 1)"),
    (["--name", "a/b"], "path separators"),
    (["--formats", "stl"], "unknown mesh format"),
]


@pytest.mark.parametrize("extra,needle", BAD)
def test_bad_input_exits_2_and_writes_nothing(tiny_shapes_dir, tmp_path, monkeypatch, capsys, extra, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) if needle is None else _no_raise():
        rc = main(["generate", "a red mug", "--teacher", str(tiny_shapes_dir), *extra])
        assert rc == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_parse_errors_exit_2(tiny_shapes_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for extra in (["--method", "dreamfusion"], ["--steps", "many"]):
        with pytest.raises(SystemExit) as exc:
            main(["generate", "a red mug", "--teacher", str(tiny_shapes_dir), *extra])
        assert exc.value.code == 2


def test_existing_out_needs_resume_or_overwrite(tiny_shapes_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["generate", "a red mug", "--teacher", str(tiny_shapes_dir), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_unwritable_out(tiny_shapes_dir, tmp_path, capsys):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that ignores permissions")
        assert main(["generate", "a red mug", "--teacher", str(tiny_shapes_dir), "--out", str(locked / "run")]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_unknown_word_and_empty_prompt(tiny_shapes_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "a shiny mug", "--teacher", str(tiny_shapes_dir)]) == 2
    assert main(["generate", "", "--teacher", str(tiny_shapes_dir)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_preset_then_flags(tmp_path):
    from uni3d.cli import _generate_default

    preset = tmp_path / "p.yaml"
    preset.write_text("guidance:\n  method: sds\n  cfg_scale: 20\ntrain:\n  steps: 7\n")
    cfg = _generate_default(["a red mug", "--config", str(preset)])
    assert cfg.guidance.method == "sds" and cfg.guidance.cfg_scale == 20 and cfg.train.steps == 7
    assert isinstance(cfg, GenerateConfig)


def test_preset_unknown_key(tmp_path):
    from uni3d.config import load_preset
    from uni3d.errors import UserError

    preset = tmp_path / "p.yaml"
    preset.write_text("guidance:\n  methd: sds\n")
    with pytest.raises(UserError, match="guidance.methd"):
        load_preset(preset, GenerateConfig())


def test_preset_numbers_in_exponent_form(tmp_path):
    """YAML 1.1 reads 3e-3 as a string; a float setting takes it as the number, and a word is an error."""
    from uni3d.config import load_preset
    from uni3d.errors import UserError

    preset = tmp_path / "p.yaml"
    preset.write_text("fake:\n  lr: 3e-3\nguidance:\n  t_min: 1e-1\n  alpha: 5e-1\ntrain:\n  regularizer_weights: {loss_opacity: 1e-2}\n")
    cfg = load_preset(preset, GenerateConfig())
    assert cfg.fake.lr == 0.003 and cfg.guidance.t_min == 0.1 and cfg.guidance.alpha == 0.5
    assert cfg.train.regularizer_weights == {"loss_opacity": 0.01}
    preset.write_text("fake:\n  lr: fast\n")
    with pytest.raises(UserError, match="fake.lr"):
        load_preset(preset, GenerateConfig())


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_generate_function_returns_run_dir(tiny_shapes_dir, tmp_path):
    from uni3d.config import apply_overrides

    cfg = apply_overrides(GenerateConfig(prompt="a gray cone", teacher=str(tiny_shapes_dir), out=tmp_path / "r",
                                         progress=False),
                          {"guidance": {"method": "sds"}, "train": {"steps": 2, "views": 1, "resolution": 16},
                           "export": {"resolution": 40}, "nerf": {"samples_per_ray": 24}})
    assert generate(cfg) == tmp_path / "r"


def test_method_preset_names_the_file_or_none_for_a_divergence_without_one():
    from uni3d.config import method_preset

    assert method_preset("sds", "fkl").name == "sds.yaml"
    assert method_preset("uni-instruct", "rkl").name == "uni-instruct-rkl.yaml"
    assert method_preset("uni-instruct", "hellinger") is None  # the bare defaults with that divergence


def test_method_preset_without_the_presets_directory_is_an_error(tmp_path, monkeypatch):
    """An install without configs/ must not quietly run every method on the bare defaults."""
    import uni3d.config
    from uni3d.errors import UserError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(uni3d.config, "__file__", str(tmp_path / "site" / "uni3d" / "config.py"))
    with pytest.raises(UserError, match="configs/ was not found"):
        uni3d.config.method_preset("sds", "fkl")


@pytest.mark.parametrize("flags,method,cfg_scale,blob,t_max_end", [
    (["--method", "sds"], "sds", 7.5, 0.42, 0.98),
    (["--method=sds", "--cfg-scale", "12"], "sds", 12.0, 0.42, 0.98),
    (["--method", "vsd"], "vsd", 7.5, 0.42, 0.5),
    (["--method", "vsd", "--t-max-end", "0.7"], "vsd", 7.5, 0.42, 0.7)])
def test_method_flag_starts_from_the_method_preset(tiny_shapes_dir, tmp_path, flags, method, cfg_scale, blob,
                                                   t_max_end, monkeypatch):
    """`--method sds` runs SDS as configs/sds.yaml tunes it (CFG 20, a smaller initial blob), `--method vsd` as
    configs/vsd.yaml does (ProlificDreamer's annealed time range, the same blob), and flags still override the
    preset."""
    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["generate", "a red mug", "--teacher", str(tiny_shapes_dir), *flags, "--out", str(out), *FAST]) == 0
    saved = load_run_config(out / "config.yaml")
    assert saved.guidance.method == method
    assert saved.guidance.cfg_scale == cfg_scale
    assert saved.nerf.blob_radius == blob
    assert saved.guidance.t_max_end == t_max_end


def test_a_run_config_with_a_retired_setting_still_loads(tmp_path):
    """Gaussian runs made before the pair-list rasteriser saved its tile side; they still reload (and export)."""
    from uni3d.config import save_run_config
    from uni3d.errors import UserError

    path = tmp_path / "config.yaml"
    save_run_config(GenerateConfig(scene="gaussians"), path)
    data = yaml.safe_load(path.read_text())
    data["gaussians"]["tile"] = 8
    path.write_text(yaml.safe_dump(data))
    assert load_run_config(path).scene == "gaussians"
    data["gaussians"]["tiles"] = 8  # an unknown setting is still an error
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="tiles"):
        load_run_config(path)
