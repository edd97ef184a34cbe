# anycastdns — build, test, lint, fuzz, bench, run, demo.
GO        ?= go
BIN       := bin
FUZZTIME  ?= 20s
export GOTOOLCHAIN := local
# The version comes from the build information (internal/version): the
# module's pseudo-version and VCS revision, stamped by the go command in a
# git checkout (-buildvcs=auto overrides a GOFLAGS=-buildvcs=false). The go
# command stamps nothing in a git worktree, so the revision is also passed
# at link time, used only when the build information has none.
REVISION  := $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X github.com/anycastdns/anycastdns/internal/version.revision=$(REVISION)

.PHONY: all build test test-short lint vet fuzz bench bench-mem bench-change bench-api bench-sign run demo deb clean

all: build

build:
	$(GO) build -buildvcs=auto -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

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
	$(GO) test -run XXX -bench . -benchmem ./internal/dnsserver/ ./internal/wire/ ./internal/dnstap/
	$(GO) run ./bench/dnsbench -nice -20 -anycastd-bin $(BIN)/anycastd

# Load time and peak memory on a 1,000,000-name zone beside NSD and Knot.
bench-mem: build
	$(GO) run ./bench/dnsbench -mem -nice -20 -anycastd-bin $(BIN)/anycastd

# One-record changes on a 1,000,000-name zone (issue 11): anycastd standalone
# through its REST API beside Knot through knotc; API latency, time until the
# change is answered, memory, and the issue's targets. Flags for the tool in
# BENCH_CHANGE_FLAGS, e.g. BENCH_CHANGE_FLAGS="-names 500000 -strict".
BENCH_CHANGE_FLAGS ?=
bench-change: build
	$(GO) run ./bench/changebench -anycastd-bin $(BIN)/anycastd $(BENCH_CHANGE_FLAGS)

# Throughput of API writes (issue 17): anycastd control on SQLite and on a
# PostgreSQL started with fsync on, 1 and 8 writers of one-record changes;
# changes/s and PUT latency. Flags in BENCH_API_FLAGS, e.g. "-duration 30s".
BENCH_API_FLAGS ?=
bench-api: build
	$(GO) run ./bench/apibench -anycastd-bin $(BIN)/anycastd $(BENCH_API_FLAGS)

# Signing a 1,000,000-name zone whole (issue 16): anycastd control through its
# API (enable signing, until it answers) beside Knot (knotc zone-sign, until the
# new serial is served), alternating runs; time, CPU, peak RSS, load average.
# Flags in BENCH_SIGN_FLAGS, e.g. "-runs 3" or "-names 100000".
BENCH_SIGN_FLAGS ?=
bench-sign: build
	$(GO) run ./bench/signbench -anycastd-bin $(BIN)/anycastd $(BENCH_SIGN_FLAGS)

# The embedded default: control plane (API on 127.0.0.1:8080, token in
# anycastdns-data/api.token) and one node on 127.0.0.1:5353 serving example.com.
# Everything lives in ./anycastdns-data. Then, for example:
#   bin/anycastctl dig -server 127.0.0.1:5353 www.example.com
#   bin/anycastctl zone list -api http://127.0.0.1:8080 -token-file anycastdns-data/api.token
# SIGHUP (kill -HUP) re-reads the token file.
run: build
	$(BIN)/anycastd standalone -data anycastdns-data

# The anycast lab demo (Linux, root): three regions with BIRD 2 routers, a PoP
# running anycastd in each, clients; catchment, latency, drain, crash, hang;
# then, on the steering lab (monitors reporting to a control plane that sets
# the PoPs' levels), gray-failure and overload.
demo: build
	@command -v bird >/dev/null 2>&1 && command -v nft >/dev/null 2>&1 || \
	  { echo "installing bird2 nftables iproute2"; apt-get update -qq && apt-get install -y -qq bird2 nftables iproute2; }
	$(BIN)/anycastlab demo -anycastd $(BIN)/anycastd

# The Debian package (nfpm, a tool of tools/go.mod): static binaries, the
# systemd units, the configuration under /etc/anycastd (conffiles), man
# pages and bash completions rendered from the binaries' -help
# (packaging/gendocs), and a postinst that makes the anycastd user.
# DEB_VERSION: the commit's date and revision unless given. DEB_CGO=1
# builds with cgo (for this machine's architecture), which signing.pkcs11
# (keys in a PKCS#11 token) needs; the default static build refuses it.
DEB_VERSION ?= 0.0~git$(shell git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null).$(shell git rev-parse --short=12 HEAD 2>/dev/null)
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
DEB_CGO     ?= 0
DEB_DIR     := $(BIN)/deb
DEB         ?= $(BIN)/anycastdns_$(DEB_VERSION)_$(DEB_ARCH).deb
deb:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/bin
	CGO_ENABLED=$(DEB_CGO) GOARCH=$(DEB_ARCH) $(GO) build -trimpath -buildvcs=auto -ldflags "-s -w $(LDFLAGS)" -o $(DEB_DIR)/bin/ ./cmd/anycastd ./cmd/anycastctl ./cmd/anycastlab
	$(GO) run ./packaging/gendocs -bin $(DEB_DIR)/bin -out $(DEB_DIR)/docs -version $(DEB_VERSION) \
	  -date $$(git log -1 --format=%cd --date=format:%Y-%m-%d 2>/dev/null || date -u +%Y-%m-%d)
	gzip -9n $(DEB_DIR)/docs/man/*
	DEB_VERSION=$(DEB_VERSION) GOARCH=$(DEB_ARCH) BIN_DIR=$(DEB_DIR)/bin DOCS_DIR=$(DEB_DIR)/docs \
	  $(GO) tool -modfile=tools/go.mod nfpm package -f packaging/nfpm.yaml -p deb -t $(DEB)
	@echo "built $(DEB)"

clean:
	rm -rf $(BIN)
