"""A plain Python + ONNX Runtime decoding loop over the graphs of models/README.md.

Used by the tests to check the graphs against faster-whisper token for token, and as an
executable description of how the host/component are meant to drive the graphs:

    mel    = log_mel(audio)              # [n_mels, 3000], as faster-whisper computes it
    cross  = encoder(mel[None])          # per decoder layer i < L: cross_k{i} [1, H, dh, 1500] (K transposed),
                                         #                          cross_v{i} [1, H, 1500, dh]
    step 1 : decoder(tokens=[[sot]], cache_index=[0], **cross,
                     past_k{i}=[1, H, dh, 0], past_v{i}=[1, H, 0, dh] empty)   -> language logits at sot
    step 2 : decoder(tokens=[[lang, transcribe, notimestamps]], past_k{i}=present_k{i}, past_v{i}=present_v{i})
    step n : decoder(tokens=[[last]], past_*=present_*) ... until eot

(The host keeps `cross_*` and `cache_index` between steps and carries every `present<S>` into
`past<S>` itself; here `step` feeds everything each time.)

Usage: python -m models.reference models/build/base clip.wav [--language en]
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

N_FRAMES = 3000  # 30 s of 10 ms mel frames


def load_audio(path: str | Path) -> np.ndarray:
    """Decode any audio file to 16 kHz mono float32 (PyAV, as faster-whisper does)."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=16000)


