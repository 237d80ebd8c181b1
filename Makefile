# Quick start: `make run` serves the production build on 127.0.0.1:5000 with an
# embedded Redis; `make test` installs what the tests need and runs them.
GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BUILD_FLAGS := -trimpath

.PHONY: build build-chaos build-slow run run-chaos test lint fuzz deps bench profile fleet clean

build:
	$(GO) build $(BUILD_FLAGS) -o bin/shopsession .

build-chaos:
	$(GO) build $(BUILD_FLAGS) -tags chaos -o bin/shopsession-chaos .

# build-slow is the bench's calibration build: production plus a known few
# microseconds of CPU a request (slowdown_on.go). Never ship it.
build-slow:
	$(GO) build $(BUILD_FLAGS) -tags benchslow -o bin/shopsession-slow .

run: build
	./bin/shopsession

run-chaos: build-chaos
	./bin/shopsession-chaos

test: deps
	$(GO) vet ./...
	$(GO) vet -tags chaos ./...
	$(GO) test -race -count=1 ./...
	$(GO) test -race -count=1 -tags chaos ./...

# bench runs Apache Bench against both builds and says whether each
# experiment's hypothesis held. BENCH_SECONDS, BENCH_CONCURRENCY, BENCH_PAIRS,
# BENCH_DELAYS, BENCH_LOAD_SECONDS, BENCH_ONLY and REDIS_URL change what it does (see docs/benchmark.md). bin/bench exits
# 0 (held), 1 (deviated) or 2 (could not run); make reports either failure as 2.
bench: deps build build-chaos build-slow
	$(GO) build -o bin/bench ./bench
	./bin/bench -prod bin/shopsession -chaos bin/shopsession-chaos -slow bin/shopsession-slow

# fleet serves a redis-server and three chaos instances on loopback ports,
# for trying `bin/shopsession-chaos ctl` by hand; it prints the addresses, the
# REDIS_URL and token to export, and example commands, and searches each
# instance as new sessions (FLEET_LOAD=false: not), for ctl run to compare
# both groups. Ctrl-C stops them all.
FLEET_LOAD ?= true
fleet: deps build-chaos
	$(GO) build -o bin/bench ./bench
	./bin/bench -fleet -chaos bin/shopsession-chaos -load=$(FLEET_LOAD)

# profile writes a CPU and an allocation profile of production under the
# bench's -c 16 load to bench/results/, and prints their top entries.
PROFILE_SECONDS ?= 10
profile: deps build
	$(GO) build -o bin/bench ./bench
	./bin/bench -profile -prod bin/shopsession -seconds $(PROFILE_SECONDS)

# fuzz runs each fuzz target for FUZZTIME: a count of inputs (Nx), by
# default, because a duration races Go 1.26's fuzz coordinator at its end
# (go.dev/issue/75804, fixed in Go 1.27): a loaded machine then fails a
# target with "context deadline exceeded" and no failing input. A duration
# (FUZZTIME=30s) still works, with that risk.
FUZZTIME ?= 100000x
fuzz: deps
	$(GO) test -run '^$$' -fuzz '^FuzzValidSessionID$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizeQuery$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeInterests$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzInterestsMatchEncodingJSON$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzSearchPageMatchesTemplate$$' -fuzztime $(FUZZTIME) .

lint:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags chaos ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags chaos ./...

# deps installs the tests' and the benchmark's programs with apt-get, only
# when they are missing: Redis, Apache Bench, Chromium for the browser tests,
# Prometheus for the experiment files' Prometheus probes, and valgrind for
# the bench's instruction counts.
deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v ab >/dev/null || missing="$$missing apache2-utils"; \
	command -v chromium >/dev/null || missing="$$missing chromium fonts-liberation"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

clean:
	rm -rf bin bench/results
