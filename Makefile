# Driftline — the two commands a new user needs:
#   make start   install what is missing, run the whole loop on embedded defaults
#   make test    install what the tests need, start local services, run every suite
# JUNIT=1 (or CI=true, as Jenkins sets) adds JUnit XML under test-results/junit/ to every vitest run.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ARGS ?=

.PHONY: help install start test test-fast test-external lint sast typecheck test-deps services-up services-down services-status bench clean buildtestup deploy vault

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

sast: install ## npm audit against security/audit-exceptions.json, and the ESLint security rules
	npm run sast

bench: install ## speed and quality figures (npm run bench)
	npm run bench

# The vault password: ANSIBLE_VAULT_PASSWORD_FILE (a file outside the repository; Jenkins binds its credential
# there) or ANSIBLE_VAULT_PASSWORD (handed to Ansible by scripts/ansible-vault-pass-from-env.sh).
deploy: ## build the images inside Minikube and deploy with Ansible (needs minikube, kubectl, ansible, docker; vault password in ANSIBLE_VAULT_PASSWORD_FILE or ANSIBLE_VAULT_PASSWORD)
	cd ansible && if [ -z "$${ANSIBLE_VAULT_PASSWORD_FILE:-}" ] && [ -n "$${ANSIBLE_VAULT_PASSWORD:-}" ]; then \
	  export ANSIBLE_VAULT_PASSWORD_FILE="$(CURDIR)/scripts/ansible-vault-pass-from-env.sh"; fi; \
	  ansible-playbook deploy.yml

vault: install ## create ansible/group_vars/all/vault.yml: generated secrets, Ansible Vault encrypted (scripts/vault.ts init)
	npx tsx scripts/vault.ts init

buildtestup: test deploy ## make test, then build and deploy the stack to Minikube (what Jenkins runs on main)

clean: ## remove local state (models, registry, logs) but not node_modules
	rm -rf .driftline
