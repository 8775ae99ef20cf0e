#!/usr/bin/env bash
# Builds the self-contained component for stock hosts, for one model:
#   1. pre-initialises the pure-wasm wasi:nn provider with the model's graphs (`wasmtime wizer`
#      reads them as a tar stream on the provider's stdin, then snapshots its memory);
#   2. plugs it into the very component our host serves (`wac plug`);
#   3. checks the result: valid, and importing no wasi:nn and no wasi:filesystem.
# Usage: compose.sh MODEL APP.wasm PROVIDER.wasm MODELS_DIR OUT_DIR   (tools from $TOOLS_BIN)
# Output: OUT_DIR/whisper-edge-MODEL.wasm (and OUT_DIR/nn-MODEL.wasm, the provider alone).
# Redone only when an input is newer than the output.
set -euo pipefail
model=$1 app=$2 provider=$3 models=$4 out=$5
bin=${TOOLS_BIN:?set TOOLS_BIN to the folder with wasmtime, wac and wasm-tools}
# The decoder's cross K/V batch `Ba` is 1 from the component (one audio, broadcast over beams);
# tract's analysis needs it fixed to split the query per audio (models/README.md).
PINS=${PINS:-Ba=1}
plug="$out/nn-$model.wasm"
edge="$out/whisper-edge-$model.wasm"
graphs=("$models/$model"/*.onnx)
[ -e "${graphs[0]}" ] || { echo "compose: no graphs in $models/$model: make models MODELS=$model" >&2; exit 1; }
mkdir -p "$out"

newer() { local f; for f in "$@"; do [ "$f" -nt "$edge" ] && return 0; done; return 1; }
if [ -f "$edge" ] && ! newer "$app" "$provider" "${graphs[@]}" "$0"; then
  echo "compose: $edge is up to date"
  exit 0
fi

start=$(date +%s%N)
# Only the model's .onnx files, named <model>/<graph>.onnx as the host registers them. The
# snapshot reads the whole linear memory through one call: hostcall-fuel lifts its 128 MiB cap.
( cd "$models" && tar -cf - "${graphs[@]/#$models\//}" ) |
  "$bin/wasmtime" wizer -S cli -S hostcall-fuel=8589934592 --keep-init-func --env "WASI_NN_TRACT_PINS=$PINS" -o "$plug.tmp" "$provider"
"$bin/wasm-tools" validate --features all "$plug.tmp"
mv "$plug.tmp" "$plug"
mid=$(date +%s%N)
"$bin/wac" plug "$app" --plug "$plug" -o "$edge.tmp"
"$bin/wasm-tools" validate --features all "$edge.tmp"
imports=$("$bin/wasm-tools" component wit "$edge.tmp" | grep -E '^\s*import ' || true)
if grep -qE 'wasi:nn|wasi:filesystem' <<<"$imports"; then
  echo "compose: $edge.tmp still imports wasi:nn or wasi:filesystem:" >&2
  echo "$imports" >&2
  exit 1
fi
mv "$edge.tmp" "$edge"
end=$(date +%s%N)
printf 'compose: %s (%s MB; pre-initialise %d ms, plug %d ms)\n' "$edge" \
  "$(( $(stat -c %s "$edge") / 1000000 ))" "$(( (mid - start) / 1000000 ))" "$(( (end - mid) / 1000000 ))"
