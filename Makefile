# Cairn: thin targets over cargo and scripts/. See README.md.
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 8080
MODEL := all-minilm-l6-v2
MODEL_SRC := models/src/all-MiniLM-L6-v2
BUNDLES := models/$(MODEL)-f32.gguf models/$(MODEL)-q8_0.gguf models/$(MODEL)-q4_0.gguf
CLI := target/debug/cairn
RELEASE_CLI := target/release/cairn
WASM_TEST_ENV := CHROMEDRIVER=$${CHROMEDRIVER:-/usr/bin/chromedriver} \
	WASM_BINDGEN_TEST_TIMEOUT=$${WASM_BINDGEN_TEST_TIMEOUT:-300} \
	NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

.PHONY: all test test-native test-wasm lint model demo bench-encode clean FORCE

all: model

# The CLI in the dev profile (dependencies optimised, see Cargo.toml): shared with the tests.
$(CLI): FORCE
	$(CARGO) build --features cli --bin cairn

$(RELEASE_CLI): FORCE
	$(CARGO) build --release --features cli --bin cairn

$(MODEL_SRC)/model.safetensors:
	scripts/fetch-model.sh

models/$(MODEL)-%.gguf: $(MODEL_SRC)/model.safetensors | $(CLI)
	$(CLI) model convert $(MODEL_SRC) --out $@ --quant $*

# Native vectors of the parity fixture: the browser test checks it reproduces them.
models/parity-native-%.jsonl: models/$(MODEL)-%.gguf tests/fixtures/parity/sentences.json | $(CLI)
	python3 -c 'import json,sys; [print(s) for s in json.load(open(sys.argv[1]))["sentences"]]' \
		tests/fixtures/parity/sentences.json | $(CLI) embed --model $< --role query > $@.tmp
	mv $@.tmp $@

model: $(CLI) $(BUNDLES) models/parity-native-q8_0.jsonl models/parity-native-q4_0.jsonl

lint: model
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --features cli -- -D warnings
	$(CARGO) clippy --target wasm32-unknown-unknown --all-targets -- -D warnings

test-native: model
	$(CARGO) test --features cli

test-wasm: model
	$(WASM_TEST_ENV) $(CARGO) test --target wasm32-unknown-unknown --test wasm_parity

# The README's test command: lint, native tests, and the wasm tests in headless Chromium.
test: lint test-native test-wasm

demo:
	scripts/serve.sh www $(PORT)

bench-encode: $(RELEASE_CLI) $(BUNDLES)
	$(RELEASE_CLI) bench encode --model models/$(MODEL)-f32.gguf --model models/$(MODEL)-q8_0.gguf \
		--model models/$(MODEL)-q4_0.gguf --write BENCHMARKS.md

clean:
	$(CARGO) clean
	rm -rf models pkg
