#!/usr/bin/env bash
# Regenerates the committed seed corpora (fuzz/corpus/<target>/seed-*): tiny audio files in
# every container/codec the component decodes (python3 for WAV, ffmpeg for the rest; ffmpeg
# variants are skipped when it is missing) and a few HTTP requests in the multipart target's
# input format (`[GET ]<path?query>\n<content-type>\n<body>`, see src/fuzzing.rs).
set -euo pipefail
cd "$(dirname "$0")"
A=corpus/audio M=corpus/multipart
mkdir -p "$A" "$M"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

python3 - "$A" "$tmp" <<'PY'
import math, struct, sys
out, tmp = sys.argv[1], sys.argv[2]
def wav(path, rate, ch, frames, fmt, bits, extensible=False):
    data = bytearray()
    for i in range(frames):
        for c in range(ch):
            x = 0.5 * math.sin(2 * math.pi * 440 * (c + 1) * i / rate)
            if fmt == 3: data += struct.pack('<f' if bits == 32 else '<d', x)
            elif bits == 8: data += struct.pack('<B', int(128 + 127 * x))
            elif bits == 16: data += struct.pack('<h', int(32767 * x))
            elif bits == 24: data += int(8388607 * x).to_bytes(3, 'little', signed=True)
            else: data += struct.pack('<i', int(2147483647 * x))
    align = ch * bits // 8
    if extensible:
        guid = struct.pack('<H', fmt) + b'\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71'
        fmt_chunk = struct.pack('<HHIIHHHHI', 0xFFFE, ch, rate, rate * align, align, bits, 22, bits, (1 << ch) - 1) + guid
    else:
        fmt_chunk = struct.pack('<HHIIHH', fmt, ch, rate, rate * align, align, bits)
    body = b'WAVE' + b'fmt ' + struct.pack('<I', len(fmt_chunk)) + fmt_chunk + b'data' + struct.pack('<I', len(data)) + bytes(data)
    open(path, 'wb').write(b'RIFF' + struct.pack('<I', len(body)) + body)
wav(f'{out}/seed-s16-8k-mono.wav', 8000, 1, 800, 1, 16)
wav(f'{out}/seed-u8-22k-stereo.wav', 22050, 2, 1100, 1, 8)
wav(f'{out}/seed-f32-44k-mono.wav', 44100, 1, 1000, 3, 32)
wav(f'{out}/seed-f64-16k-mono.wav', 16000, 1, 400, 3, 64)
wav(f'{out}/seed-s24-48k-6ch-ext.wav', 48000, 6, 240, 1, 24, extensible=True)
wav(f'{out}/seed-s32-96k-stereo.wav', 96000, 2, 480, 1, 32)
wav(f'{tmp}/src.wav', 16000, 1, 1600, 1, 16)
wav(f'{tmp}/src-stereo.wav', 44100, 2, 4410, 1, 16)
PY

if command -v ffmpeg >/dev/null; then
  ff() { ffmpeg -hide_banner -loglevel error -y -i "$1" "${@:3}" "$A/$2"; }
  ff "$tmp/src.wav" seed-alaw.wav -c:a pcm_alaw -ar 8000
  ff "$tmp/src.wav" seed-mulaw.wav -c:a pcm_mulaw -ar 8000
  ff "$tmp/src.wav" seed-ima-adpcm.wav -c:a adpcm_ima_wav
  ff "$tmp/src.wav" seed-ms-adpcm.wav -c:a adpcm_ms
  ff "$tmp/src.wav" seed-16k.flac -c:a flac
  ff "$tmp/src-stereo.wav" seed-44k-stereo.flac -c:a flac -compression_level 12
  ff "$tmp/src.wav" seed-16k.mp3 -c:a libmp3lame -b:a 32k
  ff "$tmp/src-stereo.wav" seed-44k-stereo-vbr.mp3 -c:a libmp3lame -q:a 9
  ff "$tmp/src.wav" seed-16k.ogg -c:a libvorbis -q:a 0
  ff "$tmp/src.wav" seed-aac.m4a -c:a aac -b:a 24k
  ff "$tmp/src.wav" seed-aac-faststart.m4a -c:a aac -b:a 24k -movflags +faststart
  ff "$tmp/src.wav" seed-alac.m4a -c:a alac
  ff "$tmp/src.wav" seed-adts.aac -c:a aac -b:a 24k -f adts
  ff "$tmp/src.wav" seed-16k.opus -c:a libopus -b:a 16k
  ff "$tmp/src-stereo.wav" seed-44k-stereo.opus -c:a libopus -b:a 32k
  ff "$tmp/src.wav" seed-opus.webm -c:a libopus -b:a 16k
  ff "$tmp/src.wav" seed-vorbis.mkv -c:a libvorbis -q:a 0
  ff "$tmp/src-stereo.wav" seed-flac.mka -c:a flac
  ff "$tmp/src.wav" seed-s16be.aiff -c:a pcm_s16be
  ff "$tmp/src.wav" seed-s16le.caf -c:a pcm_s16le
  ff "$tmp/src-stereo.wav" seed-mp2.mp2 -c:a mp2 -b:a 64k
  # Chrome MediaRecorder's live layout (unknown-size Segment and Clusters, no Cues): the head
  # of the recording `make fixtures` makes, when it is there.
  rec=../tests/fixtures/gen/e2e/jfk_mediarecorder.webm
  [ -f "$rec" ] && head -c 12000 "$rec" > "$A/seed-mediarecorder-head.webm"
