"""The README's curl examples run against the real server and print what the README shows.

Examples are the ```console blocks of README.md: a line `$ curl …` is run (with
`localhost:8080` pointed at the test server, from tests/fixtures/gen so `jfk.wav` resolves),
and the lines up to the next `$` are its expected output: JSON is compared as JSON, anything
else as text. Numbers in JSON may differ by a few hundredths: ONNX Runtime picks different
kernels on different CPUs, so the last printed digit of a probability or timestamp is not
stable across machines, while words, keys and shape must match exactly.
"""
import json
import re
import shlex
import subprocess

import pytest

from conftest import FIXTURES, ROOT


def examples():
    readme = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```console\n(.*?)```", readme, re.S):
        cmd, expected = None, []
        for line in block.splitlines() + ["$"]:
            if line.startswith("$"):
                if cmd:
                    out.append((cmd, "\n".join(expected).strip()))
                cmd, expected = line[1:].strip() or None, []
            else:
                expected.append(line)
    return out


EXAMPLES = examples()
NUMBER_TOLERANCE = 0.02


def same(got, want, path="$"):
    """Assert JSON values match: same shape and strings, numbers within NUMBER_TOLERANCE."""
    if isinstance(want, bool) or want is None or isinstance(want, str):
        assert got == want, f"{path}: {got!r} != {want!r}"
    elif isinstance(want, (int, float)):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{path}: {got!r} is not a number"
        assert abs(got - want) <= NUMBER_TOLERANCE, f"{path}: {got} != {want}"
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            same(g, w, f"{path}[{i}]")
    else:
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{path}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            same(got[k], want[k], f"{path}.{k}")


def test_same_is_strict_on_words_and_shape():
    same({"a": [0.959, "x"]}, {"a": [0.9591, "x"]})
    for got in ({"a": [0.99, "x"]}, {"a": [0.959, "y"]}, {"a": [0.959]}, {"b": [0.959, "x"]}):
        with pytest.raises(AssertionError):
            same(got, {"a": [0.959, "x"]})


def test_readme_has_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("cmd,expected", EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_example(host, cmd, expected):
    args = [a.replace("localhost:8080", host.removeprefix("http://")) for a in shlex.split(cmd)]
    assert args[0] == "curl"
    got = subprocess.run(args + ["-sS"], cwd=FIXTURES / "gen", capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    try:
        want = json.loads(expected)
    except json.JSONDecodeError:
        assert got.stdout.strip() == expected
    else:
        same(json.loads(got.stdout), want)
