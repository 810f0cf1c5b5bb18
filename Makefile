# The README's two commands: `make up` and `make test`.
SHELL := /bin/bash
export NATS_URL ?= nats://127.0.0.1:4222
export REDIS_URL ?= redis://127.0.0.1:6379
BENCH ?= all

.PHONY: up down test bench deps infra samples frontend build fmt lint

up: deps infra samples frontend build
	scripts/up.sh

down:
	scripts/down.sh

test: deps infra samples frontend
	cargo test --workspace --no-fail-fast
	python3 deploy/k8s/check.py
	scripts/fuzz.sh

bench: deps infra samples
	bench/run.sh $(BENCH)

deps:
	scripts/deps.sh

infra:
	scripts/infra.sh

samples:
	scripts/samples.sh

frontend:
	cd frontend && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build

build:
	cargo build --release --bins

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
