"""The README's curl examples run against the real server and print what the README shows.

Examples are the ```console blocks of README.md: a line `$ curl …` is run (with
`localhost:8080` pointed at the test server, from tests/fixtures/gen so `jfk.wav` resolves),
and the lines up to the next `$` are its expected output: JSON is compared as JSON, anything
else as text.
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


def test_readme_has_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("cmd,expected", EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_example(host, cmd, expected):
    args = [a.replace("localhost:8080", host.removeprefix("http://")) for a in shlex.split(cmd)]
    assert args[0] == "curl"
    got = subprocess.run(args + ["-sS"], cwd=FIXTURES / "gen", capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    try:
        assert json.loads(got.stdout) == json.loads(expected)
    except json.JSONDecodeError:
        assert got.stdout.strip() == expected
