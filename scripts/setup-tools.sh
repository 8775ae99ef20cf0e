#!/usr/bin/env bash
# Installs the stock WebAssembly tools the portable build and its tests use, from crates.io,
# pinned and --locked, into a cache outside the clone ($WHISPER_CACHE/tools, shared by every
# checkout): wasmtime-cli (stock `wasmtime serve`, `wasmtime wizer`), wac-cli (`wac plug`) and
# wasm-tools (imports/exports, `component targets`). Idempotent: each tool is installed only
# when its pinned version is not already there.
set -euo pipefail
CACHE=${WHISPER_CACHE:-$HOME/.cache/whisper-edge}
ROOT="$CACHE/tools"
# name version binary extra-flags
TOOLS=(
  "wasmtime-cli 48.0.8 wasmtime"
  "wac-cli 0.12.0 wac --no-default-features"
  "wasm-tools 1.243.0 wasm-tools"
)
only=${1:-}
for t in "${TOOLS[@]}"; do
  read -r name version bin flags <<<"$t"
  [ -n "$only" ] && [ "$only" != "$bin" ] && continue
  stamp="$ROOT/.$name-$version"
  if [ -f "$stamp" ] && [ -x "$ROOT/bin/$bin" ]; then continue; fi
  echo "tools: installing $name $version into $ROOT (a few minutes the first time)"
  # Its own target dir: a tool's --locked dependency versions differ from the workspace's.
  CARGO_TARGET_DIR="$CACHE/tools-target" cargo install -q --locked --root "$ROOT" \
    "$name" --version "=$version" $flags
  touch "$stamp"
done
echo "tools: ready in $ROOT/bin"