def log_mel(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """The first 30 s window exactly as faster-whisper 1.2.1 feeds it to the encoder: [n_mels, 3000]."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    feats = FeatureExtractor(feature_size=n_mels)(audio)
    content_frames = feats.shape[-1] - 1  # faster-whisper drops the frame of its 160-sample padding
    return pad_or_trim(feats[:, : min(N_FRAMES, content_frames)]).astype(np.float32)


@dataclass
class Result:
    language: str | None
    language_probs: dict[str, float]
    tokens: list[int]  # sampled text tokens, without the prompt and without eot
    text: str
    timings: dict[str, float] = field(default_factory=dict)


class OnnxWhisper:
    def __init__(self, model_dir: str | Path, threads: int = 2):
        model_dir = Path(model_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(str(model_dir / "encoder.onnx"), opts, providers=providers)
        self.decoder = ort.InferenceSession(str(model_dir / "decoder.onnx"), opts, providers=providers)
        meta = ort.InferenceSession(str(model_dir / "meta.onnx"), opts, providers=providers)
        blobs = dict(zip([o.name for o in meta.get_outputs()], meta.run(None, {})))
        self.config = json.loads(bytes(blobs["config"]).decode("utf-8"))
        self.vocab = bytes(blobs["vocab"]).decode("utf-8").split("\n")
        self.merges = bytes(blobs["merges"]).decode("utf-8").split("\n")
        dims = self.config["dims"]
        self.n_layer, self.d, self.n_head = dims["n_text_layer"], dims["n_text_state"], dims["n_text_head"]
        self.encoder_outputs = [o.name for o in self.encoder.get_outputs()]
        self.present_names = [o.name for o in self.decoder.get_outputs() if o.name.startswith("present")]
        self.tok = self.config["tokens"]
        self.lang_ids = {code: i for code, i in self.config["languages"]}
        self._byte_decoder = _gpt2_byte_decoder()

    # --- graphs

    def encode(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        """The encoder's outputs by name (`cross_k{i}`, `cross_v{i}`): all of them are decoder inputs."""
        if mel.ndim == 2:
            mel = mel[None]
        return dict(zip(self.encoder_outputs, self.encoder.run(self.encoder_outputs, {"mel": mel.astype(np.float32)})))

    def empty_past(self, batch: int = 1) -> dict[str, np.ndarray]:
        """An empty self-attention cache (P = 0): `past_k{i}` [batch, H, dh, 0], `past_v{i}` [batch, H, 0, dh]."""
        h, dh = self.n_head, self.d // self.n_head
        past = {}
        for i in range(self.n_layer):
            past[f"past_k{i}"] = np.zeros((batch, h, dh, 0), dtype=np.float32)
            past[f"past_v{i}"] = np.zeros((batch, h, 0, dh), dtype=np.float32)
        return past

    def step(self, tokens, past: dict, cross: dict, cache_index=None, outputs=("logits", "present")):
        """One decoder step. `outputs` names what to return, in that order: "logits", "alignment", and
        "present", which is every `present<S>` output as a dict keyed `past<S>` (feed it back as `past`)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if cache_index is None:
            cache_index = np.arange(tokens.shape[0], dtype=np.int64)
        feeds = {"tokens": tokens, "cache_index": np.asarray(cache_index, dtype=np.int64), **past, **cross}
        names = [n for o in outputs for n in (self.present_names if o == "present" else [o])]
        values = dict(zip(names, self.decoder.run(names, feeds)))
        return [{"past" + n[len("present"):]: values[n] for n in self.present_names} if o == "present" else values[o]
                for o in outputs]

    # --- decoding

    def suppress_ids(self) -> list[int]:
        """The config's list plus the special tokens, as faster-whisper's get_suppressed_tokens does."""
        t = self.tok
        extra = [t["transcribe"], t["translate"], t["sot"], t["sot_prev"], t["sot_lm"], t["no_speech"]]
        return sorted(set(self.config["suppress_ids"]) | set(extra))

    def detect_language(self, cross: dict):
        """Language distribution from the logits at the sot position; also returns the cache."""
        logits, present = self.step([[self.tok["sot"]]], self.empty_past(), cross)
        if not self.config["multilingual"]:
            return "en", {"en": 1.0}, present
        codes = list(self.lang_ids)
        ids = np.array([self.lang_ids[c] for c in codes])
        lg = logits[0, ids].astype(np.float64)
        p = np.exp(lg - lg.max())
        p /= p.sum()
        probs = dict(sorted(zip(codes, p.tolist()), key=lambda kv: -kv[1]))
        return next(iter(probs)), probs, present

    def transcribe(self, audio: np.ndarray, language: str | None = None, max_tokens: int | None = None) -> Result:
        """Greedy decoding (beam 1, temperature 0), no timestamps, like faster-whisper with those options."""
        timings = {}
        t0 = time.perf_counter()
        mel = log_mel(audio, self.config["dims"]["n_mels"])
        t1 = time.perf_counter()
        cross = self.encode(mel)
        t2 = time.perf_counter()
        timings["mel_s"], timings["encoder_s"] = t1 - t0, t2 - t1

        t = self.tok
        if self.config["multilingual"]:
            detected, probs, past = self.detect_language(cross)
            language = language or detected
            prompt_rest = [self.lang_ids[language], t["transcribe"], t["no_timestamps"]]
            logits, past = self.step([prompt_rest], past, cross)
            n_prompt = 1 + len(prompt_rest)
        else:
            detected, probs = "en", {"en": 1.0}
            language = "en"
            logits, past = self.step([[t["sot"], t["no_timestamps"]]], self.empty_past(), cross)
            n_prompt = 2

        suppress = np.array(self.suppress_ids())
        begin = np.array(self.config["suppress_ids_begin"])
        n_ctx = self.config["dims"]["n_text_ctx"]
        limit = n_ctx - n_prompt if max_tokens is None else max_tokens
        tokens: list[int] = []
        while True:
            lg = logits[0].copy()
            lg[suppress] = -np.inf
            if not tokens:
                lg[begin] = -np.inf  # suppress_blank: no leading space or eot
            nxt = int(np.argmax(lg))
            if nxt == t["eot"]:
                break
            tokens.append(nxt)
            if len(tokens) >= limit:
                break
            logits, past = self.step([[nxt]], past, cross)
        timings["decoder_s"] = time.perf_counter() - t2
        timings["n_tokens"] = len(tokens)
        return Result(detected, probs, tokens, self.decode_text(tokens), timings)

    def decode_text(self, tokens: list[int]) -> str:
        eot = self.tok["eot"]
        pieces = "".join(self.vocab[i] for i in tokens if i < eot)
        return bytes(self._byte_decoder[c] for c in pieces).decode("utf-8", errors="replace")


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's reversible byte <-> printable character map (vocab tokens are spelled with it)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def main() -> None:
    ap = argparse.ArgumentParser(description="Greedy transcription with the ONNX graphs (reference loop)")
    ap.add_argument("model_dir")
    ap.add_argument("audio", nargs="+")
    ap.add_argument("--language", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    model = OnnxWhisper(args.model_dir, threads=args.threads)
    for path in args.audio:
        r = model.transcribe(load_audio(path), language=args.language)
        top = next(iter(r.language_probs.items()))
        print(f"{path}: [{r.language} p={top[1]:.2f}] {r.text!r}")
        print(f"  tokens={r.tokens}")
        print("  " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.timings.items()))


if __name__ == "__main__":
    main()
