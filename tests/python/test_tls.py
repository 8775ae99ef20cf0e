"""TLS in the host (issue 17): `--tls-cert`/`--tls-key` with a self-signed chain made here
(trustme), HTTP/2 negotiated by ALPN with curl, the official OpenAI SDK over HTTPS, and a plain
HTTP request to the TLS port refused without harming the server."""
import json
import os
import socket
import ssl
import subprocess
import urllib.parse

import openai
import pytest

from conftest import FIXTURES, _missing, start_host

JFK = FIXTURES / "gen/jfk.wav"
JFK_WORDS = "ask not what your country can do for you"


@pytest.fixture(scope="module")
def tls_host(tmp_path_factory):
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    ca_pem, chain_pem, key_pem = d / "ca.pem", d / "chain.pem", d / "key.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    with open(chain_pem, "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    context = ssl.create_default_context(cafile=str(ca_pem))
    proc, base = start_host(extra_args=["--tls-cert", str(chain_pem), "--tls-key", str(key_pem)], tls=context)
    yield base, ca_pem
    proc.kill()
    proc.wait()


def test_curl_negotiates_http2(tls_host):
    base, ca = tls_host
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", str(ca), "-F", f"file=@{JFK}", "-F", "model=base",
         "-w", "\n%{http_version} %{http_code}", base + "/v1/audio/transcriptions"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    body, _, meta = out.stdout.rpartition("\n")
    assert meta == "2 200", (meta, body)
    assert JFK_WORDS in json.loads(body)["text"].lower()
    # HTTP/1.1 is offered too.
    out = subprocess.run(["curl", "-sS", "--http1.1", "--cacert", str(ca), "-w", "%{http_version}", "-o", "/dev/null",
                          base + "/health"], capture_output=True, text=True, timeout=30)
    assert out.stdout == "1.1", out.stderr
    # An untrusted chain is refused by the client: the certificate is really checked.
    out = subprocess.run(["curl", "-sS", base + "/health"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0


def test_openai_sdk_over_https(tls_host):
    base, ca = tls_host
    # The SDK's own HTTP client, trusting the test's CA.
    http_client = openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=str(ca)))
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120, http_client=http_client)
    with open(JFK, "rb") as f:
        text = client.audio.transcriptions.create(model="whisper-1", file=f).text
    assert JFK_WORDS in text.lower()


def test_plain_http_on_the_tls_port_leaves_it_healthy(tls_host):
    base, ca = tls_host
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
    assert not data.startswith(b"HTTP/1.1 200"), data
    out = subprocess.run(["curl", "-sS", "--cacert", str(ca), base + "/ready"], capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout) == {"status": "ready"}
