# strata — see README.md. `make demo` and `make test` work on a fresh Debian
# machine as root: they install what they need first (scripts/deps.sh).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN     := bin/strata
DEMO_ROOT ?= /tmp/strata-demo
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build deps demo test unit e2e bench vet fmt clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/strata

deps:
	./scripts/deps.sh

demo: deps build
	./scripts/demo.sh $(BIN) $(DEMO_ROOT)

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w .

# Unit tests per package, then e2e tests that drive the binary, beside a
# BuildKit v0.16 daemon for the comparison test (STRATA_TEST_BUILDKIT=0: none).
test: deps build vet
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt needed"; exit 1; }
	./scripts/with-buildkit.sh $(BIN) $(GO) test -count=1 -timeout 20m ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: build
	$(GO) test -count=1 -timeout 20m -v ./e2e

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...
	REPEAT=3 ../shared/bench/run.sh $(BIN)

clean:
	rm -rf bin
