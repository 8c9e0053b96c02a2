# Armory's entry points. `make test` is what CI runs (through .ci/run): it
# builds or installs everything it needs itself.

GO ?= go
# Go test flags; e.g. make test TESTFLAGS='-run TestExamples -v'
TESTFLAGS ?=

.PHONY: all build generate verify lint test test-unit k8s-binaries clean help

all: build

help:
	@echo "make build      build bin/armory"
	@echo "make generate   regenerate generated/, deepcopy and deploy/crds from apis/"
	@echo "make verify     fail if generated code or CRDs are stale"
	@echo "make lint       gofmt, go vet, and the product's dependency rules"
	@echo "make test       verify + lint + every test, against a real kube-apiserver"

build:
	$(GO) build -o bin/armory .

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

test: verify lint k8s-binaries
	KUBEBUILDER_ASSETS="$$(scripts/k8s-binaries.sh)" $(GO) test -count=1 -timeout 20m $(TESTFLAGS) ./...

clean:
	rm -rf bin
