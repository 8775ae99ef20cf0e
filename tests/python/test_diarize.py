"""Diarization through the official OpenAI Python SDK (unchanged except base_url): diarized_json
parses into the SDK's own TranscriptionDiarized type, known speakers go as the SDK sends them
(`known_speaker_names[]`, `known_speaker_references[]` data URLs), the stream's segment events carry
the speaker, and the SDK surfaces our 400s as BadRequestError. Real speakers
(tests/fixtures/make_speaker_fixtures.sh)."""
import base64

import openai
import pytest
import webvtt
from openai.types.audio import TranscriptionDiarized

from conftest import FIXTURES

ABAB = FIXTURES / "gen/diar/abab.wav"


@pytest.fixture(scope="module")
def client(host):
    return openai.OpenAI(base_url=host + "/v1", api_key="unused", max_retries=0, timeout=600)


def order(speakers):
    out = []
    for s in speakers:
        if not out or out[-1] != s:
            out.append(s)
    return out


def data_url(path):
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def test_diarized_json_parses_into_the_sdk_type(client):
    r = client.audio.transcriptions.create(model="whisper-1", file=open(ABAB, "rb"), response_format="diarized_json")
    assert isinstance(r, TranscriptionDiarized), type(r)
    assert r.task == "transcribe" and abs(r.duration - 36.42) < 0.05
    assert all(s.type == "transcript.text.segment" and s.start < s.end for s in r.segments)
    assert order(s.speaker for s in r.segments) == ["A", "B", "A", "B"]
    assert "ask not what your country can do for you" in r.text.lower()


def test_known_speakers_as_the_sdk_sends_them(client):
    r = client.audio.transcriptions.create(
        model="whisper-1", file=open(ABAB, "rb"), response_format="diarized_json",
        known_speaker_names=["kennedy", "allison"],
        known_speaker_references=[data_url(FIXTURES / "gen/speakers/jfk_ref.wav"),
                                  data_url(FIXTURES / "gen/speakers/allison_ref.wav")])
    assert order(s.speaker for s in r.segments) == ["kennedy", "allison", "kennedy", "allison"]


def test_stream_segment_events_carry_the_speaker(client):
    stream = client.audio.transcriptions.create(model="whisper-1", file=open(ABAB, "rb"),
                                                response_format="diarized_json", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and "transcript.text.delta" in kinds
    segments = [e for e in events if e.type == "transcript.text.segment"]
    assert order(e.speaker for e in segments) == ["A", "B", "A", "B"]
    assert kinds.index("transcript.text.segment") > max(i for i, k in enumerate(kinds) if k == "transcript.text.delta")


def test_vtt_voices_parse(client, tmp_path):
    r = client.audio.transcriptions.create(model="whisper-1", file=open(ABAB, "rb"), response_format="vtt",
                                           extra_body={"diarize": "true"})
    p = tmp_path / "x.vtt"
    p.write_text(r)
    voices = [c.voice for c in webvtt.read(str(p))]
    assert order(voices) == ["A", "B", "A", "B"], r


def test_bad_values_are_bad_request_errors(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.transcriptions.create(model="whisper-1", file=open(ABAB, "rb"), response_format="diarized_json",
                                           known_speaker_names=["a", "b"],
                                           known_speaker_references=[data_url(FIXTURES / "gen/speakers/jfk_ref.wav")])
    assert e.value.body["param"] == "known_speaker_names"
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.transcriptions.create(model="whisper-1", file=open(ABAB, "rb"), response_format="diarized_json",
                                           extra_body={"num_speakers": "0"})
    assert e.value.body["param"] == "num_speakers"
