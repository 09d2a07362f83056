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

.PHONY: all setup ort ort-gpu torch build models run test test-all check test-rust test-python test-tch lint docs bench bench-train bench-pacs clean help

all: build

help:
	@echo "make run        serve both models on 127.0.0.1:8080 (builds the models first)"
	@echo "make test       run the tests (Rust + Python model checks); prints how long they took"
	@echo "make test-all   make test, then the LibTorch backend's test (a second build + a 3.3 GB PyTorch download)"
	@echo "make check      the repository checks: module layering, ARCHITECTURE.md's codemap, docs/configuration.md, function length"
	@echo "make lint       rustfmt --check, clippy -D warnings and rustdoc -D warnings (CI runs it)"
	@echo "make docs       regenerate docs/configuration.md from the binaries' --help"
	@echo "make models     export the seeded color and gray Inception-V3 to $(MODELS_DIR)/ (FP32 + FP16)"
	@echo "make ort-gpu    fetch onnxruntime-gpu for DEVICE=cuda"
	@echo "make bench      benchmark: raw ONNX Runtime vs cxr-serve vs a Python server (BENCH_ARGS=--quick: 1-2 min)"
	@echo "make bench-train  benchmark: Inception-V3 training img/s, Burn flex and tch vs PyTorch, same settings"
	@echo "make bench-pacs   benchmark: STOW-RS intake to results in a real Orthanc, beside /predict (~1 min)"
	@echo "make torch      PyTorch 2.9.0 from PyPI into .cache/torch-venv (the tch backend and the PyTorch comparison)"

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

# `make test` is what a newcomer runs: the workspace build and every test of it. The LibTorch training backend
# needs a second build of cxr-train (another feature set, ~8 min on 2 cores) and a 3.3 GB PyTorch download, so its
# test is in `make test-all`, which CI (`.ci/run`) runs.
test:
	@start=$$(date +%s); $(MAKE) --no-print-directory check test-rust test-python && \
	  echo "make test: passed in $$(( $$(date +%s) - start )) s"

test-all: test test-tch

# The repository checks (xtask/): the module layering and the codemap of ARCHITECTURE.md, docs/configuration.md
# against the binaries' --help, and no function over 100 lines in src/, engine/, core/, training/src/, xtask/
# (bench/ only with a reason on xtask's allow-list).
check: build
	$(BIN)/xtask check

test-rust: ort models
	@scripts/setup-system.sh --with-promtool
	$(CARGO) test $(PROFILE) --workspace --no-fail-fast

test-python: ort models
	@scripts/setup-system.sh --with-pacs
	@py=$$(scripts/setup-python.sh) && $$py tests/python/check_models.py $(MODELS_DIR) && \
	  $$py tests/python/check_deploy.py && \
	  $$py tests/python/oip_tritonclient.py --server $(BIN)/cxr-serve --models $(MODELS_DIR) --ort-dylib $(ORT_DYLIB_PATH) && \
	  $$py tests/python/check_pacs.py --server $(BIN)/cxr-serve --models $(MODELS_DIR) --ort-dylib $(ORT_DYLIB_PATH) && \
	  tests/python/schemathesis.sh $$py $(BIN)/cxr-serve $(MODELS_DIR) $(ORT_DYLIB_PATH)

torch:
	@scripts/setup-torch.sh >/dev/null

# The LibTorch training backend (`--features tch`): its own test, built against the PyPI wheel's libtorch. The
# feature is not in the workspace build (that would make every binary need libtorch at run time), so this is a
# second cargo invocation; it replaces target/release/cxr-train with the tch build while it runs, and the last
# line puts the workspace build back (cargo re-links a fresh binary into place in under a second).
TCH_ENV = eval "$$(scripts/setup-torch.sh --env)"
test-tch: torch ort
	$(TCH_ENV) && $(CARGO) test $(PROFILE) -p cxr-train --features tch --test backend_tch --no-fail-fast
	$(CARGO) test $(PROFILE) --workspace --no-run

# Training throughput (BENCHMARKS.md "Training"), not a test: Burn `flex` and Burn `tch` on this machine's CPUs
# beside PyTorch eager at the same settings, in one run, both variants at 299², batch 8 and 32.
# TRAIN_BENCH_ARGS adds `cxr-train bench` flags (e.g. `--steps 4`).
TRAIN_BENCH_ARGS ?=
bench-train: torch
	@mkdir -p bench-results
	$(TCH_ENV) && $(CARGO) test $(PROFILE) -p cxr-train --features tch --test backend_tch --no-run && \
	  for d in flex tch; do $(BIN)/cxr-train bench --device $$d --batch-sizes 8,32 --input-size 299 --no-loader \
	    --compare-pytorch "$$(scripts/setup-torch.sh)" --json bench-results/train-$$d.json $(TRAIN_BENCH_ARGS) || exit 1; done && \
	  $(BIN)/cxr-train bench --no-training --workers 1 && $(BIN)/cxr-train bench --no-training
	$(CARGO) test $(PROFILE) --workspace --no-run

# The benchmark (BENCHMARKS.md), not a test: raw ONNX Runtime vs cxr-serve vs the Python reference server, for
# both models. About 4-8 minutes on 2 cores; `make bench BENCH_ARGS=--quick` is a 1-2 minute smoke run. On a GPU:
# `make ort-gpu && make bench ORT_FLAVOR=gpu DEVICE=cuda`. Results go to bench-results/ (git-ignored).
BENCH_ARGS ?=
bench: ort models
	@py=$$(scripts/setup-bench-python.sh $(ORT_FLAVOR) | tail -n1) && \
	  $(BIN)/cxr-bench --models $(MODELS_DIR) --device $(DEVICE) \
	  --python "$$py" $(BENCH_ARGS)

# The DICOMweb benchmark (BENCHMARKS.md "DICOMweb"), not a test: STOW-RS intake → SR and Secondary Capture in a real
# Orthanc at concurrency 1 and saturated, beside /predict on the same files, in one run. PACS_BENCH_ARGS adds
# bench/python/pacs_bench.py flags (e.g. `--seconds 5`).
PACS_BENCH_ARGS ?=
bench-pacs: ort models
	@scripts/setup-system.sh --with-pacs
	@py=$$(scripts/setup-python.sh) && $$py bench/python/pacs_bench.py --server $(BIN)/cxr-serve --models $(MODELS_DIR) \
	  --ort-dylib $(ORT_DYLIB_PATH) $(PACS_BENCH_ARGS)

# The lint gates CI runs after the tests (clippy reuses the release build's dependencies).
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy $(PROFILE) --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc $(PROFILE) --no-deps --workspace

# The option reference: docs/configuration.md is the binaries' --help (clap's long help), written by their unit
# tests when CXR_UPDATE_DOCS is set; without it, the same tests fail when the file is out of date (`xtask docs`,
# part of `make check`, runs them that way).
docs:
	CXR_UPDATE_DOCS=1 $(CARGO) test $(PROFILE) --workspace --lib the_configuration_reference_is_the_help

clean:
	$(CARGO) clean
	rm -f $(MODELS_DIR)/*.onnx $(MODELS_DIR)/*.json
