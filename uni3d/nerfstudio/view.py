"""``uni3d view RUN_DIR``: a finished ``uni3d generate`` run in nerfstudio's viewer.

The run is written once as a nerfstudio output (``RUN_DIR/nerfstudio/uni3d-METHOD/config.yml`` and
``nerfstudio_models/step-*.ckpt``, holding the scene and the fake score's adapter, never the teacher), so
``ns-viewer --load-config`` opens it as well; then the viewer starts, bound to 127.0.0.1 unless told otherwise.
Needs the ``nerfstudio`` extra: without it the command says what to install.
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from uni3d.errors import UserError

INSTALL = "pip install 'uni3d[nerfstudio]'"
VISER_SCALE = 10.0
"""nerfstudio's viewer draws its world 10x larger in viser's units (VISER_NERFSTUDIO_SCALE_RATIO)."""


@dataclass
class View:
    """Open a finished uni3d run in nerfstudio's viewer (needs the nerfstudio extra)."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """The run directory written by uni3d generate (a NeRF run)."""
    host: str = "127.0.0.1"
    """Address the viewer binds to (0.0.0.0 to reach it from other machines)."""
    port: int | None = None
    """Port of the viewer (default: the first free one from 7007)."""
    convert_only: bool = False
    """Only write the nerfstudio output and print the ns-viewer command that opens it."""


def nerfstudio_available() -> bool:
    """An installed nerfstudio (a folder named nerfstudio on the path, a namespace package, does not count)."""
    spec = importlib.util.find_spec("nerfstudio")
    return spec is not None and spec.origin is not None


def run_view(args: View) -> None:
    if not nerfstudio_available():
        raise UserError(f"uni3d view needs nerfstudio, which is not installed here: {INSTALL}")
    config_path = convert_run(args.run_dir)
    if args.convert_only:
        print(f"wrote {config_path}; open it with: ns-viewer --load-config {config_path}")
        return
    serve(config_path, args.host, args.port)


def convert_run(run_dir: Path) -> Path:
    """Write a finished uni3d run as a nerfstudio output; returns its config.yml."""
    import torch

    from uni3d.config import load_run_config
    from uni3d.nerfstudio.methods import PRESETS, optimizers, trainer_config

    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoint.pt").is_file():
        raise UserError(f"{run_dir} is not a uni3d run (config.yaml and checkpoint.pt are needed)")
    cfg = load_run_config(run_dir / "config.yaml")
    if cfg.scene != "nerf":
        raise UserError(f"uni3d view shows NeRF runs; {run_dir} is a {cfg.scene} run (export its mesh instead)")
    if cfg.guidance.method not in PRESETS:
        raise UserError(f"unknown method {cfg.guidance.method!r} in {run_dir / 'config.yaml'}")
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)

    config = trainer_config(cfg.guidance.method)
    model, data = config.pipeline.model, config.pipeline.datamanager
    model.prompt, model.teacher, model.seed = cfg.prompt, cfg.teacher, cfg.train.seed
    model.guidance, model.fake, model.nerf = cfg.guidance, cfg.fake, cfg.nerf
    model.regularizer_weights = dict(cfg.train.regularizer_weights)
    data.views, data.resolution, data.seed = cfg.train.views, cfg.train.resolution, cfg.train.seed
    data.elevation_range = tuple(cfg.train.elevation_range)
    config.optimizers = optimizers(cfg.nerf, cfg.fake if cfg.guidance.needs_fake_score else None, cfg.train.lr_scale)
    config.max_num_iterations = cfg.train.steps
    config.output_dir, config.experiment_name, config.timestamp = run_dir, "nerfstudio", ""
    config.machine.device_type = "cpu"
    config.save_config()

    pipeline = {"_model.device_indicator_param": torch.empty(0)}
    pipeline.update({f"_model.scene.{k}": v for k, v in state["scene"].items()})
    for part, tensors in state.get("fake", {}).items():
        pipeline.update({f"_model.fake_score.{part}.{k}": v for k, v in tensors.items()})
    ckpt_dir = config.get_checkpoint_dir()
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for old in ckpt_dir.glob("step-*.ckpt"):
        old.unlink()
    step = max(0, int(state["step"]) - 1)  # nerfstudio counts the index of the last step taken
    torch.save({"step": step, "pipeline": pipeline}, ckpt_dir / f"step-{step:09d}.ckpt")
    return config.get_base_dir() / "config.yml"


def look_at_scene(server, azimuth: float = 30.0, elevation: float = 20.0, radius: float = 2.5) -> None:
    """Start every new client of a viser server looking at the scene from a uni3d orbit view."""
    from uni3d.cameras import Cameras
    from uni3d.nerfstudio.cameras import U2NS

    position = (U2NS @ Cameras.from_angles(azimuth, elevation, radius).positions()[0]) * VISER_SCALE

    @server.on_client_connect
    def _(client) -> None:
        with client.atomic():
            client.camera.up_direction = (0.0, 0.0, 1.0)
            client.camera.position = tuple(float(v) for v in position)
            client.camera.look_at = (0.0, 0.0, 0.0)
            client.camera.fov = math.radians(40.0)


def serve(config_path: Path, host: str, port: int | None) -> None:
    """Load the nerfstudio output and serve it in the viewer until interrupted."""
    import threading

    from nerfstudio.utils import writer
    from nerfstudio.utils.eval_utils import eval_setup
    from nerfstudio.viewer.viewer import Viewer

    config, pipeline, _, step = eval_setup(config_path, test_mode="test")
    config.viewer.websocket_host = host
    config.viewer.websocket_port = port
    base = config.get_base_dir()
    viewer = Viewer(config.viewer, log_filename=base / config.viewer.relative_log_filename, datapath=base,
                    pipeline=pipeline, train_lock=threading.Lock())
    look_at_scene(viewer.viser_server)
    for button in ("pause_train", "resume_train"):  # a finished run has no training to pause
        if hasattr(viewer, button):
            getattr(viewer, button).visible = False
    config.logging.local_writer.enable = False
    writer.setup_local_writer(config.logging, max_iter=config.max_num_iterations, banner_messages=viewer.viewer_info)
    viewer.init_scene(train_dataset=pipeline.datamanager.train_dataset, train_state="completed")
    viewer.update_scene(step=step)
    viewer.update_step(step)
    print(f"viewer at http://{host}:{viewer.viser_server.get_port()} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.viser_server.stop()
