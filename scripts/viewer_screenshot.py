"""Screenshot of a run in nerfstudio's viewer, taken by headless Chromium (docs/images/viewer.png).

    .venv-ns/bin/python scripts/viewer_screenshot.py runs/a-red-mug-sds-s0 --out docs/images/viewer.png

Starts ``uni3d view RUN_DIR`` and Chromium (Debian's ``chromium``, WebGL through SwiftShader) on 127.0.0.1,
waits until the viewer shows its full-resolution render, saves the page, and stops both by their process
groups. Needs the nerfstudio extra (for ``uni3d view``) and ``websockets`` (nerfstudio's viewer brings it).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def started(cmd: list[str], log: Path, env: dict | None = None):
    """Run ``cmd`` in its own session; stop its process group (id = its PID) on exit."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        try:
            yield proc
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
                    time.sleep(0.5)


def wait_for(predicate, timeout: float, what: str, every: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/images/viewer.png"))
    ap.add_argument("--size", default="1280,800", help="window size W,H")
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for the full-resolution render")
    args = ap.parse_args()
    from websockets.sync.client import connect

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Debian's chromium: apt-get install -y chromium")
    uni3d = Path(sys.executable).parent / "uni3d"
    view_port, debug_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="uni3d-shot-"))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with started([str(uni3d), "view", str(args.run_dir), "--port", str(view_port)], work / "view.log", env) as view:
        wait_for(lambda: view.poll() is not None or f":{view_port}" in (work / "view.log").read_text(), 300, "uni3d view")
        if view.poll() is not None:
            sys.exit((work / "view.log").read_text()[-2000:])
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
               "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={work / 'profile'}",
               f"--window-size={args.size}", "--remote-debugging-address=127.0.0.1",
               f"--remote-debugging-port={debug_port}", "about:blank"]
        with started(cmd, work / "chromium.log"):
            def page_ws():
                with contextlib.suppress(OSError, ValueError):
                    pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list", timeout=2))
                    return next((p["webSocketDebuggerUrl"] for p in pages if p.get("type") == "page"), None)
            with connect(wait_for(page_ws, 60, "chromium"), max_size=None) as ws:
                ids = iter(range(1, 1 << 30))

                def call(method, **params):
                    i = next(ids)
                    ws.send(json.dumps({"id": i, "method": method, "params": params}))
                    while True:
                        msg = json.loads(ws.recv())
                        if msg.get("id") == i:
                            return msg.get("result", {})

                call("Page.navigate", url=f"http://127.0.0.1:{view_port}/")

                def full_resolution():  # the viewer's stats line: "Resolution: WxHpx", max side = Max res (512)
                    text = call("Runtime.evaluate", expression="document.body.innerText").get("result", {}).get("value", "")
                    m = re.search(r"Resolution: (\d+)x(\d+)px", text or "")
                    return m and max(int(m[1]), int(m[2])) >= 500
                wait_for(full_resolution, args.timeout, "the full-resolution render", every=1.0)
                time.sleep(3)  # the image travels after the stats line
                png = base64.b64decode(call("Page.captureScreenshot", format="png")["data"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png)
    print(f"wrote {args.out} ({len(png)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
