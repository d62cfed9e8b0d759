"""The nerfstudio model trains the uni3d scene with uni3d's own guidance, step for step."""

import copy
import threading
from pathlib import Path

import pytest
import torch

pytest.importorskip("nerfstudio.plugins")  # not just tests/nerfstudio as a namespace package

from uni3d.config import GenerateConfig, load_preset  # noqa: E402
from uni3d.nerfstudio.cameras import to_nerfstudio  # noqa: E402
from uni3d.nerfstudio.methods import PRESETS, trainer_config  # noqa: E402
from uni3d.nerfstudio.trainer import Uni3DTrainer  # noqa: E402
from uni3d.scenes.nerf import NeRFScene  # noqa: E402
from uni3d.teachers import load_teacher  # noqa: E402
from uni3d.training import TrainConfig, Trainer  # noqa: E402

CONFIGS = Path(__file__).parents[2] / "configs"


def tiny_config(method, teacher_dir):
    cfg = trainer_config(method)
    m, d = cfg.pipeline.model, cfg.pipeline.datamanager
    m.teacher, m.nerf.samples_per_ray, m.guidance.ratio_samples = str(teacher_dir), 24, 2
    d.resolution, d.views = 16, 1
    return cfg


def setup(cfg):
    """uni3d's nerfstudio Trainer with its pipeline, optimizers and callbacks, without its viewer and writers."""
    trainer = Uni3DTrainer(cfg)
    trainer.setup_without_viewer()
    return trainer


def ns_step(trainer, step):
    """nerfstudio's training iteration, as its Trainer.train runs it: train_iteration, then the callbacks."""
    _, losses, _ = trainer.train_iteration(step)
    for cb in trainer.callbacks:
        cb.run_callback(step)
    return {k: float(v) for k, v in losses.items()}


@pytest.mark.parametrize("method", ["sds", "vsd", "uni-instruct"])
def test_steps_match_the_uni3d_trainer(tiny_shapes_dir, method, tmp_path, monkeypatch):
    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(method, tiny_shapes_dir)
    trainer = setup(cfg)
    pipe, m = trainer.pipeline, cfg.pipeline.model
    scene = NeRFScene(m.nerf, seed=0)
    scene.load_state_dict(pipe.model.scene.state_dict())
    reference = Trainer(TrainConfig(views=1, resolution=16, seed=0), m.guidance, m.fake, scene,
                        load_teacher(str(tiny_shapes_dir)), m.prompt)
    if reference.fake is not None:  # the same LoRA initialisation on both sides
        reference.fake.load_adapter_state(pipe.model.uni3d().fake.adapter_state())
    for step in range(3):
        got, want = ns_step(trainer, step), reference.train_step(step)
        assert set(got) == {k for k in want if k.startswith("loss_")}
        for k, v in got.items():
            assert v == pytest.approx(want[k], rel=1e-3, abs=1e-6), (step, k)


def _noting_the_thread(fn, names):
    def noted(*args):
        names.append(threading.current_thread().name)
        return fn(*args)
    return noted


@pytest.mark.parametrize("method", ["vsd", "uni-instruct"])
def test_fake_score_gradient_beside_the_backward_is_the_step_in_order(tiny_shapes_dir, method, tmp_path, monkeypatch,
                                                                      two_threads, in_order_thread):
    """With two threads the fake score's gradient is computed on a second thread during nerfstudio's backward; the
    optimizers wait for it, and the step is the one computed one part after the other."""
    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path / "cache"))
    runs = {}
    for mode in ("thread", "in-order"):
        torch.manual_seed(0)
        trainer = setup(tiny_config(method, tiny_shapes_dir))
        u = trainer.pipeline.model.uni3d()
        threads = []
        u.fake.loss = _noting_the_thread(u.fake.loss, threads)
        if mode == "in-order":
            u.second_thread = lambda: in_order_thread
        logs = [ns_step(trainer, step) for step in range(3)]
        assert all(("uni3d-fake" in name) == (mode == "thread") for name in threads) and len(threads) == 3
        assert {"loss_fake"} <= set(logs[0]) and torch.get_num_threads() == 2  # logged; the threads put back
        params = [p.detach().clone() for group in trainer.pipeline.get_param_groups().values() for p in group]
        runs[mode] = logs, params
    (la, pa), (lb, pb) = runs["thread"], runs["in-order"]
    assert la == lb
    assert all(torch.equal(a, b) for a, b in zip(pa, pb))


def test_an_error_on_the_second_thread_reaches_the_training_loop(tiny_shapes_dir, two_threads):
    trainer = setup(tiny_config("vsd", tiny_shapes_dir))

    def broken(*args):
        raise RuntimeError("fake score broke")

    trainer.pipeline.model.uni3d().fake.loss = broken
    with pytest.raises(RuntimeError, match="fake score broke"):
        trainer.train_iteration(0)
    assert torch.get_num_threads() == 2


