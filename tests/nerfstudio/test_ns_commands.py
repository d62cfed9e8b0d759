"""The commands a person runs: ns-train's method list, a short ns-train run, the live viewer, uni3d view.

Each process starts in its own session and is stopped through its process group (the group id is the
PID of the process started here), so nerfstudio's threads and any worker processes stop with it; the test
then checks that nothing of the group is left.
"""

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

pytest.importorskip("nerfstudio.plugins")  # not just tests/nerfstudio as a namespace package

BIN = Path(sys.executable).parent
TINY = ["--pipeline.datamanager.resolution", "16", "--pipeline.datamanager.views", "1",
        "--pipeline.model.nerf.samples-per-ray", "24"]


@pytest.fixture()
def env(tmp_path):
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "UNI3D_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@contextlib.contextmanager
def started(cmd, env, log: Path):
    """Run ``cmd`` in a new session; on exit stop its whole process group by the child's PID."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                if group_alive(proc.pid):
                    os.killpg(proc.pid, sig)
                    deadline = time.time() + wait
                    while group_alive(proc.pid) and time.time() < deadline:
                        proc.poll()
                        time.sleep(0.2)
            proc.wait(timeout=10)
    assert not group_alive(proc.pid), "a process of the group survived"


def wait_for_viewer(port: int, proc, log: Path, timeout: float = 240) -> None:
    """HTTP 200 on / and a websocket handshake (101) on the same port, bound to 127.0.0.1."""
    deadline = time.time() + timeout
    while True:
        assert proc.poll() is None, f"exited early:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                assert r.status == 200 and b"<html" in r.read().lower()
                break
        except OSError:
            assert time.time() < deadline, f"no viewer on {port}:\n{log.read_text()[-3000:]}"
            time.sleep(1)
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        reply = s.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 101"), reply
    try:
        own = [a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")]
    except OSError:
        own = []
    for addr in own[:1]:  # bound to the loopback address only: this machine's other address is refused
        with pytest.raises(OSError):
            socket.create_connection((addr, port), timeout=2).close()


def test_ns_train_lists_the_methods(env):
    out = subprocess.run([BIN / "ns-train", "--help"], env={**env, "COLUMNS": "200"}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("uni3d-sds", "uni3d-vsd", "uni3d-uni-instruct", "uni3d-uni-instruct-rkl",
                 "uni3d-uni-instruct-jeffreys", "uni3d-uni-instruct-js"):
        assert name in out.stdout


@pytest.mark.parametrize("method", ["sds", "vsd"])
def test_ns_train_runs_on_the_cpu_and_writes_a_checkpoint(tiny_shapes_dir, tmp_path, env, method):
    cmd = [BIN / "ns-train", f"uni3d-{method}", "--prompt", "a red mug", "--max-num-iterations", "3",
           "--output-dir", tmp_path / "out", "--experiment-name", "t", "--timestamp", "now",
           "--machine.device-type", "cpu", "--viewer.websocket-port", str(free_port()),
           "--viewer.quit-on-train-completion", "True", "--pipeline.model.teacher", tiny_shapes_dir, *TINY]
    log = tmp_path / "train.log"
    with started([str(c) for c in cmd], env, log) as proc:
        assert proc.wait(timeout=400) == 0, log.read_text()[-3000:]
    base = tmp_path / "out" / "t" / f"uni3d-{method}" / "now"
    ckpt = torch.load(base / "nerfstudio_models" / "step-000000002.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == 2
    keys = set(ckpt["pipeline"])
    assert "_model.scene.density_grids.0" in keys and not any("unet" in k and "lora" not in k for k in keys)
    assert set(ckpt["optimizers"]) == ({"grids", "mlp", "fake_score"} if method == "vsd" else {"grids", "mlp"})
    assert "prompt: a red mug" in (base / "config.yml").read_text()


def test_ns_train_live_viewer_answers_on_loopback(tiny_shapes_dir, tmp_path, env):
    port = free_port()
    cmd = [BIN / "ns-train", "uni3d-sds", "--start-paused", "True", "--output-dir", tmp_path / "out",
           "--machine.device-type", "cpu", "--viewer.websocket-host", "127.0.0.1",
           "--viewer.websocket-port", str(port), "--pipeline.model.teacher", tiny_shapes_dir, *TINY]
    log = tmp_path / "viewer.log"
    with started([str(c) for c in cmd], env, log) as proc:
        wait_for_viewer(port, proc, log)


@pytest.fixture()
def finished_run(tiny_shapes_dir, tmp_path, monkeypatch):
    from uni3d.cli import main

    monkeypatch.setenv("UNI3D_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["generate", "a red mug", "--teacher", str(tiny_shapes_dir), "--method", "vsd", "--out", str(out),
                 "--steps", "2", "--views", "1", "--resolution", "16", "--export.resolution", "32", "--no-progress",
                 "--nerf.samples-per-ray", "24"]) == 0
    return out


def test_a_finished_run_converts_for_ns_viewer(finished_run, capsys):
    from nerfstudio.utils.eval_utils import eval_setup

    from uni3d.cli import main

    assert main(["view", str(finished_run), "--convert-only"]) == 0
    config_path = finished_run / "nerfstudio" / "uni3d-vsd" / "config.yml"
    assert f"ns-viewer --load-config {config_path}" in capsys.readouterr().out
    _, pipeline, ckpt, step = eval_setup(config_path, test_mode="test")  # what ns-viewer --load-config does
    assert step == 1 and pipeline.model.outside.trainer is None
    state = torch.load(finished_run / "checkpoint.pt", weights_only=False)
    for k, v in state["scene"].items():
        assert torch.equal(pipeline.model.scene.state_dict()[k], v)
    assert pipeline.model.config.prompt == "a red mug"


def test_a_finished_run_opens_in_the_viewer(finished_run, tmp_path, env):
    port = free_port()
    log = tmp_path / "view.log"
    with started([str(BIN / "uni3d"), "view", str(finished_run), "--port", str(port)], env, log) as proc:
        deadline = time.time() + 240
        while f"viewer at http://127.0.0.1:{port}" not in log.read_text():  # printed once the scene is loaded
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        wait_for_viewer(port, proc, log)


def test_view_rejects_what_is_not_a_nerf_run(tmp_path, capsys):
    from uni3d.cli import main

    assert main(["view", str(tmp_path)]) == 2
    assert "is not a uni3d run" in capsys.readouterr().err
