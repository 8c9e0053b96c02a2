# Armory's entry points. `make test` is what CI runs (through .ci/run): it
# builds or installs everything it needs itself.

GO ?= go
# Go test flags; e.g. make test TESTFLAGS='-run TestExamples -v'
TESTFLAGS ?=

.PHONY: all build generate verify lint test fuzz chaos k8s-binaries bench bench-quick demo image clean help

all: build

help:
	@echo "make demo       Armory on this machine: API server, Kafka, GCS, a Backup and a Restore"
	@echo "make build      build bin/armory"
	@echo "make image      bin/armory-image.tar: the OCI image, built without a container daemon"
	@echo "make generate   regenerate generated/, deepcopy and deploy/crds from apis/"
	@echo "make verify     fail if generated code or CRDs are stale"
	@echo "make lint       gofmt, go vet, and the product's dependency rules"
	@echo "make test       verify + lint + every test, against a real kube-apiserver"
	@echo "make bench      backup and restore throughput and memory beside kcat → docs/BENCHMARKS.md (PROFILE=dir: pprof files)"
	@echo "make bench-quick  the same on small sizes (about 2 minutes) → bin/BENCHMARKS-quick.md"
	@echo "make chaos      backup and restore kill storms, Kafka, storage and volume faults, an API-server outage, handovers; every record checked → docs/RELIABILITY.md (SEED=n replays)"
	@echo "make fuzz       every fuzz target for FUZZTIME each (default 30s; make test runs their seeds)"

# The version and commit `armory version` prints.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/kannika/armory/pkg/cmd.version=$(VERSION) -X github.com/kannika/armory/pkg/cmd.commit=$(COMMIT)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/armory .

generate:
	scripts/generate.sh

verify:
	scripts/verify.sh

lint:
	scripts/lint.sh

# Builds kube-apiserver, kubectl and etcd once into ~/.cache/armory (minutes,
# cold; instant afterwards).
k8s-binaries:
	scripts/k8s-binaries.sh

# The race detector runs on the tests and, through ARMORY_TEST_RACE, on the
# armory subprocesses they start: a race there fails the test's exit check.
test: verify lint k8s-binaries
	KUBEBUILDER_ASSETS="$$(scripts/k8s-binaries.sh)" ARMORY_TEST_RACE=1 $(GO) test -race -count=1 -timeout 20m $(TESTFLAGS) ./...

# The container image as a tarball (docker load / kind load image-archive /
# crane push), built without a daemon by scripts/image: a static armory, CA
# certificates, USER 65532, no shell.
IMAGE ?= ghcr.io/kannika/armory:$(VERSION)
IMAGE_TAR ?= bin/armory-image.tar
image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o bin/image/armory .
	cd scripts/image && $(GO) run . -binary $(abspath bin/image/armory) -tag "$(IMAGE)" -o $(abspath $(IMAGE_TAR)) \
		-version "$(VERSION)" -revision "$(COMMIT)" -arch "$$($(GO) env GOARCH)"

# The whole product on loopback until Ctrl-C (scripts/demo). DEMOFLAGS=--check
# exits after the demo's checks.
DEMOFLAGS ?=
demo: build k8s-binaries
	$(GO) build -o bin/armory-demo ./scripts/demo
	KUBEBUILDER_ASSETS="$$(scripts/k8s-binaries.sh)" bin/armory-demo --armory bin/armory $(DEMOFLAGS)

clean:
	rm -rf bin

# Throughput and memory, side by side with kcat, written to docs/BENCHMARKS.md
# (about 10 minutes). Not part of make test, which runs the same code once at
# a tiny size (scripts/bench/bench_test.go). Installs kcat from Debian if
# missing. PROFILE=dir writes each worker's CPU and allocation profiles there
# (go tool pprof -top dir/backup-volume.cpu.pprof).
PROFILE ?=
BENCHFLAGS ?=
bench: k8s-binaries
	command -v kcat >/dev/null || (apt-get update && apt-get install -y kcat)
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/segment | grep -E '^(Benchmark|goos|goarch|cpu)' > /tmp/armory-segment-bench.txt
	KUBEBUILDER_ASSETS="$$(scripts/k8s-binaries.sh)" $(GO) run ./scripts/bench -segment-bench /tmp/armory-segment-bench.txt \
		$(if $(PROFILE),-profile $(PROFILE)) $(BENCHFLAGS)

# Backups and restores under SIGKILLs, Kafka, storage and volume faults, an
# API-server outage, Lease handovers and a SIGTERM while uploads hang, every
# record checked in storage and in the restored topics, written to
# docs/RELIABILITY.md (scripts/chaos; make test runs it once, small). The
# volume scenario mounts a tmpfs: it needs root.
# SEED=n replays a run's random choices.
SEED ?= 0
chaos: k8s-binaries
	KUBEBUILDER_ASSETS="$$(scripts/k8s-binaries.sh)" $(GO) run ./scripts/chaos -seed $(SEED) $(CHAOSFLAGS)

# Every fuzz target (segment decoding, listings and object names, topic.json,
# restore windows, EventHub properties) for FUZZTIME each.
FUZZTIME ?= 30s
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench-quick: k8s-binaries
	mkdir -p bin
	command -v kcat >/dev/null || (apt-get update && apt-get install -y kcat)
	KUBEBUILDER_ASSETS="$$(scripts/k8s-binaries.sh)" $(GO) run ./scripts/bench -mib 64 -wide-topics 20 -wide-mib 40 \
		-controller-backups 100 -controller-namespaces 10 -controller-steady 15s \
		-out bin/BENCHMARKS-quick.md $(if $(PROFILE),-profile $(PROFILE)) $(BENCHFLAGS)
