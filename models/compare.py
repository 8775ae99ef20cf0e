"""Compare two builds of the graphs (e.g. base vs base-int8) on audio clips, greedy decoding.

    .venv/bin/python -m models.compare models/build/base models/build/base-int8 tests/fixtures/gen/jfk.wav ...

Prints, per clip, the detected language of each, the token edit distance and the word error rate
of the second build measured against the first (punctuation and case ignored for words).
"""
from __future__ import annotations

import argparse
import re
import time

from .reference import OnnxWhisper, load_audio


def edit_distance(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def compare(ref: OnnxWhisper, other: OnnxWhisper, paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        audio = load_audio(path)
        t0 = time.perf_counter()
        r = ref.transcribe(audio)
        t1 = time.perf_counter()
        # same language for both, so that only the transcription is compared
        o = other.transcribe(audio, language=r.language)
        t2 = time.perf_counter()
        o_lang = other.transcribe(audio, max_tokens=1).language if other.config["multilingual"] else "en"
        wr, wo = words(r.text), words(o.text)
        rows.append({
            "clip": path, "lang_ref": r.language, "lang_other": o_lang,
            "p_ref": r.language_probs.get(r.language, 1.0), "p_other": o.language_probs.get(r.language, 1.0),
            "tok_ref": len(r.tokens), "tok_edits": edit_distance(r.tokens, o.tokens),
            "words_ref": len(wr), "word_edits": edit_distance(wr, wo),
            "text_ref": r.text, "text_other": o.text, "s_ref": t1 - t0, "s_other": t2 - t1,
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref")
    ap.add_argument("other")
    ap.add_argument("audio", nargs="+")
    args = ap.parse_args()
    ref, other = OnnxWhisper(args.ref), OnnxWhisper(args.other)
    rows = compare(ref, other, args.audio)
    tot = {k: sum(r[k] for r in rows) for k in ("tok_ref", "tok_edits", "words_ref", "word_edits", "s_ref", "s_other")}
    print("| clip | language (p) ref → other | token edits | word edits | other's text (if different) |")
    print("|---|---|---|---|---|")
    for r in rows:
        diff = "" if r["text_ref"] == r["text_other"] else f"`{r['text_other'].strip()}` (ref `{r['text_ref'].strip()}`)"
        print(f"| {r['clip'].split('/')[-1]} | {r['lang_ref']} ({r['p_ref']:.2f}) → {r['lang_other']} ({r['p_other']:.2f}) "
              f"| {r['tok_edits']}/{r['tok_ref']} | {r['word_edits']}/{r['words_ref']} | {diff} |")
    print(f"\ntotal: {tot['tok_edits']}/{tot['tok_ref']} token edits, {tot['word_edits']}/{tot['words_ref']} word edits "
          f"(WER {tot['word_edits'] / max(1, tot['words_ref']):.1%}); time {tot['s_ref']:.2f} s vs {tot['s_other']:.2f} s")


if __name__ == "__main__":
    main()
