"""The OpenAPI document (src/http/openapi.json) against the spec and against the live server.

- the file is valid OpenAPI 3.1 (openapi-spec-validator), and its examples match their schemas;
- `GET /openapi.json` serves exactly the file;
- real replies of the real host (real component, real models) are documented: every
  (path, method, status, content type) seen here is in the document, JSON bodies and SSE events
  match its schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses), and required headers are sent;
- schemathesis generates requests from the document for the cheap routes and checks the replies.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from conftest import FIXTURES, ROOT, start_host

DOC_PATH = ROOT / "src" / "http" / "openapi.json"
DOC = json.loads(DOC_PATH.read_text())
BASE_URI = "urn:whisper-edge:openapi"
REGISTRY = Registry().with_resource(BASE_URI, DRAFT202012.create_resource(DOC))
JFK = "ask not what your country can do for you"
GEN = FIXTURES / "gen"

# Every (path template, method, status, content type) this file saw, for the summary.
SEEN = set()


def pointer(*parts):
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def validate(instance, ptr):
    """Validates `instance` against the schema at JSON pointer `ptr` of the document."""
    validator = Draft202012Validator({"$ref": BASE_URI + ptr}, registry=REGISTRY)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, f"{ptr}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def resolve(obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = DOC
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj = node
    return obj


def ref_pointer(obj, fallback):
    """The pointer of a (possibly referenced) object, so schemas under it resolve."""
    return obj["$ref"].removeprefix("#").join(["#", ""]) if isinstance(obj, dict) and "$ref" in obj else fallback


def template_of(path):
    """The document's path template for a concrete path, or None (an unknown path)."""
    path = path.rstrip("/") or "/"
    for template in DOC["paths"]:
        pattern = "^" + re.sub(r"\\\{[^/]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    return None


def media_key(content, content_type):
    """The key of `content` the reply's content type falls under (exact essence, then ranges)."""
    essence = content_type.split(";")[0].strip().lower()
    if essence in content:
        return essence
    for key in content:
        if key.endswith("/*") and essence.startswith(key[:-1]):
            return key
    return None


def check(resp, method=None):
    """Asserts that the reply is documented and matches the document; returns its schema pointer."""
    method = (method or resp.request.method).lower()
    path = requests.utils.urlparse(resp.url).path
    template = template_of(path)
    status = str(resp.status_code)
    if template is None:
        assert status == "404", f"{method.upper()} {path}: an undocumented path answered {status}"
        response, ptr = DOC["components"]["responses"]["NotFound"], pointer("components", "responses", "NotFound")
    else:
        item = DOC["paths"][template]
        if method in item:
            responses = item[method]["responses"]
            assert status in responses, f"{method.upper()} {template}: status {status} is not documented"
            response, ptr = responses[status], pointer("paths", template, method, "responses", status)
        else:
            # Another method on a known path: a 405 that each operation there documents.
            assert status == "405", f"{method.upper()} {template}: {status} for an undocumented method"
            op = next(iter(item))
            assert "405" in item[op]["responses"], f"{template}: 405 is not documented"
            response, ptr = item[op]["responses"]["405"], pointer("paths", template, op, "responses", "405")
    ptr = ref_pointer(response, ptr)
    response = resolve(response)
    for name, header in response.get("headers", {}).items():
        header = resolve(header)
        if header.get("required"):
            assert name in resp.headers, f"{method.upper()} {path} {status}: required header {name} missing"
        if name in resp.headers and "schema" in header:
            value = resp.headers[name]
            schema = header["schema"]
            instance = int(value) if schema.get("type") == "integer" else value
            assert not list(Draft202012Validator(schema).iter_errors(instance)), f"header {name}: {value!r}"
    content_type = resp.headers.get("content-type", "")
    content = response.get("content", {})
    key = media_key(content, content_type)
    assert key, f"{method.upper()} {path} {status}: content type {content_type!r} is not documented (has {list(content)})"
    SEEN.add((template or "(unknown)", method, status, key))
    media = content[key]
    if key == "application/json" and "schema" in media:
        validate(resp.json(), ptr + "/content/" + key.replace("/", "~1") + "/schema")
    elif key == "text/event-stream":
        events = sse_events(resp.text)
        assert events, "no events in the stream"
        for event in events:
            validate(event, media["x-event-schema"]["$ref"])
    return ptr


def sse_events(text):
    return [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]


# --- the document itself -------------------------------------------------------------------

def test_document_is_valid_openapi_3_1():
    assert DOC["openapi"] == "3.1.0"
    validate_spec(DOC, cls=OpenAPIV31SpecValidator)
    assert DOC["servers"] == [{"url": "/", "description": DOC["servers"][0]["description"]}]


def test_every_route_of_the_router_is_documented():
    router = (ROOT / "src" / "http" / "router.rs").read_text()
    templates = set(re.findall(r'\("(/[^"]*)",', router)) - {"/assets"}
    assert templates, "no route templates found in router.rs"
    for t in templates | {"/metrics", "/assets/{name}"}:
        assert t in DOC["paths"], f"route {t} is not documented"
    assert {"get", "post"} <= set(DOC["paths"]["/"])
    # The page's assets: ("/assets/<name>", "<content type>", include_str!(…)) in page.rs.
    page = (ROOT / "src" / "http" / "api" / "page.rs").read_text()
    assets = dict(re.findall(r'\(\s*"/assets/([^"]+)",\s*"([^";]+)', page))
    op = DOC["paths"]["/assets/{name}"]["get"]
    assert set(assets) == set(op["parameters"][0]["schema"]["enum"])
    assert set(assets.values()) <= set(op["responses"]["200"]["content"])


def test_examples_match_their_schemas():
    count = 0

    def walk(node, ptr):
        nonlocal count
        if isinstance(node, dict):
            if "schema" in node and ("example" in node or "examples" in node) and ptr[-1:] != ("properties",):
                schema_ptr = pointer(*ptr, "schema")
                samples = [node["example"]] if "example" in node else [e["value"] for e in node["examples"].values()]
                for sample in samples:
                    if isinstance(sample, str) and "text/event-stream" in ptr:
                        for event in sse_events(sample):
                            validate(event, node["x-event-schema"]["$ref"])
                    else:
                        validate(sample, schema_ptr)
                    count += 1
            for k, v in node.items():
                walk(v, ptr + (k,))

    walk(DOC, ())
    assert count >= 15, count


def test_error_statuses_are_documented_where_produced():
    post_routes = ["/", "/v1/audio/transcriptions", "/v1/audio/translations"]
    for route in post_routes:
        responses = DOC["paths"][route]["post"]["responses"]
        for status in ["400", "401", "404", "405", "408", "413", "415", "422", "500", "503"]:
            assert status in responses, (route, status)
    busy = resolve(DOC["components"]["responses"]["Busy"])
    assert resolve(busy["headers"]["Retry-After"])["required"] is True
    assert "Retry-After" in DOC["paths"]["/ready"]["get"]["responses"]["503"]["headers"]
    keyed = {(p, m) for p, item in DOC["paths"].items() for m, op in item.items() if "security" in op}
    assert keyed == {("/", "post"), ("/v1/audio/transcriptions", "post"), ("/v1/audio/translations", "post"), ("/v1/models", "get")}


# --- the live server -------------------------------------------------------------------------

def test_live_document_is_the_file(host):
    r = requests.get(host + "/openapi.json", timeout=10)
    check(r)
    assert r.status_code == 200
    assert r.json() == DOC
    assert r.content == DOC_PATH.read_bytes()


def test_cheap_routes(host):
    r = requests.get(host + "/v1/models", timeout=10)
    check(r)
    assert {"base", "tiny.en", "whisper-1"} <= {m["id"] for m in r.json()["data"]}
    r = requests.get(host + "/health", timeout=10)
    check(r)
    assert r.json() == {"status": "ok"}
    r = requests.get(host + "/ready", timeout=10)
    check(r)
    assert r.status_code == 200
    r = requests.get(host + "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, timeout=10)
    check(r)
    assert r.status_code == 200 and "<html" in r.text.lower()
    for asset in DOC["paths"]["/assets/{name}"]["get"]["parameters"][0]["schema"]["enum"]:
        r = requests.get(f"{host}/assets/{asset}", timeout=10)
        check(r)
        assert r.status_code == 200
    r = requests.get(host + "/metrics", timeout=10)
    check(r)  # 200 on our host once it exports metrics (404 is documented for other hosts)


def test_errors_without_audio(host):
    cases = [
        ("get", "/nope", {}, 404),
        ("get", "/assets/nope.js", {}, 404),
        ("get", "/v1/audio/transcriptions", {}, 405),
        ("delete", "/v1/models", {}, 405),
        ("post", "/health", {}, 405),
        ("get", "/", {"headers": {"Accept": "application/json"}}, 405),
        ("post", "/v1/audio/transcriptions", {"files": {"model": (None, "whisper-1")}}, 400),
        ("post", "/v1/audio/translations", {"data": {"model": "whisper-1"}}, 415),
        ("post", "/", {"data": b"hello", "headers": {"Content-Type": "text/plain"}}, 415),
        ("post", "/", {}, 400),
    ]
    for method, path, kwargs, status in cases:
        r = requests.request(method, host + path, timeout=30, **kwargs)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        check(r)
        assert r.json()["error"]["message"]


def test_errors_with_audio(host):
    wav = (GEN / "jfk.wav").read_bytes()
    url = host + "/v1/audio/transcriptions"
    r = requests.post(url, files={"file": ("jfk.wav", wav, "audio/wav")}, data={"language": "xx"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "language"
    check(r)
    r = requests.post(host + "/?language=klingon", files={"file": ("jfk.wav", wav)}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "language"
    check(r)
    r = requests.post(url, files={"file": ("jfk.wav", wav)}, data={"model": "large-v9"}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    check(r)
    r = requests.post(url, files={"file": ("jfk.wma", (GEN / "e2e" / "jfk.wma").read_bytes())}, timeout=30)
    assert r.status_code == 415, r.text
    check(r)
    r = requests.post(host, files={"file": ("notes.txt", (GEN / "e2e" / "notes.txt").read_bytes())}, timeout=30)
    assert r.status_code == 415, r.text
    check(r)
    r = requests.post(url, files={"file": ("jfk.opus", (GEN / "e2e" / "jfk_truncated.opus").read_bytes())}, timeout=60)
    check(r)  # 422, or 200 with what could be decoded


def test_transcription_json_and_verbose_json(host):
    wav = (GEN / "jfk.wav").read_bytes()
    url = host + "/v1/audio/transcriptions"
    r = requests.post(url, files={"file": ("jfk.wav", wav, "audio/wav")}, data={"model": "whisper-1", "beam_size": "1"}, timeout=120)
    assert r.status_code == 200, r.text
    check(r)
    assert JFK in r.json()["text"]
    assert float(r.headers["x-audio-duration"]) == pytest.approx(11.0, abs=0.1)
    fields = [("response_format", "verbose_json"), ("timestamp_granularities[]", "word"),
              ("timestamp_granularities[]", "segment"), ("beam_size", "1")]
    r = requests.post(url, files={"file": ("jfk.wav", wav, "audio/wav")}, data=fields, timeout=120)
    assert r.status_code == 200, r.text
    check(r)
    v = r.json()
    assert v["segments"] and v["words"] and v["language"] == "english"
    assert "segments" in v and all(w["end"] >= w["start"] for w in v["words"])


def test_text_formats_and_stream(host):
    wav = (GEN / "jfk.wav").read_bytes()
    url = host + "/v1/audio/transcriptions"
    base = {"model": "tiny.en", "beam_size": "1"}
    for fmt, ct in [("text", "text/plain"), ("srt", "application/x-subrip"), ("vtt", "text/vtt")]:
        r = requests.post(url, files={"file": ("jfk.wav", wav)}, data={**base, "response_format": fmt}, timeout=120)
        assert r.status_code == 200 and r.headers["content-type"].startswith(ct), (fmt, r.status_code, r.headers)
        check(r)
    # Options the model cannot follow are refused before a stream starts: a 400, not a 200
    # whose only event is an error (such events remain for failures inside decoding).
    r = requests.post(host + "/v1/audio/translations", files={"file": ("jfk.wav", wav)},
                      data={**base, "stream": "true"}, timeout=120)
    assert r.status_code == 400 and r.json()["error"]["param"] == "task", r.text
    check(r)
    fields = [("beam_size", "1"), ("stream", "true"), ("timestamp_granularities[]", "word")]
    r = requests.post(url, files={"file": ("jfk.wav", wav)}, data=fields, timeout=120)
    assert r.status_code == 200, r.text
    check(r)
    events = sse_events(r.text)
    types = [e["type"] for e in events]
    assert types[-1] == "transcript.text.done" and "transcript.text.delta" in types, types
    segments = [e for e in events if e["type"] == "transcript.text.segment"]
    assert segments and all(e["words"] for e in segments), types
    assert JFK in events[-1]["text"] and events[-1]["language"] == "en"


def test_seed_two_files(host):
    files = [("file", ("jfk.wav", (GEN / "jfk.wav").read_bytes())),
             ("other", ("en.wav", (GEN / "espeak" / "en.wav").read_bytes()))]
    r = requests.post(host + "/?beam_size=1", files=files, data={"timestamps": "true"}, timeout=120)
    assert r.status_code == 200, r.text
    check(r)
    results = r.json()["results"]
    assert [x["filename"] for x in results] == ["file", "other"]
    assert JFK in results[0]["transcript"]
    assert all(x["segments"] for x in results)


@pytest.fixture(scope="module")
def keyed_host():
    """A second host with an API key and a small body limit (401 and 413)."""
    if not os.environ.get("WHISPER_HOST_BIN"):
        pytest.skip("no host")
    proc, base = start_host(extra_args=("--env", "WHISPER_API_KEY=sekrit", "--max-body", "64KiB"))
    yield base
    proc.kill()
    proc.wait()


def test_api_key_and_body_limit(keyed_host):
    r = requests.get(keyed_host + "/v1/models", timeout=10)
    assert r.status_code == 401, r.text
    check(r)
    r = requests.get(keyed_host + "/v1/models", headers={"Authorization": "Bearer sekrit"}, timeout=10)
    assert r.status_code == 200
    check(r)
    r = requests.get(keyed_host + "/health", timeout=10)
    assert r.status_code == 200
    check(r)
    r = requests.post(keyed_host + "/v1/audio/transcriptions", headers={"Authorization": "Bearer sekrit"},
                      files={"file": ("jfk.wav", (GEN / "jfk.wav").read_bytes())}, timeout=30)
    assert r.status_code == 413, r.text
    check(r)


# --- property-based: schemathesis over the cheap routes ----------------------------------------

def test_schemathesis_cheap_routes(host, tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if not st:
        pytest.skip("schemathesis is not installed")
    cmd = [st, "run", str(DOC_PATH), "--url", host, "--checks", "all",
           # The transcription routes decode audio (and random bytes are rightly refused with a
           # 415, which schemathesis counts as a valid request rejected): they are covered above.
           "--include-path-regex", r"^/(health|ready|v1/models|openapi\.json|metrics|assets/.*)?$",
           "--exclude-method", "POST",
           # GET / is content-negotiated on `Accept`, which OpenAPI cannot express as a parameter:
           # without text/html it is a documented 405 that schemathesis takes for a rejected request.
           "--exclude-operation-id", "page",
           # Our 405s carry no `Allow` header (RFC 9110 wants one): known, reported, not this test's.
           "--exclude-checks", "unsupported_method,allow_header_conformance",
           "--max-time", "25", "--workers", "1", "--request-timeout", "30", "--no-color"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=150, cwd=tmp_path)
    print(out.stdout[-3000:])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]


def test_zz_summary():
    print("\ndocumented replies seen:", *sorted(SEEN), sep="\n  ")
