"""The nerfstudio model trains the uni3d scene with uni3d's own guidance, step for step."""

import copy
from pathlib import Path

import pytest
import torch

pytest.importorskip("nerfstudio.plugins")  # not just tests/nerfstudio as a namespace package

from nerfstudio.engine.callbacks import TrainingCallbackAttributes  # noqa: E402
from nerfstudio.engine.optimizers import Optimizers  # noqa: E402

from uni3d.config import GenerateConfig, load_preset  # noqa: E402
from uni3d.nerfstudio.cameras import to_nerfstudio  # noqa: E402
from uni3d.nerfstudio.methods import PRESETS, trainer_config  # noqa: E402
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
    pipe = cfg.pipeline.setup(device="cpu", test_mode="val")
    opt = Optimizers(copy.deepcopy(cfg.optimizers), pipe.get_param_groups())
    attrs = TrainingCallbackAttributes(optimizers=opt, grad_scaler=None, pipeline=pipe, trainer=None)
    return pipe, opt, pipe.get_training_callbacks(attrs)


def ns_step(pipe, opt, callbacks, step):
    """What nerfstudio's Trainer.train_iteration does, without its writers."""
    opt.zero_grad_all()
    _, losses, metrics = pipe.get_train_loss_dict(step)
    sum(losses.values()).backward()
    opt.optimizer_step_all()
    for cb in callbacks:
        cb.run_callback(step)
    return {k: float(v) for k, v in losses.items()}


@pytest.mark.parametrize("method", ["sds", "vsd", "uni-instruct"])
def test_steps_match_the_uni3d_trainer(tiny_shapes_dir, method, tmp_path, monkeypatch):
    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(method, tiny_shapes_dir)
    pipe, opt, callbacks = setup(cfg)
    m = cfg.pipeline.model
    scene = NeRFScene(m.nerf, seed=0)
    scene.load_state_dict(pipe.model.scene.state_dict())
    reference = Trainer(TrainConfig(views=1, resolution=16, seed=0), m.guidance, m.fake, scene,
                        load_teacher(str(tiny_shapes_dir)), m.prompt)
    if reference.fake is not None:  # the same LoRA initialisation on both sides
        reference.fake.load_adapter_state(pipe.model.uni3d().fake.adapter_state())
    for step in range(3):
        got, want = ns_step(pipe, opt, callbacks, step), reference.train_step(step)
        assert set(got) == {k for k in want if k.startswith("loss_")}
        for k, v in got.items():
            assert v == pytest.approx(want[k], rel=1e-3, abs=1e-6), (step, k)


def test_teacher_stays_out_and_fake_score_is_its_own_group(tiny_shapes_dir):
    cfg = tiny_config("vsd", tiny_shapes_dir)
    pipe, opt, _ = setup(cfg)
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
    pipe, opt, _ = setup(tiny_config("sds", tiny_shapes_dir))
    assert set(opt.optimizers) == {"grids", "mlp"}
    assert not any("fake_score" in k for k in pipe.state_dict())


def test_state_dict_round_trip_restores_the_fake_score_without_loading_the_teacher(tiny_shapes_dir):
    cfg = tiny_config("vsd", tiny_shapes_dir)
    pipe, opt, callbacks = setup(cfg)
    ns_step(pipe, opt, callbacks, 0)
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
    pipe, _, _ = setup(tiny_config("sds", tiny_shapes_dir))
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

    pipe, _, _ = setup(tiny_config("sds", tiny_shapes_dir))
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
