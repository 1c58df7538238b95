#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the harness with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch/torchvision first, pinned (a local wheel cache is used where one exists)
.venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
# an old build/ (pip wheel, python -m build) is never imported; drop it so no stale copy lingers
rm -rf build
# the ray extra: runtime=ray and its tests (tests/scoring/test_ray_engine.py); the test extra includes
# hydra-submitit-launcher (conf/hydra/launcher/slurm*.yaml, tests/test_submitit_local.py)
.venv/bin/python -m pip install -q -e '.[test,ray]'
echo "setup done: $(.venv/bin/python -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__)')"
