# Driftline — the two commands a new user needs:
#   make start   install what is missing, run the whole loop on embedded defaults
#   make test    install what the tests need, start local services, run every suite
SHELL := /bin/bash
.DEFAULT_GOAL := help
ARGS ?=

.PHONY: help install start test test-fast lint typecheck test-deps services-up services-down services-status bench clean buildtestup deploy

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

node_modules/.install-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.install-stamp ## npm ci when node_modules is missing or stale

start: install ## run broker, simulator, edge, retrainer and dashboard in one process (ARGS='--scenario-file scenarios/demo.json')
	npm start -- $(ARGS)

test-deps: install ## install what the real-server suites need (Debian packages, Python venv)
	scripts/setup/system-packages.sh
	scripts/setup/python-venv.sh

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

test: test-deps ## lint, then every suite: in-process and real-server (fuzz suites at 10,000 cases each)
	npm run lint
	FUZZ_RUNS=10000 npm test
	scripts/services/all.sh start
	status=0; npm run test:external || status=$$?; scripts/services/all.sh stop; exit $$status

bench: install ## speed and quality figures (npm run bench)
	npm run bench

deploy: ## build the images inside Minikube and deploy with Ansible (needs minikube, kubectl, ansible, docker)
	cd ansible && ansible-playbook deploy.yml $(if $(wildcard ansible/.vault-pass),--vault-password-file .vault-pass,)

buildtestup: test deploy ## make test, then build and deploy the stack to Minikube (what Jenkins runs on main)

clean: ## remove local state (models, registry, logs) but not node_modules
	rm -rf .driftline
