"""Real tiny runs through the local process pool and through Ray tasks on a local Ray cluster."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from uni3d.cli import main
from uni3d.compare.results import read_csv

TINY = ["train.steps=3", "train.views=1", "train.resolution=16", "export.resolution=40", "nerf.samples_per_ray=24"]


def _args(teacher, out, *extra):
    return ["compare", "--methods", "sds", "--prompts", "a red cube", "--teacher", str(teacher), "--out", str(out),
            "--threads", "1", "--no-progress", "--turntables", "1", "--override", *TINY, *extra]


def _check(out):
    (row,) = read_csv(out / "results.csv")
    assert row["status"] == "ok", row["error"]
    run = out / "runs" / "sds" / "a-red-cube" / "s0"
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["steps"] == 3 and evaluation["wall_seconds"] > 0 and evaluation["peak_memory_mb"] > 0
    assert (run / "mesh.glb").is_file() and (run / "turntable.gif").is_file() and (out / "report.html").is_file()


def test_local_pool_runs_each_run_in_a_fresh_process(tiny_shapes_dir, tmp_path):
    out = tmp_path / "cmp"
    assert main(_args(tiny_shapes_dir, out, "--workers", "1")) == 0
    _check(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def ray_head():
    """``ray start --head --block`` on this machine; stopped (by its pid) afterwards."""
    pytest.importorskip("ray")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    proc = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
         "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--object-store-memory=100000000",
         f"--temp-dir={temp}", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        deadline = time.time() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"ray start failed: {proc.stderr.read()[-2000:]}")
            time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)  # --block: the head stops its own processes
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_executor_on_a_local_cluster(tiny_shapes_dir, tmp_path, ray_head):
    out = tmp_path / "cmp"
    assert main(_args(tiny_shapes_dir, out, "--executor", "ray", "--ray-address", ray_head)) == 0
    _check(out)
    assert main(_args(tiny_shapes_dir, out, "--executor", "ray", "--ray-address", ray_head)) == 0  # finished: skipped
