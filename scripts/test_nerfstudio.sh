#!/usr/bin/env bash
# The nerfstudio extra in its own environment, .venv-ns (the core .venv stays lean): build it when missing,
# install uni3d[nerfstudio,dev] into it, then run tests/nerfstudio (ns-train methods, a CPU run, the viewer).
#   bash scripts/test_nerfstudio.sh [pytest args]
# Building .venv-ns installs the CUDA build of torch 2.14.1 (~5.5 GB; a fresh build took 220 s here)
# and nerfstudio's dependencies; fpsample is held below 1.0, whose releases ship a cp311
# wheel (1.x compiles from Rust source for many minutes). Later runs reuse the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${UNI3D_NS_VENV:-.venv-ns}
PINS=$(mktemp)
trap 'rm -f "$PINS"' EXIT
printf 'torch==2.14.1\ntorchvision==0.29.1\nfpsample<1\n' > "$PINS"  # keeps pip from moving torch; a wheel for fpsample
if [ ! -x "$VENV/bin/ns-train" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c "$PINS" torch torchvision
  "$VENV/bin/python" -m pip install -q -c "$PINS" nerfstudio==1.1.5
fi
"$VENV/bin/python" -m pip install -q -c "$PINS" -e ".[nerfstudio,dev]"
"$VENV/bin/python" - <<'PY'
import nerfstudio, torch
from importlib.metadata import entry_points, version
assert torch.__version__.startswith("2.14.1"), f"pip replaced the pinned torch: {torch.__version__}"
names = sorted(entry_points(group="nerfstudio.method_configs").names)
print(f"torch {torch.__version__}, nerfstudio {version('nerfstudio')}, methods {', '.join(names)}")
PY
"$VENV/bin/python" -m pip check
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1} HF_HUB_OFFLINE=1 \
  "$VENV/bin/python" -m pytest -q tests/nerfstudio "$@"