fi

python3 - "$M" <<'PY'
import sys
out = sys.argv[1]
def form(boundary, parts):
    b = b''
    for headers, data in parts:
        b += b'--' + boundary + b'\r\n' + b''.join(h + b'\r\n' for h in headers) + b'\r\n' + data + b'\r\n'
    return b + b'--' + boundary + b'--\r\n'
def field(name, value): return ([b'Content-Disposition: form-data; name="' + name + b'"'], value)
def file(name, fname, ctype, data):
    return ([b'Content-Disposition: form-data; name="' + name + b'"; filename="' + fname + b'"', b'Content-Type: ' + ctype], data)
wav = b'RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80>\x00\x00\x00}\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00'
def req(name, line, ctype, body): open(f'{out}/seed-{name}', 'wb').write(line + b'\n' + ctype + b'\n' + body)
B = b'------------------------d74496d66958873e'
req('root-route', b'/?language=de', b'multipart/form-data; boundary=' + B,
    form(B, [file(b'file', b'jfk.wav', b'audio/x-wav', wav), field(b'timestamps', b'true'), field(b'beam_size', b'1'),
             file(b'other', b'en.mp3', b'audio/mpeg', b'ID3\x04\x00\x00')]))
W = b'----WebKitFormBoundary7MA4YWxkTrZu0gW'
req('openai-transcriptions', b'/v1/audio/transcriptions?timestamp_granularities[]=word&stream=false', b'multipart/form-data; boundary=' + W,
    form(W, [file(b'file', b'clip.flac', b'audio/flac', b'fLaC\x00\x00\x00\x22'), field(b'model', b'whisper-1'),
             field(b'response_format', b'verbose_json'), field(b'timestamp_granularities[]', b'segment'),
             field(b'temperature', b'0.2'), field(b'patience', b'2'), field(b'prompt', 'Grüße, Zoë'.encode()),
             field(b'without_timestamps', b'no')]))
Q = b'a b=c'
req('openai-translations', b'/v1/audio/translations/', b'Multipart/Form-Data; charset=utf-8; boundary="' + Q + b'"',
    form(Q, [([b'Content-Disposition: form-data; name="file"; filename*=UTF-8\'\'r%C3%A9sum%C3%A9.ogg', b'Content-Type: audio/ogg; codecs=vorbis'], b'OggS\x00\x02'),
             field(b'language', b'German'), field(b'task', b'translate'), field(b'stream', b'true'), field(b'response_format', b'srt')]))
req('raw-body', b'/?language=English&prompt=hello%20world+again&beam_size=16', b'audio/wav', wav)
req('too-many-files', b'/', b'multipart/form-data; boundary=x',
    form(b'x', [file(b'f%d' % i, b'a.wav', b'audio/wav', b'1') for i in range(5)]))
req('bad-utf8-field', b'/v1/audio/transcriptions', b'multipart/form-data; boundary=x',
    form(b'x', [file(b'file', b'a.wav', b'audio/wav', b'1'), field(b'language', b'\xff\xfe')]))
req('get-models', b'GET /v1/models', b'', b'')
req('text-body', b'/', b'text/plain', b'hello')
PY
ls -la "$A" "$M" | awk '{s+=$5} END {print s " bytes"}'
