# sentry: see README.md. `make demo` and `make test` are all a newcomer needs.
GO       ?= go
PKGS     := ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/mirrorsentry/sentry/sentry.Version=$(VERSION)
FUZZTIME ?= 30s

.PHONY: all build test lint demo fuzz bench clean

all: lint build test

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/sentry ./cmd/sentry

# Every test, against real PostgreSQL clusters the tests start themselves
# (or SENTRY_TEST_DATABASE_URL). Fuzz seed corpora run here too.
test:
	$(GO) test -race -count=1 -timeout 9m $(PKGS)

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
	$(GO) test ./sentry -run '^$$' -fuzz FuzzParseConfig -fuzztime $(FUZZTIME) -fuzzminimizetime 5s

clean:
	rm -rf bin
