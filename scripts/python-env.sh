#!/usr/bin/env bash
# Creates .venv with the packages of models/recipe/requirements.txt (training and the
# ONNX Runtime reference benchmark only: the product never runs Python) and prints its python.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv >&2
fi
if ! .venv/bin/python -c "import onnx, onnxruntime, numpy, PIL" 2>/dev/null; then
  .venv/bin/pip install -q -r models/recipe/requirements.txt >&2
fi
echo "$PWD/.venv/bin/python"
