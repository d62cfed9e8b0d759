#!/usr/bin/env bash
# Install uni3d with its test dependencies into .venv (pinned CPU torch first) and run lint + tests.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
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
