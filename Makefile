# The two commands of the README: `make up` and `make test`.
# LDFLAGS must equal localcluster.LDFlags (a unit test checks it): without the
# version the API server reports v0.0.0 and kubectl and Helm refuse it.
LDFLAGS := -X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean
GO ?= go
# Every build uses Go 1.27.3 (the go command fetches it from the module
# proxy the first time): go.mod requires it, and 1.26's standard library
# has called vulnerabilities (make vulncheck fails on them).
export GOTOOLCHAIN := go1.27.3

.PHONY: build up test vet controlplane clean faults fuzz vulncheck image deploy generate

build: bin/mlcd controlplane

bin/mlcd: FORCE
	$(GO) build -o bin/mlcd ./cmd/mlcd

controlplane:
	cd controlplane && $(GO) build -ldflags "$(LDFLAGS)" -o ../bin/mlcd-controlplane .

# mlcd up, compiled first with a running count of packages (a first build
# compiles for minutes); flags through ARGS, e.g. make up ARGS="--repo URL".
up:
	@rm -f bin/mlcd; echo "compiling mlcd with $(GOTOOLCHAIN) (a first build: a few minutes) ..."; \
	$(GO) build -v -o bin/mlcd ./cmd/mlcd 2>&1 | awk '/^#|:/ {print; next} {n++; if (n % 100 == 0) printf "  %d packages compiled\n", n; fflush()}'; \
	test -x bin/mlcd && exec bin/mlcd up $(ARGS)

vet:
	$(GO) vet ./...
	cd controlplane && $(GO) vet ./...

# The control plane is built first so no test binary waits for it under its
# own timeout; tests then use it through MLCD_CONTROLPLANE.
test: controlplane vet
	MLCD_CONTROLPLANE=$(CURDIR)/bin/mlcd-controlplane $(GO) test -timeout 30m -count=1 ./...

# The fault matrix alone (it also runs in `make test`), verbose: each test
# logs its fault, rounds, objects lost and time to converge.
faults: controlplane
	MLCD_CONTROLPLANE=$(CURDIR)/bin/mlcd-controlplane $(GO) test -timeout 30m -count=1 -v -run . ./internal/faults/ | grep -E '^(---|ok|FAIL)|fault:'

# Each fuzz target for FUZZTIME (CI: 10s; a longer local run: FUZZTIME=10m).
FUZZTIME ?= 10s
FUZZ_TARGETS := FuzzJoin:./internal/source FuzzChartVersion:./internal/source FuzzFilter:./internal/registry FuzzPush:./internal/webhook FuzzParse:./internal/manifest FuzzParseImage:./internal/render
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  name=$${t%%:*}; pkg=$${t#*:}; \
	  echo "== $$name ($$pkg, $(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# govulncheck on both modules against a vulnerability database built
# offline from the golang.org/x/vulndb module (no vuln.go.dev here); fails
# on a called vulnerable symbol in a module (see hack/vulncheck).
vulncheck:
	$(GO) run ./hack/vulncheck

# The container image, without Docker: an OCI layout in dist/mlcd-oci.
image:
	$(GO) run ./hack/image -o dist/mlcd-oci

# The API types' deep copies (api/v1alpha1/zz_generated.deepcopy.go) from
# the +kubebuilder markers; TestDeepCopy fails when they are stale.
generate:
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 object paths=./api/...

# deploy/'s generated files (CRDs, the Kustomize base) from the chart.
deploy:
	$(GO) run ./hack/gendeploy

clean:
	rm -rf bin dist

FORCE:
