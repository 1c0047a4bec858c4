# Static binaries of signald and peer for a Box: Linux on amd64, arm64
# (Raspberry Pi 3/4/5 with a 64-bit OS) and armv7 (32-bit Raspberry Pi OS).
#   make            all three into dist/
#   make arm64      one target
#   make sizes      what each binary weighs
# CGO is off: the binaries need no libc and run on any of those systems.

GO      ?= go
DIST    ?= dist
CMDS    := $(notdir $(wildcard cmd/*))
LDFLAGS := -s -w
FLAGS   := -trimpath -ldflags='$(LDFLAGS)'

.PHONY: all amd64 arm64 armv7 sizes clean
all: amd64 arm64 armv7

amd64:
	$(MAKE) build GOARCH=amd64 SUFFIX=linux-amd64
arm64:
	$(MAKE) build GOARCH=arm64 SUFFIX=linux-arm64
armv7:
	$(MAKE) build GOARCH=arm GOARM=7 SUFFIX=linux-armv7

.PHONY: build
build:
	@mkdir -p $(DIST)
	@for c in $(CMDS); do \
	  echo "$$c-$(SUFFIX)"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) GOARM=$(GOARM) $(GO) build $(FLAGS) -o $(DIST)/$$c-$(SUFFIX) ./cmd/$$c || exit 1; \
	done

sizes:
	@ls -l $(DIST) | awk 'NR>1 {printf "%-28s %6.1f MiB\n", $$9, $$5/1048576}'

clean:
	rm -rf $(DIST)

# Every table and plot of docs/benchmarks.md, measured again and written
# there: the tracker against bittorrent-tracker 9.19.0, STUN/TURN against
# coturn 4.6.1, the tracker's micro-benchmarks. As root (STUN/TURN run in a
# network namespace), with coturn and node installed:
#   sudo make bench
.PHONY: bench
bench:
	bash testdata/clients/install.sh
	$(GO) run ./loadtest all -out docs/bench -doc docs/benchmarks.md
