#!/usr/bin/env bash
# Install uni3d with its test dependencies into .venv (pinned CPU torch first) and run lint + tests.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# open3d (the TSDF export's volume) needs Debian's libusb-1.0-0; without it open3d's tests skip
if ! ldconfig -p 2>/dev/null | grep "libusb-1.0.so.0" >/dev/null && command -v apt-get >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo "sudo -n")
  { $SUDO apt-get install -y -q libusb-1.0-0 || { $SUDO apt-get update -q && $SUDO apt-get install -y -q libusb-1.0-0; }; } \
    >/dev/null 2>&1 || echo "could not install libusb-1.0-0 (needs root): open3d's TSDF tests will skip"
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
.venv/bin/python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"pip replaced the pinned torch: {torch.__version__}"
print(f"torch {torch.__version__} kept")
PY
.venv/bin/python -m pip check
.venv/bin/ruff check uni3d tests scripts
HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q "$@"