def test_teacher_stays_out_and_fake_score_is_its_own_group(tiny_shapes_dir):
    cfg = tiny_config("vsd", tiny_shapes_dir)
    trainer = setup(cfg)
    pipe, opt = trainer.pipeline, trainer.optimizers
    state = pipe.state_dict()
    assert not any("teacher" in k or ("unet" in k and "lora" not in k) for k in state)
    assert {k.split(".")[2] for k in state if k.startswith("_model.fake_score.")} == {"lora", "camera_embedding", "ratio_head"}
    assert set(opt.optimizers) == {"grids", "mlp", "fake_score"}
    fake = pipe.model.uni3d().fake
    assert {id(p) for p in opt.parameters["fake_score"]} == {id(p) for p in fake.trainable_parameters()}
    assert isinstance(opt.optimizers["fake_score"], torch.optim.AdamW)
    model_params = {id(p) for p in pipe.model.parameters()}
    assert not model_params & {id(p) for p in fake.teacher.parameters()}
    teacher_params = [p for p in fake.teacher.parameters() if not any(p is q for q in fake.lora_parameters())]
    assert teacher_params and not any(p.requires_grad for p in teacher_params)


def test_sds_has_no_fake_score(tiny_shapes_dir):
    trainer = setup(tiny_config("sds", tiny_shapes_dir))
    pipe, opt = trainer.pipeline, trainer.optimizers
    assert set(opt.optimizers) == {"grids", "mlp"}
    assert not any("fake_score" in k for k in pipe.state_dict())


def test_state_dict_round_trip_restores_the_fake_score_without_loading_the_teacher(tiny_shapes_dir):
    cfg = tiny_config("vsd", tiny_shapes_dir)
    trainer = setup(cfg)
    pipe = trainer.pipeline
    ns_step(trainer, 0)
    saved = copy.deepcopy(pipe.state_dict())
    fresh = cfg.pipeline.setup(device="cpu", test_mode="test")
    fresh.load_pipeline(saved, 0)
    assert fresh.model.outside.trainer is None  # viewing a checkpoint never loads the teacher
    for k, v in pipe.model.scene.state_dict().items():
        assert torch.equal(fresh.model.scene.state_dict()[k], v)
    restored = fresh.model.uni3d().fake.adapter_state()
    for part, tensors in pipe.model.uni3d().fake.adapter_state().items():
        for k, v in tensors.items():
            assert torch.equal(restored[part][k], v), (part, k)


def test_viewer_rays_render_what_the_scene_renders(tiny_shapes_dir):
    pipe = setup(tiny_config("sds", tiny_shapes_dir)).pipeline
    model = pipe.model.eval()
    cams = pipe.datamanager.sampler.turntable(2, elevation=20.0)
    with torch.no_grad():
        want = model.scene.render(cams, 12)
        for i in range(2):
            got = model.get_outputs_for_camera(to_nerfstudio(cams[i], 12))
            assert got["rgb"].shape == (12, 12, 3)
            assert torch.allclose(got["rgb"], want.rgb[i].permute(1, 2, 0), atol=1e-4)
            assert torch.allclose(got["accumulation"], want.alpha[i].permute(1, 2, 0), atol=1e-4)


def test_an_arbitrary_viewer_camera_renders(tiny_shapes_dir):
    from nerfstudio.cameras.cameras import Cameras

    pipe = setup(tiny_config("sds", tiny_shapes_dir)).pipeline
    c2w = torch.tensor([[1.0, 0, 0, 0.3], [0, 1, 0, -0.2], [0, 0, 1, 3.0]])  # not an orbit camera
    out = pipe.model.eval().get_outputs_for_camera(Cameras(camera_to_worlds=c2w, fx=20.0, fy=20.0, cx=10.0, cy=8.0))
    assert out["rgb"].shape == (16, 20, 3) and 0 <= out["rgb"].min() and out["rgb"].max() <= 1
    assert (out["depth"] > 0).all()


@pytest.mark.parametrize("method,preset", [
    ("sds", "sds.yaml"), ("vsd", "vsd.yaml"), ("uni-instruct", "uni-instruct-fkl.yaml"),
    ("uni-instruct-rkl", "uni-instruct-rkl.yaml"), ("uni-instruct-jeffreys", "uni-instruct-jeffreys.yaml"),
    ("uni-instruct-js", "uni-instruct-js.yaml"),
])
def test_methods_train_with_their_presets(method, preset):
    config = trainer_config(method)
    assert config.method_name == f"uni3d-{method}" and method in PRESETS
    want = load_preset(CONFIGS / preset, GenerateConfig())
    model = config.pipeline.model
    assert (model.guidance, model.nerf, model.fake) == (want.guidance, want.nerf, want.fake)
    assert config.max_num_iterations == want.train.steps and config.pipeline.datamanager.resolution == want.train.resolution
    assert (config.pipeline.model.guidance.di is False) == (method == "uni-instruct-js")  # JS's preset drops DI
