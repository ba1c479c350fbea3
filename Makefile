# sentry: see README.md. `make demo` and `make test` are all a newcomer needs.
GO       ?= go
PKGS     := ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/mirrorsentry/sentry/sentry/config.Version=$(VERSION)
FUZZTIME ?= 30s
# pipefail: `make test` fails when go test does, whatever its summary says.
SHELL    := /bin/bash

.PHONY: all build test lint demo fuzz bench clean

all: lint build test

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/sentry ./cmd/sentry

# Every test, against real PostgreSQL clusters the tests start themselves
# (or SENTRY_TEST_DATABASE_URL). Fuzz seed corpora run here too. The output
# is go test's, less the output of passing tests, and ends with every test
# skipped and why (a test needing Chromium, nginx or promtool skips outside
# CI when it is missing; in CI it fails).
test:
	@set -o pipefail; $(GO) build -o bin/testsum ./internal/testkit/testsum && \
	$(GO) test -race -count=1 -timeout 9m -json $(PKGS) | bin/testsum

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# The whole job on a throwaway local setup.
demo: build
	./bin/sentry demo

# Each fuzz target for FUZZTIME.
fuzz:
	$(GO) test ./sentry/manifest -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./sentry/hook -run '^$$' -fuzz FuzzReleaseHook -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./sentry/configfuzz -run '^$$' -fuzz FuzzParseConfig -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./sentry/internal/dburl -run '^$$' -fuzz FuzzCheck -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./sentry/store -run '^$$' -fuzz FuzzPasswordNeverPrinted -fuzztime $(FUZZTIME) -fuzzminimizetime 5s

# Benchmarks (never part of `make test`): the micro-benchmarks of the hot
# paths, then every figure of BENCHMARKS.md against a limit measured in the
# same run (a throwaway PostgreSQL, load farms in child processes). Writes
# BENCHMARKS.md; about 4 minutes on 2 cores.
BENCHTIME ?= 300ms
bench: build
	$(GO) build -o bin/sentry-bench ./internal/bench/cmd/sentry-bench
	@echo "micro-benchmarks (go test -bench, $(BENCHTIME) each)…"
	@( $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./checks ./sentry/manifest ./sentry/store && \
	   $(GO) test -run '^$$' -bench RecorderAdd -benchmem -benchtime $(BENCHTIME) ./sentry/record ) 2>&1 | \
	   grep -E '^(pkg:|Benchmark|FAIL|---)' > bin/micro-bench.txt || echo "micro-benchmarks failed" >> bin/micro-bench.txt
	@cat bin/micro-bench.txt
	./bin/sentry-bench -sentry bin/sentry -out BENCHMARKS.md -micro bin/micro-bench.txt

clean:
	rm -rf bin
