# ownid_sessions: build Caddy with this module, run it, test it.
SHELL := /bin/bash
#
#   make run    build Caddy with the module (xcaddy) and serve Caddyfile.example
#   make test   gofmt, go vet and every test, with the race detector
#   make fuzz   explore each fuzz target for LONG_FUZZTIME
#   make build  only build ./bin/caddy

CADDY_VERSION  ?= v2.11.9
XCADDY_VERSION ?= v0.4.5
MODULE         := github.com/ownid-sessions/caddy-ownid-sessions

# xcaddy is installed into the repository, at the pinned version, from the Go
# module proxy.
TOOLS  := $(CURDIR)/.bin
XCADDY := $(TOOLS)/xcaddy-$(XCADDY_VERSION)
CADDY  := $(CURDIR)/bin/caddy
# The HMAC secret make run uses when OWNID_JWT_SECRET is not set.
DEV_SECRET := $(CURDIR)/.ownid-dev-secret

GO_SOURCES := $(wildcard *.go */*.go */*/*.go) go.mod go.sum $(wildcard openapi/*)

.PHONY: run build test bench fuzz

# A target of another package is written <package>:<target>.
FUZZ_TARGETS := FuzzServeHTTP FuzzBearerToken FuzzCaddyfile FuzzParseJSON FuzzRawTarget ./store/memory:FuzzIDKey
# How long make fuzz explores each target.
LONG_FUZZTIME ?= 5m

run: $(CADDY)
	@if [ -z "$$OWNID_JWT_SECRET" ] && [ ! -s $(DEV_SECRET) ]; then \
		(umask 077; head -c 32 /dev/urandom | base64 > $(DEV_SECRET)); \
		echo "OWNID_JWT_SECRET is not set: made a development secret in .ownid-dev-secret"; \
	fi
	OWNID_JWT_SECRET="$${OWNID_JWT_SECRET:-$$(cat $(DEV_SECRET))}" \
		$(CADDY) run --config Caddyfile.example --adapter caddyfile

build: $(CADDY)

$(CADDY): $(XCADDY) $(GO_SOURCES)
	$(XCADDY) build $(CADDY_VERSION) --output $(CADDY) --with $(MODULE)@v0.0.0=$(CURDIR)

$(XCADDY):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install github.com/caddyserver/xcaddy/cmd/xcaddy@$(XCADDY_VERSION)
	mv $(TOOLS)/xcaddy $(XCADDY)

# The end-to-end tests run a real Caddy inside the test binary; Caddy keeps
# its autosave and storage under the XDG directories, so those point at a
# throwaway directory. -trimpath must not be used: caddytest would skip.
# go test replays the fuzz seed corpora in testdata/fuzz as plain tests; it
# does not explore (make fuzz does), so the result depends only on the tree.
test:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	go vet ./...
	@tmp=$$(mktemp -d); \
	XDG_CONFIG_HOME=$$tmp/config XDG_DATA_HOME=$$tmp/data go test -race -count=1 ./...; \
	rc=$$?; rm -rf $$tmp; exit $$rc

# Native Go fuzzing of each target in turn (the seed corpora are in
# testdata/fuzz and also run as plain tests). A failing input is written to
# testdata/fuzz/<target>/ for go test to replay: commit it with the fix.
# Inputs that only widen coverage stay in Go's build cache.
fuzz:
	@echo "a failing input is written to testdata/fuzz/<target>/; inputs that widen coverage go to $$(go env GOCACHE)/fuzz"
	@for target in $(FUZZ_TARGETS); do \
		pkg=.; case $$target in *:*) pkg=$${target%%:*}; target=$${target#*:};; esac; \
		echo "fuzzing $$target in $$pkg for $(LONG_FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(LONG_FUZZTIME) $$pkg 2>&1 | grep -v -e '^{"level"' -e '^fuzz: elapsed'; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

# Go benchmarks of the hot path (ns/op, allocs/op), then the load benchmark
# against Caddy's own respond and reverse_proxy (bench/load.sh).
bench: $(CADDY)
	go test -run '^$$' -bench . -benchmem ./...
	bench/load.sh $(CADDY)
