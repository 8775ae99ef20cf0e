"""The official OpenAI Python SDK, unchanged except base_url, against our server."""
import json
import re
import subprocess
import urllib.request

import openai
import pytest
import srt
import webvtt

from conftest import FIXTURES, start_host

JFK = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def words(text):
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


@pytest.fixture(scope="module")
def client(host):
    return openai.OpenAI(base_url=host + "/v1", api_key="unused", max_retries=0, timeout=300)


def jfk():
    return open(FIXTURES / "gen/jfk.wav", "rb")


def test_json_default(client):
    r = client.audio.transcriptions.create(model="whisper-1", file=jfk())
    assert r.text == JFK


def test_text(client):
    r = client.audio.transcriptions.create(model="whisper-1", file=jfk(), response_format="text")
    assert r.strip() == JFK


def test_srt_parses_and_is_ordered(client):
    r = client.audio.transcriptions.create(model="whisper-1", file=jfk(), response_format="srt")
    subs = list(srt.parse(r))
    assert len(subs) >= 1
    assert words(" ".join(s.content for s in subs)) == words(JFK)
    for a, b in zip(subs, subs[1:]):
        assert a.end <= b.start
    assert all(s.start < s.end for s in subs)
    assert subs[-1].end.total_seconds() <= 11.0


def test_vtt_parses_and_is_ordered(client, tmp_path):
    r = client.audio.transcriptions.create(model="whisper-1", file=jfk(), response_format="vtt")
    assert r.startswith("WEBVTT")
    p = tmp_path / "x.vtt"
    p.write_text(r)
    captions = list(webvtt.read(str(p)))
    assert words(" ".join(c.text for c in captions)) == words(JFK)
    times = [(c.start_in_seconds, c.end_in_seconds) for c in captions]
    assert all(a < b for a, b in times)
    assert all(times[i][1] <= times[i + 1][0] for i in range(len(times) - 1))


def test_verbose_json_segments(client):
    r = client.audio.transcriptions.create(model="whisper-1", file=jfk(), response_format="verbose_json")
    assert r.task == "transcribe"
    assert r.language == "english"
    assert abs(r.duration - 11.0) < 0.1
    assert r.text == JFK
    segs = r.segments
    assert segs and segs[0].id == 0
    for s in segs:
        assert 0 <= s.start < s.end <= r.duration
        assert s.tokens and s.avg_logprob < 0 and 0 <= s.no_speech_prob <= 1
        assert s.compression_ratio > 0 and s.temperature == 0.0
    assert words(" ".join(s.text for s in segs)) == words(JFK)


def test_word_and_segment_granularities(client):
    r = client.audio.transcriptions.create(model="whisper-1", file=jfk(), response_format="verbose_json",
                                           timestamp_granularities=["word", "segment"])
    assert r.segments
    ws = r.words
    assert [w.word for w in ws][:4] == ["And", "so,", "my", "fellow"] or words(" ".join(w.word for w in ws)) == words(JFK)
    assert words(" ".join(w.word for w in ws)) == words(JFK)
    for a, b in zip(ws, ws[1:]):
        assert a.start <= a.end <= b.start + 1e-6
    assert ws[-1].end <= r.duration + 1e-6
    # "country" (the last word) is spoken near the end of the clip
    assert ws[-1].start > 8.0


def test_word_only_granularity_has_no_segments(client):
    r = client.audio.transcriptions.create(model="whisper-1", file=jfk(), response_format="verbose_json",
                                           timestamp_granularities=["word"])
    assert r.words and not getattr(r, "segments", None)


@pytest.mark.parametrize("name", ["jfk.webm", "jfk_mediarecorder.webm"])
def test_webm_upload(client, name):
    """WebM/Opus as ffmpeg writes it and as a browser's MediaRecorder does (live layout)."""
    with open(FIXTURES / "gen/e2e" / name, "rb") as f:
        r = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json")
    assert "ask not what your country can do for you" in " ".join(words(r.text)), r.text
    assert r.language == "english"


def test_translation_to_english(client):
    with open(FIXTURES / "gen/espeak/de.wav", "rb") as f:
        r = client.audio.translations.create(model="whisper-1", file=f)
    assert "good morning" in " ".join(words(r.text)), r.text


def test_language_and_prompt(client):
    with open(FIXTURES / "gen/espeak/es.wav", "rb") as f:
        r = client.audio.transcriptions.create(model="base", file=f, language="es", prompt="Buenos días.",
                                               response_format="verbose_json")
    assert r.language == "spanish"
    assert "buenos" in words(r.text)


def test_stream_events(client):
    stream = client.audio.transcriptions.create(model="whisper-1", file=open(FIXTURES / "gen/e2e/long3m.wav", "rb"),
                                                stream=True)
    deltas, done = [], None
    for event in stream:
        if event.type == "transcript.text.delta":
            assert done is None
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done = event.text
    assert len(deltas) >= 10, deltas
    assert done is not None
    assert words("".join(deltas)) == words(done)
    assert "umbrella" in words(done)


def test_models_list(client):
    ids = {m.id for m in client.models.list()}
    assert {"base", "tiny.en", "whisper-1"} <= ids


def test_english_only_model_by_name(client):
    r = client.audio.transcriptions.create(model="tiny.en", file=jfk())
    assert "country" in words(r.text)


def test_errors_in_openai_shape(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.transcriptions.create(model="whisper-1", file=jfk(), response_format="xml")
    assert e.value.body["param"] == "response_format"
    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(model="whisper-1", file=jfk(), language="xx")
    with pytest.raises(openai.NotFoundError):
        client.audio.transcriptions.create(model="large-v9", file=jfk())
    with pytest.raises(openai.APIStatusError) as e:
        client.audio.transcriptions.create(model="whisper-1", file=open(FIXTURES / "gen/e2e/notes.txt", "rb"))
    assert e.value.status_code == 415


def test_api_key_when_configured():
    proc, base = start_host({"WHISPER_API_KEY": "sekret"})
    try:
        good = openai.OpenAI(base_url=base + "/v1", api_key="sekret", max_retries=0)
        assert good.audio.transcriptions.create(model="whisper-1", file=jfk()).text == JFK
        bad = openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.audio.transcriptions.create(model="whisper-1", file=jfk())
        # health stays open for probes
        with urllib.request.urlopen(base + "/health") as r:
            assert r.status == 200
    finally:
        proc.kill()
        proc.wait()


def test_upload_cap_413(host):
    """Over 25 MiB: 413 with a JSON message, answered from the headers without reading the body."""
    import http.client
    conn = http.client.HTTPConnection(host.removeprefix("http://"), timeout=60)
    size = 26 * 1024 * 1024
    conn.putrequest("POST", "/v1/audio/transcriptions")
    conn.putheader("content-type", "audio/wav")
    conn.putheader("content-length", str(size))
    conn.endheaders()
    sent = 0
    try:
        while sent < size:
            conn.send(b"\0" * 65536)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading: expected
    resp = conn.getresponse()
    assert resp.status == 413
    err = json.loads(resp.read())
    assert err["error"]["message"]
