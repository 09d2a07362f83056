# The project's commands. `make run` serves; `make test` runs every test. Both work from a clean clone:
# they install what they need (system packages, ONNX Runtime from PyPI, Python test tools) and build the models.
# One build profile (release) is used for everything so nothing is compiled twice.

SHELL := /bin/bash
CARGO ?= cargo
PROFILE := --release
ORT_FLAVOR ?= cpu
ORT_LIB := $(CURDIR)/.cache/ort/$(ORT_FLAVOR)/libonnxruntime.so.1.31.1
export ORT_DYLIB_PATH ?= $(ORT_LIB)
MODELS_DIR ?= models
SEED ?= 20180908
DEVICE ?= cpu
# Every target builds with the one cargo invocation `make test` needs (`cargo test --workspace --no-run`) and runs
# the binaries it leaves in the target dir: cargo unifies dependency features per invocation, so `cargo run -p X`
# would build Burn and dicom-rs a second time with other features.
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)
BIN := $(TARGET_DIR)/release

.PHONY: all setup ort ort-gpu build models run test test-rust test-python bench clean help

all: build

help:
	@echo "make run        serve both models on 127.0.0.1:8080 (builds the models first)"
	@echo "make test       run every test (Rust + Python model checks)"
	@echo "make models     export the seeded color and gray Inception-V3 to $(MODELS_DIR)/ (FP32 + FP16)"
	@echo "make ort-gpu    fetch onnxruntime-gpu for DEVICE=cuda"
	@echo "make bench      benchmark: raw ONNX Runtime vs cxr-serve vs a Python server (BENCH_ARGS=--quick: 1-2 min)"

setup:
	@scripts/setup-system.sh

ort: setup
	@scripts/setup-ort.sh $(ORT_FLAVOR) >/dev/null

ort-gpu:
	@scripts/setup-ort.sh gpu

build: setup
	$(CARGO) test $(PROFILE) --workspace --no-run

# Deterministic: the same seed writes byte-identical files. Cheap, so it always runs. Writes the FP32 files and
# their FP16 twins (`<name>.fp16.onnx`, for `--precision fp16` on a GPU); EXPORT_FP16=0 writes FP32 only.
EXPORT_FP16 ?= 1
models: build
	$(BIN)/cxr-train export --variant both --seed $(SEED) --out $(MODELS_DIR) $(if $(filter 1,$(EXPORT_FP16)),--fp16)

run: ort models
	$(BIN)/cxr-serve --models $(MODELS_DIR) --device $(DEVICE)

test: test-rust test-python

test-rust: ort models
	@scripts/setup-system.sh --with-promtool
	$(CARGO) test $(PROFILE) --workspace --no-fail-fast

test-python: ort models
	@py=$$(scripts/setup-python.sh) && $$py tests/python/check_models.py $(MODELS_DIR) && \
	  $$py tests/python/check_deploy.py && \
	  $$py tests/python/oip_tritonclient.py --server $(BIN)/cxr-serve --models $(MODELS_DIR) --ort-dylib $(ORT_DYLIB_PATH) && \
	  tests/python/schemathesis.sh $$py $(BIN)/cxr-serve $(MODELS_DIR) $(ORT_DYLIB_PATH)

# The benchmark (BENCHMARKS.md), not a test: raw ONNX Runtime vs cxr-serve vs the Python reference server, for
# both models. About 4-8 minutes on 2 cores; `make bench BENCH_ARGS=--quick` is a 1-2 minute smoke run. On a GPU:
# `make ort-gpu && make bench ORT_FLAVOR=gpu DEVICE=cuda`. Results go to bench-results/ (git-ignored).
BENCH_ARGS ?=
bench: ort models
	@py=$$(scripts/setup-bench-python.sh $(ORT_FLAVOR) | tail -n1) && \
	  $(BIN)/cxr-bench --models $(MODELS_DIR) --device $(DEVICE) \
	  --python "$$py" $(BENCH_ARGS)

clean:
	$(CARGO) clean
	rm -f $(MODELS_DIR)/*.onnx $(MODELS_DIR)/*.json
