# The two commands a newcomer needs:  make serve   and   make test
# Everything else is what they call. Each step is idempotent and fast when done already.

SHELL := /bin/bash
LISTEN ?= 127.0.0.1:8080
MODEL ?= base
# Models `make test` needs; `make serve` builds only $(MODEL).
TEST_MODELS ?= base tiny.en
MODELS_DIR ?= $(CURDIR)/models/build
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
# ONNX Runtime's library comes from the onnxruntime wheel in .venv (no download at build time).
ORT_LIB = $(firstword $(wildcard $(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*))
# OpenVINO's C library (the host's second backend, --backend openvino) from the openvino wheel.
OV_LIB = $(firstword $(wildcard $(VENV)/lib/python3*/site-packages/openvino/libs/libopenvino_c.so.*))
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
COMPONENT := $(TARGET_DIR)/wasm32-wasip2/release/whisper_component.wasm
HOST := $(TARGET_DIR)/release/whisper-host
CARGO ?= cargo
# Stock hosts: the pure-wasm wasi:nn provider (provider/), pre-initialised per model and plugged
# into the component (scripts/compose.sh). Stock wasmtime-cli, wac-cli and wasm-tools are
# installed by scripts/setup-tools.sh into a cache shared by every checkout.
WHISPER_CACHE ?= $(HOME)/.cache/whisper-edge
TOOLS_BIN := $(WHISPER_CACHE)/tools/bin
# Its own target directory: tract's kernels want relaxed SIMD (fused multiply-add) too, and
# RUSTFLAGS must not change under the component's build.
PROVIDER_TARGET_DIR := $(TARGET_DIR)/provider
PROVIDER := $(PROVIDER_TARGET_DIR)/wasm32-wasip2/release/wasi_nn_tract.wasm
EDGE_DIR := $(TARGET_DIR)/edge
# Models `make edge` composes (`make test` needs base).
EDGE_MODELS ?= base

.PHONY: bench bench-diarize serve test setup setup-apt setup-rust setup-python setup-tools models build build-host build-component fixtures test-unit test-e2e test-python clean help fuzz
.PHONY: build-provider edge serve-wasmtime test-stock

help:
	@echo "make serve   - set up on first use, then serve $(MODEL) on $(LISTEN) (LISTEN=host:port to change)"
	@echo "make test    - everything the tests need, then the full suite"
	@echo "make bench   - our server against faster-whisper (bench/README.md; BENCH_ARGS=\"--runs 1\")"
	@echo "make bench-long - long audio: our batched and sequential paths beside faster-whisper's (LONG_ARGS=\"--beam 5\")"
	@echo "make models  - download and convert models (MODELS=\"base tiny.en base-int8\")"
	@echo "make serve-wasmtime - the composed component on stock \`wasmtime serve\` (MODEL, LISTEN as for serve)"
	@echo "make edge    - compose whisper-edge-<model>.wasm for stock hosts (EDGE_MODELS=\"base tiny.en\")"

# SERVE_ARGS: more host flags, e.g. SERVE_ARGS="--backend openvino" (whisper-host --help).
SERVE_ARGS ?=
serve: setup build
	@$(MAKE) --no-print-directory models MODELS="$(MODEL)"
	ORT_DYLIB_PATH="$(ORT_LIB)" OPENVINO_LIB="$(OV_LIB)" $(HOST) --listen $(LISTEN) --component $(COMPONENT) \
	  --models $(MODELS_DIR) --model $(MODEL) $(if $(VAD_MODEL),--model $(VAD_MODEL)) $(if $(SPEAKER_MODEL),--model $(SPEAKER_MODEL)) --env WHISPER_MODEL=$(MODEL) --compile-cache $(SERVE_ARGS)

test: setup build fixtures
	@$(MAKE) --no-print-directory models MODELS="$(TEST_MODELS)"
	@$(MAKE) --no-print-directory edge EDGE_MODELS=base
	@$(MAKE) --no-print-directory test-unit test-e2e test-stock test-python

setup: setup-apt setup-rust setup-python

setup-apt:
	@bash scripts/setup-apt.sh

setup-rust:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

setup-python:
	@bash scripts/setup-python.sh

setup-tools:
	@bash scripts/setup-tools.sh

MODELS ?= $(MODEL)
# The voice activity detector (Silero VAD from the silero-vad wheel, models/vad.py), built and
# served beside the Whisper models; VAD_MODEL= (empty) leaves it out.
VAD_MODEL ?= vad
# The speaker encoder for diarization (Resemblyzer's, from the resemblyzer wheel, models/speaker.py),
# built and served the same way; SPEAKER_MODEL= (empty) leaves it out.
SPEAKER_MODEL ?= speaker
models: setup-python
	@$(PY) -m models.convert $(MODELS) $(VAD_MODEL) $(SPEAKER_MODEL) --out $(MODELS_DIR)

build: build-component build-host

build-host:
	$(CARGO) build --release -p whisper-host --bins --examples

build-component: setup-rust
	$(CARGO) build --release --target wasm32-wasip2 -p whisper-component

build-provider: setup-rust
	CARGO_TARGET_DIR=$(PROVIDER_TARGET_DIR) RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
	  $(CARGO) build --release --target wasm32-wasip2 -p wasi-nn-tract

# One self-contained component per model in $(EDGE_DIR): whisper-edge-<model>.wasm.
edge: setup-tools build-component build-provider
	@$(MAKE) --no-print-directory models MODELS="$(EDGE_MODELS)"
	@for m in $(EDGE_MODELS); do \
	  TOOLS_BIN=$(TOOLS_BIN) bash scripts/compose.sh $$m $(COMPONENT) $(PROVIDER) $(MODELS_DIR) $(EDGE_DIR) || exit 1; \
	done

# Stock `wasmtime serve` (crates.io wasmtime-cli 48.0.8), nothing of ours but the .wasm.
# WASMTIME_ARGS: more `wasmtime serve` flags, e.g. "-W max-memory-size=2147483648".
WASMTIME_ARGS ?=
serve-wasmtime: setup
	@$(MAKE) --no-print-directory edge EDGE_MODELS=$(MODEL)
	$(TOOLS_BIN)/wasmtime serve -S cli --addr $(LISTEN) --env WHISPER_MODEL=$(MODEL) $(WASMTIME_ARGS) \
	  $(EDGE_DIR)/whisper-edge-$(MODEL).wasm

fixtures:
	@bash tests/fixtures/make_fixtures.sh
	@bash tests/fixtures/make_e2e_fixtures.sh
	@bash tests/fixtures/make_speaker_fixtures.sh

# Native unit tests of the component's logic and the host's backend.
test-unit:
	WHISPER_COMPONENT=$(COMPONENT) $(CARGO) test --release -p whisper-component --lib --test component
	ORT_DYLIB_PATH="$(ORT_LIB)" OPENVINO_LIB="$(OV_LIB)" $(CARGO) test --release -p whisper-host -p nn-context -p wasi-nn-tract -p api-keys

# End to end: the real host, the real component, real models, real speech, over loopback HTTP.
test-e2e:
	ORT_DYLIB_PATH="$(ORT_LIB)" OPENVINO_LIB="$(OV_LIB)" WHISPER_HOST_BIN=$(HOST) WHISPER_COMPONENT=$(COMPONENT) \
	  WHISPER_MODELS_DIR=$(MODELS_DIR) $(CARGO) test --release -p whisper-component --test e2e -- --test-threads=1

# The composed base component on stock `wasmtime serve`, and static checks of it (Spin's world).
# Also the two embedding examples (host/examples/).
test-stock:
	WASMTIME_BIN=$(TOOLS_BIN)/wasmtime WASM_TOOLS_BIN=$(TOOLS_BIN)/wasm-tools WHISPER_COMPONENT=$(COMPONENT) \
	  WHISPER_EDGE_WASM=$(EDGE_DIR)/whisper-edge-base.wasm WHISPER_EXAMPLES_DIR=$(TARGET_DIR)/release/examples \
	  WHISPER_MODELS_DIR=$(MODELS_DIR) ORT_DYLIB_PATH="$(ORT_LIB)" \
	  $(CARGO) test --release -p whisper-component --test stock

# The converter's checks against faster-whisper, and the OpenAI SDK and faster-whisper
# parity suites against the real host.
test-python:
	MODELS_DIR=$(MODELS_DIR) ORT_DYLIB_PATH="$(ORT_LIB)" WHISPER_HOST_BIN=$(HOST) WHISPER_COMPONENT=$(COMPONENT) \
	  WHISPER_MODELS_DIR=$(MODELS_DIR) $(PY) -m pytest -q -s models/tests tests/python

# Our server against faster-whisper on the same weights: latency, WER, RTF, counters, memory,
# concurrency (bench/README.md). BENCH_ARGS="--quick" or "--runs 5" to change.
BENCH_ARGS ?=
bench: setup build fixtures
	@$(MAKE) --no-print-directory models MODELS="base base-int8"
	ORT_DYLIB_PATH="$(ORT_LIB)" $(PY) bench/bench.py --host-bin $(HOST) --component $(COMPONENT) --models $(MODELS_DIR) --out bench/results.json $(BENCH_ARGS)

# Where the server's memory goes: at rest, peak through the 184 s beam-5 probe, per extra
# in-flight request (bench/memory.py; MEMORY_ARGS="--host-arg=... --env K=V" to compare levers).
MEMORY_ARGS ?=
.PHONY: bench-memory
bench-memory: setup build fixtures
	@$(MAKE) --no-print-directory models MODELS="base base-int8"
	MODELS_DIR=$(MODELS_DIR) $(PY) bench/memory.py --host-bin $(HOST) --component $(COMPONENT) --ort-lib "$(ORT_LIB)" $(MEMORY_ARGS)

# The audio stage alone inside the sandbox: decode speed and memory per format (bench/README.md).
.PHONY: bench-decode
# Diarization: DER per constructed conversation of real speakers and the time diarize=true adds
# (bench/diarize.py; starts its own host with base, vad and speaker).
bench-diarize: setup build fixtures
	@$(MAKE) --no-print-directory models MODELS=base
	WHISPER_HOST_BIN=$(HOST) WHISPER_COMPONENT=$(COMPONENT) MODELS_DIR=$(MODELS_DIR) $(PY) bench/diarize.py

# Transcribe while uploading: how far behind a live (real-time paced) upload the text is
# (bench/live.py; starts its own host with base and vad). LIVE_ARGS="--pace 2" to change.
LIVE_ARGS ?=
.PHONY: bench-live
bench-live: setup build fixtures
	@$(MAKE) --no-print-directory models MODELS=base
	WHISPER_HOST_BIN=$(HOST) WHISPER_COMPONENT=$(COMPONENT) MODELS_DIR=$(MODELS_DIR) $(PY) bench/live.py $(LIVE_ARGS)

# Long form: our batched and sequential paths beside faster-whisper's two (bench/long_form.py);
# LONG_ARGS, e.g. LONG_ARGS="--beam 5 --model base"
.PHONY: bench-long
bench-long: setup build fixtures
	@$(MAKE) --no-print-directory models MODELS="base base-int8"
	WHISPER_HOST_BIN=$(HOST) WHISPER_COMPONENT=$(COMPONENT) MODELS_DIR=$(MODELS_DIR) $(PY) bench/long_form.py $(LONG_ARGS)

bench-decode: setup setup-tools fixtures
	$(CARGO) build --release --target wasm32-wasip2 --example decode
	bash bench/decode.sh $(TOOLS_BIN)/wasmtime $(TARGET_DIR)/wasm32-wasip2/release/examples/decode.wasm tests/fixtures/gen

# The composed components on stock `wasmtime serve`, beside our host (bench/README.md).
# BENCH_STOCK_MODELS: which to compose and measure; BENCH_STOCK_ARGS="--runs 1 --no-long".
BENCH_STOCK_MODELS ?= tiny.en base base-int8
BENCH_STOCK_ARGS ?=
.PHONY: bench-stock
bench-stock: setup build fixtures
	@$(MAKE) --no-print-directory edge EDGE_MODELS="$(BENCH_STOCK_MODELS)"
	ORT_DYLIB_PATH="$(ORT_LIB)" $(PY) bench/stock.py --wasmtime $(TOOLS_BIN)/wasmtime --edge-dir $(EDGE_DIR) \
	  --models "$(shell echo $(BENCH_STOCK_MODELS) | tr ' ' ',')" --host-bin $(HOST) --component $(COMPONENT) \
	  --models-dir $(MODELS_DIR) --out bench/stock.json $(BENCH_STOCK_ARGS)

clean:
	rm -rf target models/build tests/fixtures/gen

# Overload soak (issue 7): the host with base and default limits, 4 clients looping over a mix of
# good and bad requests for SOAK_SECONDS (default 600); fails on any unexpected status, wrong
# transcript, or RSS growth > 25 % after the first minute (bench/README.md). Not part of `make test`.
SOAK_SECONDS ?= 600
.PHONY: soak
soak: setup build fixtures
	@$(MAKE) --no-print-directory models MODELS="base"
	ORT_DYLIB_PATH="$(ORT_LIB)" SOAK_SECONDS=$(SOAK_SECONDS) $(PY) bench/soak.py --host-bin $(HOST) --component $(COMPONENT) --models $(MODELS_DIR) --out bench/soak.json

# Scale-out on loopback (issue 15): two host replicas (--threads 1 each) behind Debian's haproxy
# (installed here on demand, not by `make test`) with health checks on /ready: throughput of one
# replica against two, one replica SIGTERMed mid-load (no request may be lost), one killed -9
# (only its in-flight requests lost, haproxy stops routing to it within its check interval).
# SCALE_SECONDS of load per phase, 4 phases; fails on any failed check (bench/README.md). Not
# part of `make test`.
SCALE_SECONDS ?= 30
SCALE_MODEL ?= base
SCALE_ARGS ?=
.PHONY: scale-test
scale-test: setup build fixtures
	@bash scripts/setup-apt.sh haproxy
	@$(MAKE) --no-print-directory models MODELS="$(SCALE_MODEL)"
	ORT_DYLIB_PATH="$(ORT_LIB)" $(PY) bench/scale.py --host-bin $(HOST) --component $(COMPONENT) --models $(MODELS_DIR) \
	  --model $(SCALE_MODEL) --seconds $(SCALE_SECONDS) --out bench/results-scale.json $(SCALE_ARGS)

# Fuzzing (not part of `make test`): cargo-fuzz runs each target for FUZZ_SECONDS from the seeds
# in fuzz/corpus/<target>/, growing fuzz/work/<target>/; a crash stops the run with its input in
# fuzz/artifacts/<target>/ (fuzz/README.md). Nightly Rust if installed, else stable with
# RUSTC_BOOTSTRAP=1. audio runs without a sanitizer (many times faster; its parsers are safe
# Rust), multipart under AddressSanitizer.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= audio multipart
.PHONY: fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@cd fuzz && if rustup toolchain list | grep -q '^nightly'; then fz="cargo +nightly fuzz"; \
	  else fz="env RUSTC_BOOTSTRAP=1 cargo fuzz"; fi; \
	  for t in $(FUZZ_TARGETS); do \
	    case $$t in audio) fl="-s none -- -max_len=16384";; multipart) fl="-s address -- -max_len=4096";; *) fl="--";; esac; \
	    mkdir -p work/$$t && echo "== fuzz $$t for $(FUZZ_SECONDS) s" && \
	    $$fz run -O $$t work/$$t corpus/$$t $$fl -malloc_limit_mb=256 -timeout=10 \
	      -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	  done
