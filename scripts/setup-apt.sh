#!/usr/bin/env bash
# Installs the Debian packages the test fixtures need: sox (resampling), espeak-ng (synthetic
# speech in several languages), alsa-utils (its /usr/share/sounds/alsa/*.wav are real speech),
# ffmpeg (mp3/m4a/ogg/opus/webm/... variants), time (/usr/bin/time -v for peak-memory
# measurements), curl (the README's examples are run by a test) and chromium (headless, with a
# fake microphone fed by jfk.wav, records gen/e2e/jfk_mediarecorder.webm: a real browser
# MediaRecorder file, see tests/fixtures/mediarecorder.py), chromium-driver (the page's browser
# tests drive Chromium through it with selenium, tests/python/test_page.py), and more real voices
# for the diarization tests (tests/fixtures/make_speaker_fixtures.sh): asterisk-core-sounds-{en,fr}-wav
# (Allison Smith, June Wallack; CC-BY-SA-3.0) and codec2-examples (radio amateurs; LGPL-2.1).
# Idempotent: `apt-get update` and `apt-get install` run only when something is missing.
set -euo pipefail
PKGS=(sox espeak-ng alsa-utils ffmpeg time curl chromium chromium-driver asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav codec2-examples)
# `setup-apt.sh PKG...` installs the packages named instead (e.g. haproxy for `make scale-test`).
if [ $# -gt 0 ]; then PKGS=("$@"); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "apt: ${PKGS[*]} already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "apt: installing ${missing[*]}"
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" >/dev/null
echo "apt: ready"
