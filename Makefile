# anycastdns — build, test, lint, fuzz, bench, run, demo.
GO        ?= go
BIN       := bin
FUZZTIME  ?= 20s
export GOTOOLCHAIN := local

.PHONY: all build test test-short lint vet fuzz bench run demo clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# The README's test command and what CI runs: unit, fuzz-seed, end-to-end
# (Knot differential; root-only netns tests run when root and fail in CI when
# they cannot).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

test-short:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...

lint:
	$(GO) tool -modfile=tools/go.mod golangci-lint run ./...

# Runs every fuzz target for FUZZTIME each (bounded): every parser of
# outside input (packets, zone files, configuration, API JSON, transfers).
fuzz:
	@set -e; for t in $$($(GO) list ./... | while read p; do \
	    for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz' || true); do echo "$$p:$$f"; done; done); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$fn ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run XXX -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; done

# Go micro-benchmarks, then dnsperf against anycastd, NSD and Knot.
bench: build
	$(GO) test -run XXX -bench . -benchmem ./internal/dnsserver/ ./internal/wire/
	$(GO) run ./bench/dnsbench -anycastd-bin $(BIN)/anycastd

# The embedded default: control plane (API on 127.0.0.1:8080, token in
# anycastdns-data/api.token) and one node on 127.0.0.1:5353 serving example.com.
run: build
	$(BIN)/anycastd standalone -data anycastdns-data

clean:
	rm -rf $(BIN)
