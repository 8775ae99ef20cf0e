#!/usr/bin/env bash
# The audio stage alone inside the sandbox (examples/decode.rs on stock `wasmtime run`): decode
# speed (× real time) and peak linear memory per format, including a 1-hour Ogg/Opus file.
# Usage: decode.sh WASMTIME DECODE.wasm FIXTURES_DIR   (run by `make bench-decode`)
set -euo pipefail
wasmtime=$1 decode=$2 gen=$3
long=$gen/bench/jfk_1h.opus
mkdir -p "$gen/bench"
# 1 hour of jfk (looped) as 24 kb/s Ogg/Opus, as a long voice memo would be.
[ -f "$long" ] || ffmpeg -hide_banner -loglevel error -nostdin -y -stream_loop -1 -i "$gen/jfk.wav" \
  -t 3600 -c:a libopus -b:a 24k "$long"
printf '%-32s %s\n' file result
for f in jfk.wav jfk.mp3 jfk.ogg jfk.m4a e2e/jfk.opus e2e/jfk_stereo.opus e2e/jfk.webm \
         e2e/jfk_mediarecorder.webm bench/jfk_1h.opus; do
  # The first run compiles the module (wasmtime caches it); time the second.
  "$wasmtime" run -S cli -S http -S nn "$decode" < "$gen/$f" >/dev/null
  printf '%-32s %s\n' "$f" "$("$wasmtime" run -S cli -S http -S nn "$decode" < "$gen/$f")"
done
