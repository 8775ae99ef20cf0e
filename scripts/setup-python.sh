#!/usr/bin/env bash
# Creates .venv with everything the project needs from PyPI: the model converter
# (numpy, onnx, onnxruntime for int8 quantization), ONNX Runtime's shared library
# (loaded by the host at run time), and the test tools. Idempotent: a stamp file
# records the requirements it was made from.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
REQ=scripts/requirements.txt
STAMP="$VENV/.requirements.stamp"
if [ -f "$STAMP" ] && cmp -s "$REQ" "$STAMP"; then
  echo "python: $VENV is up to date"
  exit 0
fi
echo "python: creating $VENV from $REQ"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --disable-pip-version-check -q --upgrade pip
"$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQ"
cp "$REQ" "$STAMP"
echo "python: ready ($("$VENV/bin/python" -c 'import onnxruntime; print("onnxruntime", onnxruntime.__version__)'))"
