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

.PHONY: bench serve test setup setup-apt setup-rust setup-python models build build-host build-component fixtures test-unit test-e2e test-python clean help fuzz

help:
	@echo "make serve   - set up on first use, then serve $(MODEL) on $(LISTEN) (LISTEN=host:port to change)"
	@echo "make test    - everything the tests need, then the full suite"
	@echo "make bench   - our server against faster-whisper (bench/README.md; BENCH_ARGS=\"--runs 1\")"
	@echo "make models  - download and convert models (MODELS=\"base tiny.en base-int8\")"

# SERVE_ARGS: more host flags, e.g. SERVE_ARGS="--backend openvino" (whisper-host --help).
SERVE_ARGS ?=
serve: setup build
	@$(MAKE) --no-print-directory models MODELS="$(MODEL)"
	ORT_DYLIB_PATH="$(ORT_LIB)" OPENVINO_LIB="$(OV_LIB)" $(HOST) --listen $(LISTEN) --component $(COMPONENT) \
	  --models $(MODELS_DIR) --model $(MODEL) --env WHISPER_MODEL=$(MODEL) --compile-cache $(SERVE_ARGS)

test: setup build fixtures
	@$(MAKE) --no-print-directory models MODELS="$(TEST_MODELS)"
	@$(MAKE) --no-print-directory test-unit test-e2e test-python

setup: setup-apt setup-rust setup-python

setup-apt:
	@bash scripts/setup-apt.sh

setup-rust:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

setup-python:
	@bash scripts/setup-python.sh

MODELS ?= $(MODEL)
models: setup-python
	@$(PY) -m models.convert $(MODELS) --out $(MODELS_DIR)

build: build-component build-host

build-host:
	$(CARGO) build --release -p whisper-host

build-component: setup-rust
	$(CARGO) build --release --target wasm32-wasip2 -p whisper-component

fixtures:
	@bash tests/fixtures/make_fixtures.sh
	@bash tests/fixtures/make_e2e_fixtures.sh

# Native unit tests of the component's logic and the host's backend.
test-unit:
	WHISPER_COMPONENT=$(COMPONENT) $(CARGO) test --release -p whisper-component --lib --test component
	ORT_DYLIB_PATH="$(ORT_LIB)" OPENVINO_LIB="$(OV_LIB)" $(CARGO) test --release -p whisper-host

# End to end: the real host, the real component, real models, real speech, over loopback HTTP.
test-e2e:
	ORT_DYLIB_PATH="$(ORT_LIB)" OPENVINO_LIB="$(OV_LIB)" WHISPER_HOST_BIN=$(HOST) WHISPER_COMPONENT=$(COMPONENT) \
	  WHISPER_MODELS_DIR=$(MODELS_DIR) $(CARGO) test --release -p whisper-component --test e2e -- --test-threads=1

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
