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

# Runs every fuzz target for FUZZTIME each (bounded).
fuzz:
	$(GO) test -run XXX -fuzz '^FuzzHandle$$' -fuzztime $(FUZZTIME) ./internal/dnsserver/
	$(GO) test -run XXX -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/zone/
	$(GO) test -run XXX -fuzz '^FuzzReadName$$' -fuzztime $(FUZZTIME) ./internal/wire/
	$(GO) test -run XXX -fuzz '^FuzzParseNode$$' -fuzztime $(FUZZTIME) ./internal/config/

# Go micro-benchmarks, then dnsperf against anycastd, NSD and Knot.
bench: build
	$(GO) test -run XXX -bench . -benchmem ./internal/dnsserver/ ./internal/wire/
	$(GO) run ./bench/dnsbench -anycastd-bin $(BIN)/anycastd

# A single node on 127.0.0.1:5353 with the example zone.
run: build
	$(BIN)/anycastd node -listen 127.0.0.1:5353 -listen '[::1]:5353' -zone example.com.=zones/example.com.zone -metrics 127.0.0.1:9153

clean:
	rm -rf $(BIN)
