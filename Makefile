# rms: the two commands a newcomer needs are `make run` and `make test`.
CARGO ?= cargo
# The library crates (crates/*): what an app embeds, documented with deny(missing_docs).
LIBRARIES = -p rms-domain -p rms-storage -p rms-sync -p rms-security -p rms-transport -p rms-hq

.PHONY: run test browser postgres hq lint fmt bench sim sim-long fuzz conformance

## run: a complete single-device store on 127.0.0.1:7878, data in ./rms-data
run:
	$(CARGO) run --release -p rms-node --

## test: every crate's tests, including the multi-process ones and the status page in a browser,
## then the embedding example (examples/embedded-till) run to its end
test: browser postgres
	$(CARGO) test --workspace
	$(CARGO) run -q -p embedded-till

## browser: Debian's chromium for the status page's browser test, installed when missing (as root)
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## postgres: Debian's PostgreSQL server for the head-office tests and `make hq`, installed when
## missing (as root); the tests start a throwaway cluster of their own on a Unix socket
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

## hq: a local head office (rms-hq) on 127.0.0.1:7880, its PostgreSQL cluster and admin token in
## ./hq-data (see docs/HQ.md)
hq: postgres
	$(CARGO) build --release -p rms-hq-bin
	./scripts/hq-local.sh target/release/rms-hq

## lint: formatting, clippy and the API docs (broken links and undocumented items fail), as CI
## runs them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps $(LIBRARIES)

fmt:
	$(CARGO) fmt --all

## bench: the quick benchmark set against a release build; summary in target/bench/summary.json
bench: postgres
	$(CARGO) build --release -p rms-node -p rms-bench -p rms-hq-bin
	./target/release/rms-bench --node target/release/rms-node --hq target/release/rms-hq

## sim: the deterministic simulator; RMS_SIM_SEEDS=N seeds (default 1000, as `make test` runs),
## from RMS_SIM_SEED_BASE+1 (default 0); RMS_SIM_SEED=S replays one
sim:
	$(CARGO) test --release -p rms-tests --test it sim:: -- --nocapture

## sim-long: 10 000 seeds (about 20 minutes on two cores), what any change to rms-sync, the driver
## or its step runs before it is called done; RMS_SIM_SEED_BASE=10000 runs the next 10 000
sim-long:
	RMS_SIM_SEEDS=10000 $(CARGO) test --release -p rms-tests --test it sim:: -- --nocapture

## fuzz: every fuzz target (wire decoder, REST routes, sync core as master and as client) for
## RMS_FUZZ_SECONDS each (default 600), release build; RMS_FUZZ_SEED=S starts from another seed
RMS_FUZZ_SECONDS ?= 600
fuzz:
	RMS_FUZZ_SECONDS=$(RMS_FUZZ_SECONDS) $(CARGO) test --release -p rms-tests --test it fuzz:: -- --nocapture --test-threads 4

## conformance: start a node and run schemathesis (from PyPI, into target/conformance-venv)
## against docs/openapi.yaml: no 5xx, no undocumented status, no response that breaks the schema
conformance:
	$(CARGO) build -p rms-node
	./scripts/conformance.sh target/debug/rms-node
