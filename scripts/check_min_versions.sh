#!/usr/bin/env bash
# Builds a virtual environment with the declared minimum versions of TensorFlow and Keras and runs
# the test suite there (the floor declared in setup.cfg and keras_adv/_compat.py).
#
#   scripts/check_min_versions.sh [TF_VERSION] [KERAS_VERSION] [pytest args...]
#   defaults: tensorflow-cpu 2.16.1, keras 3.8.0, the default suite (-m "not slow").
#   VENV=/work/venvs/floor (override with VENV=...). Results: docs/compatibility.md.
set -euo pipefail
cd "$(dirname "$0")/.."
TF_VERSION="${1:-2.16.1}"
KERAS_VERSION="${2:-3.8.0}"
shift $(( $# > 2 ? 2 : $# )) || true
VENV="${VENV:-/work/venvs/floor}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
"$VENV/bin/pip" install -q "tensorflow-cpu==$TF_VERSION" "keras==$KERAS_VERSION" \
  "tensorflow-datasets>=4.9" "scikit-learn>=1.0" "matplotlib>=3.5" "pytest>=7" hypothesis \
  nbclient nbformat ipykernel
"$VENV/bin/pip" install -q --no-deps -e .
"$VENV/bin/python" -c "import tensorflow as tf, keras; print('tensorflow', tf.__version__, 'keras', keras.__version__)"
if [ $# -eq 0 ]; then set -- -q -m "not slow"; fi
PYTHONPATH="$PWD" "$VENV/bin/python" -m pytest "$@"
