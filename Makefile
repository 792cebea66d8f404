# Driftline — the two commands a new user needs:
#   make start   install what is missing, run the whole loop on embedded defaults
#   make test    install what the tests need, start local services, run every suite
# JUNIT=1 (or CI=true, as Jenkins sets) adds JUnit XML under test-results/junit/ to every vitest run.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ARGS ?=

.PHONY: help install start test test-once test-fast test-external lint sast typecheck test-deps services-up services-down services-status bench clean buildtestup cluster images deploy smoke teardown down vault docs-screenshots

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

node_modules/.install-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.install-stamp ## npm ci when node_modules is missing or stale

start: install ## run broker, simulator, edge, retrainer and dashboard in one process (ARGS='--scenario-file scenarios/demo.json')
	npm start -- $(ARGS)

test-deps: install ## install what the real-server suites need (Debian packages, Python venv, Groovy)
	scripts/setup/system-packages.sh
	scripts/setup/python-venv.sh
	scripts/setup/groovy.sh >/dev/null

services-up: ## start the local services the tests use (idempotent)
	scripts/services/all.sh start

services-down: ## stop the local services
	scripts/services/all.sh stop

services-status: ## show which local services run
	scripts/services/all.sh status

lint: install ## ESLint + TypeScript strict type check
	npm run lint

test-fast: install ## the suites that need no server outside the process (same as npm test)
	npm test

test-external: test-deps ## the real-server suites: start the local services, run them, stop the services
	scripts/services/all.sh start
	status=0; npm run test:external || status=$$?; scripts/services/all.sh stop; exit $$status

test: test-deps ## lint, then every suite: in-process and real-server (fuzz suites at 10,000 cases each)
	npm run lint
	FUZZ_RUNS=10000 npm test
	scripts/services/all.sh start
	status=0; npm run test:external || status=$$?; scripts/services/all.sh stop; exit $$status

docs-screenshots: test-deps ## refresh docs/dashboard-*.png from the live dashboard browser test (Chromium, embedded defaults)
	UPDATE_DOCS_SCREENSHOTS=1 npx vitest run --config vitest.external.config.ts tests/external/dashboard-live.test.ts

sast: install ## npm audit against security/audit-exceptions.json, and the ESLint security rules
	npm run sast

bench: install ## speed and quality figures (npm run bench)
	npm run bench

# ---- Deployment (Minikube, Ansible): README "Deploying", k8s/README.md, ansible/README.md ----------------
# Every target below puts the cluster's kubectl/minikube first on PATH (scripts/cluster/env.sh).
CLUSTER_ENV = eval "$$(scripts/cluster/env.sh)"
# The vault password: ANSIBLE_VAULT_PASSWORD_FILE (a file outside the repository; Jenkins binds its credential
# there) or ANSIBLE_VAULT_PASSWORD (handed to Ansible by scripts/ansible-vault-pass-from-env.sh); else the
# file scripts/vault.ts init keeps in ~/.config/driftline/vault-password, when it exists.
VAULT_ENV = if [ -z "$${ANSIBLE_VAULT_PASSWORD_FILE:-}" ] && [ -n "$${ANSIBLE_VAULT_PASSWORD:-}" ]; then \
	  export ANSIBLE_VAULT_PASSWORD_FILE="$(CURDIR)/scripts/ansible-vault-pass-from-env.sh"; \
	elif [ -z "$${ANSIBLE_VAULT_PASSWORD_FILE:-}" ] && [ -f "$${XDG_CONFIG_HOME:-$$HOME/.config}/driftline/vault-password" ]; then \
	  export ANSIBLE_VAULT_PASSWORD_FILE="$${XDG_CONFIG_HOME:-$$HOME/.config}/driftline/vault-password"; fi

test-once: ## make test, unless it already passed for this commit on this machine (clean tree; stamp in ~/.cache/driftline)
	@stamp="$${DRIFTLINE_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/driftline}/stamps/test-passed-$$(git rev-parse HEAD)"; \
	if [ -z "$$(git status --porcelain)" ] && [ -f "$$stamp" ]; then \
	  echo "make test already passed for commit $$(git rev-parse --short HEAD) on this machine ($$stamp): not run again"; \
	else \
	  $(MAKE) --no-print-directory test && \
	  if [ -z "$$(git status --porcelain)" ]; then mkdir -p "$$(dirname "$$stamp")" && date -Iseconds > "$$stamp"; fi; \
	fi

cluster: ## start Minikube or reuse the running one, with metrics-server and the base images (scripts/cluster/up.sh)
	scripts/cluster/up.sh

images: install ## build every image the manifests name (tag: DRIFTLINE_IMAGE_TAG), load them into Minikube, run the image test (SIGTERM)
	$(CLUSTER_ENV); scripts/images/build.sh --load
	npx vitest run --config vitest.cluster.config.ts tests/cluster/images.test.ts

deploy: install ## deploy the built images with Ansible (ansible/deploy.yml; vault password as above)
	$(CLUSTER_ENV); $(VAULT_ENV); cd ansible && ansible-playbook deploy.yml

smoke: install ## the deployment's tests: playbook idempotent (changed=0) and --check, dry-run=server, security; then the smoke test
	$(CLUSTER_ENV); $(VAULT_ENV); npx vitest run --config vitest.cluster.config.ts tests/cluster/deploy.test.ts
	$(CLUSTER_ENV); npx vitest run --config vitest.cluster.config.ts tests/cluster/smoke.test.ts

# The teardown needs no vault password (Jenkins' post.cleanup has none bound): with no vars plugin enabled,
# Ansible does not load group_vars/ (whose vault.yml it would have to decrypt); the play reads main.yml itself.
teardown: ## remove the deployment (namespace driftline); succeeds when nothing is deployed or no cluster runs
	@$(CLUSTER_ENV); if kubectl version --request-timeout=10s >/dev/null 2>&1; then \
	  cd ansible && ANSIBLE_VARS_ENABLED= ansible-playbook teardown.yml; \
	else echo "teardown: no cluster answers (kubectl version): nothing deployed to remove"; fi

down: teardown ## remove the deployment and delete the Minikube cluster (caches stay in ~/.cache/driftline)
	scripts/cluster/minikube.sh down

vault: install ## create ansible/group_vars/all/vault.yml: generated secrets, Ansible Vault encrypted (scripts/vault.ts init)
	npx tsx scripts/vault.ts init

buildtestup: install ## make test, cluster, images, vault, deploy, smoke: the whole stack on Minikube, tested (SKIP_TEST=1 skips make test)
	scripts/deploy/buildtestup.sh

clean: ## remove local state (models, registry, logs) but not node_modules
	rm -rf .driftline
